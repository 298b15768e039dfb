"""encoders.media against the reference preprocessing outputs (fixtures/imagebind §3)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from encoders.media import MediaLimits, preprocess
from encoders.media.audio import features, load_waveform_16k
from encoders.media.video import frame_plan

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures"


def _report(name: str, got: torch.Tensor, ref: torch.Tensor) -> float:
    diff = (got - ref).abs()
    print(f"{name}: max abs diff {diff.max().item():.3g}, mean {diff.mean().item():.3g}")
    return diff.max().item()


def test_image_matches_reference(golden, media):
    got = preprocess("image", media("bird_image.jpg"))
    assert got.shape == (1, 3, 224, 224) and got.dtype == torch.float32
    assert _report("vision.bird_image", got, golden["vision.bird_image"]) <= 1e-5


def test_thermal_matches_reference(golden, media):
    got = preprocess("thermal", media("190662.jpg"))
    assert got.shape == (1, 1, 224, 224)
    assert _report("thermal.190662", got, golden["thermal.190662"]) <= 1e-5


def test_audio_waveform_16k_matches_reference(golden, media):
    wave = load_waveform_16k(media("bird_audio.wav"), MediaLimits())
    ref = golden["audio.bird_audio.waveform_16k"]
    assert wave.shape == ref.shape == (2, 80000)
    # Same float32 kernel maths as the reference: bit-identical on this machine.
    assert _report("audio.bird_audio.waveform_16k", wave, ref) <= 1e-6


def test_audio_fbank_matches_reference(golden, media):
    got = preprocess("audio", media("bird_audio.wav"))
    ref = golden["audio.bird_audio"]
    assert got.shape == ref.shape == (1, 3, 1, 128, 204)
    # float32 FFT rounding in near-silent mel bins: ~2e-4 after normalisation (the
    # reference itself is 2e-3 from a float64 fbank before normalisation).
    assert _report("audio.bird_audio", got, ref) <= 1e-3
    # Padded columns 198..203 are exactly (0 + 4.268) / 9.138.
    assert torch.equal(got[..., 198:], ref[..., 198:])


def test_audio_fbank_from_reference_waveform(golden):
    """The feature stage alone, fed the reference waveform."""
    got = features(golden["audio.bird_audio.waveform_16k"].clone())
    assert _report("audio.bird_audio (ref waveform)", got, golden["audio.bird_audio"]) <= 1e-3


def test_video_matches_reference(golden, media):
    got = preprocess("video", media("a.mp4"))
    assert got.shape == (1, 15, 3, 2, 224, 224)
    assert _report("video.a.clip0_crop0", got[0, 0], golden["video.a.clip0_crop0"]) <= 1e-5
    mean = got[0].mean(dim=(2, 3, 4))  # [15, 3]
    std = got[0].std(dim=(2, 3, 4))
    assert _report("video.a.clip_channel_mean", mean, golden["video.a.clip_channel_mean"]) <= 1e-4
    assert _report("video.a.clip_channel_std", std, golden["video.a.clip_channel_std"]) <= 1e-4


def test_video_frame_plan_matches_reference_indices():
    meta = json.loads((FIXTURES / "imagebind" / "preprocess.json").read_text())["media"]["a.mp4"]
    expected = [tuple(clip["sampled_frame_indices"]) for clip in meta["clips"]]
    assert frame_plan(meta["num_frames"], meta["avg_fps"]) == expected
