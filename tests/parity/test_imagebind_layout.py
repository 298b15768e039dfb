"""The model's state_dict layout is exactly the official checkpoint's (huge_manifest.json)
and the tiny fixture's; config round-trips. Huge is built on the meta device only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from encoders.imagebind.config import ImageBindConfig
from encoders.imagebind.model import ImageBindModel

FIXTURES = Path(__file__).parents[1] / "fixtures" / "imagebind"


@pytest.fixture(scope="module")
def manifest() -> dict:
    return json.loads((FIXTURES / "huge_manifest.json").read_text())


def meta_model(config: ImageBindConfig) -> ImageBindModel:
    with torch.device("meta"):
        return ImageBindModel(config)


def test_huge_config_matches_reference_args(manifest) -> None:
    resolved = manifest["constructor_args_resolved"]
    assert ImageBindConfig(**resolved) == ImageBindConfig.huge() == ImageBindConfig()
    for key, value in resolved.items():
        got = getattr(ImageBindConfig.huge(), key)
        assert (list(got) if isinstance(got, tuple) else got) == value, key
    for modality, geometry in manifest["token_geometry"].items():
        assert ImageBindConfig.huge().num_tokens[modality] == geometry["num_tokens_incl_cls"]


def test_huge_state_dict_layout(manifest) -> None:
    model = meta_model(ImageBindConfig.huge())
    entries = manifest["state_dict"]
    got = model.state_dict()
    assert len(got) == len(entries) == 1311
    assert list(got) == [e["key"] for e in entries]  # same order as the reference
    for e in entries:
        t = got[e["key"]]
        assert list(t.shape) == e["shape"], e["key"]
        assert str(t.dtype).removeprefix("torch.") == e["dtype"], e["key"]
    buffers = {name for name, _ in model.named_buffers()}
    assert buffers == {e["key"] for e in entries if e["kind"] == "buffer"}
    assert sum(p.numel() for p in model.parameters()) == manifest["num_parameters"]


def test_huge_loads_manifest_state_dict_strictly(manifest) -> None:
    state = {
        e["key"]: torch.empty(e["shape"], dtype=getattr(torch, e["dtype"]), device="meta")
        for e in manifest["state_dict"]
    }
    model = meta_model(ImageBindConfig.huge())
    result = model.load_state_dict(state, strict=True, assign=True)
    assert not result.missing_keys and not result.unexpected_keys


def test_tiny_state_dict_layout() -> None:
    tiny = json.loads((FIXTURES / "tiny_config.json").read_text())
    model = meta_model(ImageBindConfig(**tiny["constructor_args"]))
    got = [(k, list(v.shape)) for k, v in model.state_dict().items()]
    assert got == [(e["key"], e["shape"]) for e in tiny["state_dict_keys"]]


def test_layernorm_eps(manifest) -> None:
    model = meta_model(ImageBindConfig.huge())
    modules = dict(model.named_modules())
    for name, eps in manifest["layernorm_eps"].items():
        assert modules[name].eps == eps, name


def test_config_round_trip_and_checks() -> None:
    config = ImageBindConfig(vision_embed_dim=64, vision_num_heads=4, attn_implementation="math")
    again = ImageBindConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config and again.kernel_size == (2, 14, 14)
    with pytest.raises(ValueError, match=r"audio_embed_dim \(100\).*audio_num_heads \(12\)"):
        ImageBindConfig(audio_embed_dim=100)
    with pytest.raises(ValueError, match="unknown ImageBindConfig fields"):
        ImageBindConfig.from_dict({"vision_width": 3})
    with pytest.raises(ValueError, match="attn_implementation"), torch.device("meta"):
        ImageBindModel(ImageBindConfig(attn_implementation="flash9"))
