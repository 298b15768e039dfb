"""Strict checkpoint loading with a stand-in `.pth` built from the tiny fixture weights."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from encoders.imagebind.checkpoint import (
    CONFIG_NAME,
    CheckpointError,
    convert_to_safetensors,
    load_imagebind,
)
from encoders.imagebind.config import ImageBindConfig

FIXTURES = Path(__file__).parents[2] / "fixtures" / "imagebind"


@pytest.fixture(scope="module")
def tiny_config() -> ImageBindConfig:
    args = json.loads((FIXTURES / "tiny_config.json").read_text())["constructor_args"]
    return ImageBindConfig(**args)


@pytest.fixture(scope="module")
def tiny_state() -> dict[str, torch.Tensor]:
    return load_file(FIXTURES / "tiny_weights.safetensors")


@pytest.fixture
def tiny_pth(tmp_path: Path, tiny_state) -> Path:
    path = tmp_path / "imagebind_tiny.pth"
    torch.save(tiny_state, path)  # a plain state dict, like imagebind_huge.pth
    return path


def test_load_pth_matches_weights(tiny_pth: Path, tiny_config, tiny_state) -> None:
    model = load_imagebind(tiny_pth, tiny_config)
    assert not model.training
    for key, value in model.state_dict().items():
        assert torch.equal(value, tiny_state[key]), key
    with torch.inference_mode():
        out = model({"imu": torch.randn(1, 6, 2000)})["imu"]
    assert out.shape == (1, tiny_config.out_embed_dim)


def test_convert_then_load_safetensors(tmp_path: Path, tiny_pth: Path, tiny_config) -> None:
    dst = convert_to_safetensors(tiny_pth, tmp_path / "out" / "imagebind.safetensors", tiny_config)
    saved = json.loads((dst.parent / CONFIG_NAME).read_text())
    assert ImageBindConfig.from_dict(saved) == tiny_config
    model = load_imagebind(dst)  # config read from imagebind_config.json beside it
    ref = load_imagebind(tiny_pth, tiny_config)
    x = torch.randn(2, 1, 224, 224)
    with torch.inference_mode():
        assert torch.equal(model({"depth": x})["depth"], ref({"depth": x})["depth"])


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_load_in_half_keeps_logit_scales_float32(tiny_pth: Path, tiny_config, dtype) -> None:
    model = load_imagebind(tiny_pth, tiny_config, dtype=dtype)
    assert model.modality_trunks["vision"].blocks[0].attn.in_proj_weight.dtype == dtype
    scale = model.modality_postprocessors["thermal"][1].log_logit_scale
    assert scale.dtype == torch.float32


def _save(tmp_path: Path, state: dict[str, torch.Tensor]) -> Path:
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    return path


def test_missing_key_is_named(tmp_path: Path, tiny_state, tiny_config) -> None:
    state = dict(tiny_state)
    del state["modality_heads.imu.3.weight"]
    match = r"missing keys \(1\): modality_heads\.imu\.3\.weight"
    with pytest.raises(CheckpointError, match=match):
        load_imagebind(_save(tmp_path, state), tiny_config)


def test_unexpected_key_is_named(tmp_path: Path, tiny_state, tiny_config) -> None:
    state = {**tiny_state, "module.extra": torch.zeros(1)}
    with pytest.raises(CheckpointError, match=r"unexpected keys \(1\): module\.extra"):
        load_imagebind(_save(tmp_path, state), tiny_config)


def test_misshapen_key_is_named(tmp_path: Path, tiny_state, tiny_config) -> None:
    state = {**tiny_state, "modality_preprocessors.imu.cls_token": torch.zeros(1, 1, 7)}
    with pytest.raises(
        CheckpointError,
        match=r"modality_preprocessors\.imu\.cls_token: checkpoint \[1, 1, 7\], model \[1, 1, 32\]",
    ):
        load_imagebind(_save(tmp_path, state), tiny_config)


def test_huge_config_refuses_tiny_weights(tiny_pth: Path) -> None:
    with pytest.raises(CheckpointError, match="shape mismatch"):
        load_imagebind(tiny_pth, ImageBindConfig.huge())


def test_non_state_dict_file_is_refused(tmp_path: Path, tiny_config) -> None:
    path = tmp_path / "wrapped.pth"
    torch.save({"model": {"a": torch.zeros(1)}}, path)
    with pytest.raises(CheckpointError, match="flat state dict"):
        load_imagebind(path, tiny_config)
    with pytest.raises(CheckpointError, match="no such file"):
        load_imagebind(tmp_path / "nope.pth", tiny_config)


def test_legacy_pth_without_mmap_support(tmp_path: Path, tiny_state, tiny_config) -> None:
    path = tmp_path / "legacy.pth"
    torch.save(tiny_state, path, _use_new_zipfile_serialization=False)
    model = load_imagebind(path, tiny_config)
    key = "modality_heads.vision.2.weight"
    assert torch.equal(model.state_dict()[key], tiny_state[key])


def test_garbage_file_is_refused(tmp_path: Path, tiny_config) -> None:
    path = tmp_path / "garbage.pth"
    path.write_bytes(b"not a checkpoint at all\n" * 10)
    with pytest.raises(CheckpointError, match=r"garbage\.pth"):
        load_imagebind(path, tiny_config)
