"""Streaming the Llama weights: read source shards tensor by tensor, write bounded shards.

A real 13B Vicuna is 26 GB in fp16, so nothing here holds the whole model:
sources are opened lazily (`safe_open`, or `torch.load(mmap=True)` for the
`pytorch_model-*.bin` shards Vicuna v0 was usually saved as) and output is
flushed every `max_shard_bytes`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

INDEX_NAME = "model.safetensors.index.json"


def source_files(model_dir: Path) -> list[Path]:
    """The weight files of an HF model dir, safetensors preferred over .bin."""
    for pattern in ("*.safetensors", "pytorch_model*.bin"):
        files = sorted(model_dir.glob(pattern))
        if files:
            return files
    raise FileNotFoundError(f"{model_dir}: no *.safetensors or pytorch_model*.bin weight files")


def count_tensors(files: list[Path]) -> int:
    total = 0
    for path in files:
        if path.suffix == ".safetensors":
            with safe_open(str(path), framework="pt") as fh:
                total += len(list(fh.keys()))
        else:
            total += len(torch.load(path, map_location="cpu", weights_only=True, mmap=True))
    return total


def iter_tensors(files: list[Path]) -> Iterator[tuple[str, torch.Tensor]]:
    """Yield (name, tensor) one at a time across all shards."""
    for path in files:
        if path.suffix == ".safetensors":
            with safe_open(str(path), framework="pt") as fh:
                for name in fh.keys():  # noqa: SIM118 - safe_open is not a mapping
                    yield name, fh.get_tensor(name)
        else:
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            yield from state.items()
            del state


def read_tensor(model_dir: Path, name: str) -> torch.Tensor:
    """Read one tensor from a safetensors model dir without loading the rest."""
    index = model_dir / INDEX_NAME
    if index.exists():
        shard = json.loads(index.read_text())["weight_map"][name]
        path = model_dir / shard
    else:
        path = model_dir / "model.safetensors"
    with safe_open(str(path), framework="pt") as fh:
        tensor: torch.Tensor = fh.get_tensor(name)
    return tensor


class ShardWriter:
    """Collect tensors and write `model-0000i-of-0000n.safetensors` + index."""

    def __init__(self, out_dir: Path, max_shard_bytes: int = 2 << 30) -> None:
        self.out_dir = out_dir
        self.max_shard_bytes = max_shard_bytes
        self._pending: dict[str, torch.Tensor] = {}
        self._pending_bytes = 0
        self._shards: list[list[str]] = []
        self._total_bytes = 0

    def add(self, name: str, tensor: torch.Tensor) -> None:
        size = tensor.numel() * tensor.element_size()
        if self._pending and self._pending_bytes + size > self.max_shard_bytes:
            self._flush()
        self._pending[name] = tensor.contiguous()
        self._pending_bytes += size
        self._total_bytes += size

    def _flush(self) -> None:
        tmp_name = f"shard-{len(self._shards):05d}.tmp.safetensors"
        save_file(self._pending, str(self.out_dir / tmp_name), metadata={"format": "pt"})
        self._shards.append(list(self._pending))
        self._pending, self._pending_bytes = {}, 0

    def close(self) -> None:
        """Flush, give shards their final names, and write the index when sharded."""
        if self._pending or not self._shards:
            self._flush()
        count = len(self._shards)
        if count == 1:
            (self.out_dir / "shard-00000.tmp.safetensors").rename(
                self.out_dir / "model.safetensors"
            )
            return
        weight_map: dict[str, str] = {}
        for i, names in enumerate(self._shards):
            final = f"model-{i + 1:05d}-of-{count:05d}.safetensors"
            (self.out_dir / f"shard-{i:05d}.tmp.safetensors").rename(self.out_dir / final)
            weight_map.update(dict.fromkeys(names, final))
        index = {"metadata": {"total_size": self._total_bytes}, "weight_map": weight_map}
        (self.out_dir / INDEX_NAME).write_text(json.dumps(index, indent=2) + "\n")
