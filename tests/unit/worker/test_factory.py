"""The pieces of `build_worker` that need no engine: served names and the cache fingerprint."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from service.config import Settings
from service.errors import NotFound
from service.weights.layout import Manifest, ModelLayout
from service.worker.factory import encoder_fingerprint, served_models


def test_merged_model_serves_its_manifest_name(demo_model: Path) -> None:
    layout = ModelLayout(demo_model)
    manifest = Manifest.load(layout.manifest)
    served = served_models(Settings(), manifest, layout, [manifest.served_model_name])
    assert [m.id for m in served.models] == [manifest.served_model_name]
    assert served.resolve(manifest.served_model_name) is None
    with pytest.raises(NotFound):
        served.resolve("other")


def test_configured_name_and_lora_variants(demo_model: Path) -> None:
    layout = ModelLayout(demo_model)
    manifest = dataclasses.replace(Manifest.load(layout.manifest), merged=False)
    settings = Settings(served_model_name="panda", max_model_len=512)
    served = served_models(settings, manifest, layout, ["panda-7b-512", "panda-7b-1024"])
    assert [(m.id, m.parent) for m in served.models] == [
        ("panda", None),
        ("panda-7b-512", "panda"),
        ("panda-7b-1024", "panda"),
    ]
    assert {m.max_model_len for m in served.models} == {512}
    assert served.resolve("panda-7b-1024") == "panda-7b-1024"
    assert served.resolve("panda") == "panda-7b-512"  # the base name means the first adapter


def test_fingerprint_names_weights_and_dtype(demo_model: Path) -> None:
    layout = ModelLayout(demo_model)
    manifest = Manifest.load(layout.manifest)
    fp32 = encoder_fingerprint(layout, manifest, torch.float32)
    assert fp32 == encoder_fingerprint(layout, manifest, torch.float32)
    assert fp32 != encoder_fingerprint(layout, manifest, torch.float16)
    other = dataclasses.replace(manifest, sources={"imagebind": {"sha256": "0" * 64}})
    assert fp32 != encoder_fingerprint(layout, other, torch.float32)
