"""The pieces of `build_worker` that need no engine: served names and the cache fingerprint."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from service.config import Settings
from service.errors import NotFound
from service.memory import MemoryBudget
from service.weights.layout import Manifest, ModelLayout
from service.worker.factory import decode_reserve, encoder_fingerprint, media_limits, served_models


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


def test_decoding_limits_and_allow_lists_come_from_the_settings(monkeypatch) -> None:
    monkeypatch.setenv("PANDAGPT_VIDEO_CODECS", "h264,vp9")
    monkeypatch.setenv("PANDAGPT_MAX_DECODED_BYTES", str(32 * 2**20))
    limits = media_limits(Settings())
    assert limits.video_codecs == ("h264", "vp9")
    assert limits.max_decoded_bytes == 32 * 2**20
    assert "flac" in limits.audio_codecs and "JPEG" in limits.image_formats


def test_decoded_bytes_are_held_against_the_process_budget() -> None:
    from encoders.media import MediaBusy, MediaError

    settings = Settings(decode_reserve_wait_s=0.01)
    budget = MemoryBudget(100 * 2**20, retry_after_s=2.0)
    reserve = decode_reserve(budget, settings)
    give_back = reserve(60 * 2**20, "a video")
    assert budget.in_use == 60 * 2**20
    with pytest.raises(MediaBusy) as busy:  # fits an idle process: 429, retry later
        reserve(60 * 2**20, "another video")
    assert busy.value.retry_after == 2.0
    with pytest.raises(MediaError) as never:  # never fits: 400 naming the budget
        reserve(200 * 2**20, "a huge video")
    assert never.value.reason == "too_large" and "memory budget" in never.value.message
    give_back()
    assert budget.in_use == 0
