from __future__ import annotations

import time
from pathlib import Path

from service.weights.demo import DemoPaths, make_demo_weights
from service.weights.layout import Manifest, ModelLayout


def test_demo_weights_are_idempotent_per_seed_and_size(tmp_path: Path) -> None:
    start = time.perf_counter()
    model = make_demo_weights(tmp_path, seed=3, size="tiny")
    assert time.perf_counter() - start < 60
    manifest_path = ModelLayout(model).manifest
    stamp = manifest_path.stat().st_mtime_ns
    make_demo_weights(tmp_path, seed=3, size="tiny")
    assert manifest_path.stat().st_mtime_ns == stamp, "same seed/size: nothing redone"
    make_demo_weights(tmp_path, seed=4, size="tiny")
    assert Manifest.load(manifest_path).extra["demo"] == {"seed": 4, "size": "tiny"}


def test_demo_sources_use_released_formats(tmp_path: Path) -> None:
    import torch

    make_demo_weights(tmp_path, seed=0, size="tiny")
    paths = DemoPaths(tmp_path)
    delta = torch.load(paths.delta("tiny"), weights_only=True)
    key = "llama_model.base_model.model.model.layers.0.self_attn.q_proj.lora_B.default.weight"
    assert delta[key].abs().sum() > 0, "non-zero B so the LoRA matters"
    ib = torch.load(paths.imagebind, weights_only=True)
    assert "modality_heads.vision.2.weight" in ib
    assert "modality_postprocessors.thermal.1.log_logit_scale" in ib
