from __future__ import annotations

import json
from pathlib import Path

import torch

from service.weights.llm_io import ShardWriter, iter_tensors, read_tensor, source_files


def test_shards_and_index(tmp_path: Path) -> None:
    state = {f"model.layers.{i}.w": torch.full((64, 64), float(i)) for i in range(5)}
    writer = ShardWriter(tmp_path, max_shard_bytes=40_000)  # two 16 KB tensors per shard
    for name, t in state.items():
        writer.add(name, t)
    writer.close()
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) == 3
    assert sorted(p.name for p in source_files(tmp_path))[0] == "model-00001-of-00003.safetensors"
    got = dict(iter_tensors(source_files(tmp_path)))
    assert all(torch.equal(got[k], v) for k, v in state.items())
    assert torch.equal(read_tensor(tmp_path, "model.layers.3.w"), state["model.layers.3.w"])


def test_pytorch_bin_sources(tmp_path: Path) -> None:
    # Vicuna v0 was usually saved as pytorch_model-0000x-of-0000y.bin shards.
    torch.save({"a": torch.ones(2)}, tmp_path / "pytorch_model-00001-of-00002.bin")
    torch.save({"b": torch.zeros(3)}, tmp_path / "pytorch_model-00002-of-00002.bin")
    names = [name for name, _ in iter_tensors(source_files(tmp_path))]
    assert names == ["a", "b"]
