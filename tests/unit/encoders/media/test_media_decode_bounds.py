"""What decoding may cost: decoded-size reservations, windowed audio, the video decode
budget, the CPU ceiling, cancellation and the codec allow-lists (encoders/media/guard.py).

The bombs are made at test time (tests/utils/bombs.py); peak memory is measured in a
fresh process, as the growth of its peak RSS while it preprocesses one item.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from encoders.media import DecodeGuard, MediaCancelled, MediaError, MediaLimits, preprocess
from encoders.media.audio import clip_ranges, decode, features
from encoders.media.resample import output_length, resample_ranges
from harness.bombs import jpeg2000_video, long_gop_video, silent_audio
from tests.unit.encoders.media.conftest import encode_audio

ROOT = Path(__file__).resolve().parents[4]
AUDIO_CAP = 64 * 2**20


def whole_file_definition(data: bytes) -> torch.Tensor:
    """The output before windowed decoding: every sample decoded, then the clips."""
    waveform, rate = decode(data, MediaLimits())
    length = output_length(waveform, rate, 16000)
    if rate != 16000:
        waveform = resample_ranges(waveform, rate, 16000, clip_ranges(length))
    return features(waveform)


def peak_growth(modality: str, path: Path) -> dict[str, object]:
    """Preprocess `path` in a fresh process; its peak RSS growth and the outcome."""
    script = f"""
import json, sys
from encoders.media import preprocess, MediaError
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024
warm = open({str(ROOT / "tests/fixtures/media/bird_audio.wav")!r}, "rb").read()
preprocess("audio", warm)  # libraries and code paths loaded before measuring
open("/proc/self/clear_refs", "w").write("5")  # VmHWM := VmRSS
before = status("VmRSS")
try:
    preprocess({modality!r}, open({str(path)!r}, "rb").read())
    outcome = "ok"
except MediaError as exc:
    outcome = exc.reason
print(json.dumps({{"outcome": outcome, "growth": status("VmHWM") - before}}))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_an_audio_bomb_decodes_within_its_window_reservation(tmp_path):
    """299 s of 8-channel 192 kHz silence in 125 KB of FLAC: 1.8 GB as whole-file floats."""
    bomb = silent_audio()
    assert len(bomb) < 200_000
    guard = DecodeGuard(max_cpu_s=60)
    out = preprocess("audio", bomb, MediaLimits(), guard)
    assert out.shape == (1, 3, 1, 128, 204) and torch.isfinite(out).all()
    path = tmp_path / "bomb.flac"
    path.write_bytes(bomb)
    measured = peak_growth("audio", path)
    print(f"audio bomb: peak RSS growth {int(measured['growth']) / 2**20:.1f} MiB")  # type: ignore[call-overload]
    assert measured["outcome"] == "ok"
    assert int(measured["growth"]) <= AUDIO_CAP  # type: ignore[call-overload]


@pytest.mark.parametrize(
    ("container", "codec", "rate", "channels"),
    [
        ("wav", "pcm_s16le", 44100, 2),  # seeks
        ("flac", "flac", 48000, 2),  # seeks
        ("wav", "pcm_s16le", 16000, 1),  # seeks, no resampling
        ("mp3", "libmp3lame", 44100, 2),  # decoded as a stream, windows kept
        ("ogg", "libopus", 48000, 2),
        ("ipod", "aac", 44100, 1),
    ],
)
def test_windowed_audio_equals_the_whole_file_definition(make, container, codec, rate, channels):
    rng = np.random.default_rng(7)
    for seconds in (1.5, 4.2, 37.3):
        samples = (rng.standard_normal((channels, int(seconds * rate))) * 0.1).clip(-1, 1)
        data = encode_audio(samples, rate, container, codec)
        assert torch.equal(preprocess("audio", data), whole_file_definition(data)), seconds


def test_audio_whose_header_claims_more_than_it_holds_is_decoded_as_it_is():
    """A WAV cut short: the declared length is wrong, the second pass plans from the real one."""
    rng = np.random.default_rng(3)
    data = encode_audio(rng.standard_normal((2, 44100 * 20)) * 0.1, 44100)
    cut = data[: len(data) * 6 // 10]
    assert torch.equal(preprocess("audio", cut), whole_file_definition(cut))


def test_a_long_gop_video_is_refused_before_decoding():
    """One keyframe, then 17,399 P-frames at 1080p: 36 G pixels to reach the last clip."""
    bomb = long_gop_video()
    assert len(bomb) < 1_000_000
    with pytest.raises(MediaError) as info:
        preprocess("video", bomb)
    assert info.value.reason == "too_complex"
    assert "G-pixel" in info.value.message and "1920×1080" in info.value.message


def test_a_long_gop_video_under_the_budget_still_decodes():
    video = long_gop_video(frames=120, width=320, height=240)
    out = preprocess("video", video)
    assert out.shape == (1, 15, 3, 2, 224, 224) and torch.isfinite(out).all()
    tight = MediaLimits(max_video_decode_pixels=10 * 320 * 240)
    with pytest.raises(MediaError, match=r"G-pixel") as info:
        preprocess("video", video, tight)
    assert info.value.reason == "too_complex"


def test_a_codec_off_the_allow_list_is_refused():
    with pytest.raises(MediaError) as info:
        preprocess("video", jpeg2000_video())
    assert info.value.reason == "unsupported_codec"
    assert "jpeg2000" in info.value.message


def test_the_allow_lists_are_settings():
    audio = encode_audio(np.zeros((1, 16000)), 16000, "flac", "flac")
    with pytest.raises(MediaError) as info:
        preprocess("audio", audio, MediaLimits(audio_codecs=("pcm_s16le",)))
    assert info.value.reason == "unsupported_codec"
    png = io.BytesIO()
    Image.new("RGB", (64, 64)).save(png, "PNG")
    with pytest.raises(MediaError) as info:
        preprocess("image", png.getvalue(), MediaLimits(image_formats=("JPEG",)))
    assert info.value.reason == "unsupported_format"


def test_an_image_over_its_decoded_size_is_refused_before_decoding():
    """A 7000 × 7000 grey PNG is tiny to send and 49 MB once decoded."""
    png = io.BytesIO()
    Image.new("L", (7000, 7000)).save(png, "PNG", optimize=True)
    assert len(png.getvalue()) < 200_000
    reserved: list[int] = []

    def reserve(nbytes: int, what: str):
        reserved.append(nbytes)
        return lambda: None

    guard = DecodeGuard(max_cpu_s=60, reserve=reserve)
    preprocess("image", png.getvalue(), MediaLimits(), guard)
    assert reserved and reserved[0] >= 7000 * 7000
    with pytest.raises(MediaError) as info:
        preprocess("image", png.getvalue(), MediaLimits(max_decoded_bytes=16 * 2**20))
    assert info.value.reason == "too_large" and "16.0 MiB" in info.value.message


def test_reservations_are_given_back_however_decoding_ends():
    held: list[int] = []

    def reserve(nbytes: int, what: str):
        held.append(nbytes)
        return lambda: held.remove(nbytes)

    audio = encode_audio(np.zeros((2, 44100 * 3)), 44100)
    preprocess("audio", audio, MediaLimits(), DecodeGuard(max_cpu_s=60, reserve=reserve))
    assert held == []
    with pytest.raises(MediaError):
        preprocess("audio", audio[:100], MediaLimits(), DecodeGuard(max_cpu_s=60, reserve=reserve))
    assert held == []


def test_decoding_stops_between_packets_once_nobody_waits():
    stop = threading.Event()
    stop.set()
    audio = silent_audio(seconds=30, rate=48000, channels=2)
    with pytest.raises(MediaCancelled):
        preprocess("audio", audio, MediaLimits(), DecodeGuard(max_cpu_s=60, cancelled=stop))
    video = long_gop_video(frames=60, width=160, height=120)
    with pytest.raises(MediaCancelled):
        preprocess("video", video, MediaLimits(), DecodeGuard(max_cpu_s=60, cancelled=stop))


def test_the_cpu_ceiling_stops_an_item():
    video = long_gop_video(frames=600, width=640, height=360)
    with pytest.raises(MediaError) as info:
        preprocess("video", video, MediaLimits(max_decode_cpu_s=0.001))
    assert info.value.reason == "too_complex" and "CPU" in info.value.message


def test_frames_larger_than_the_header_said_must_fit_the_reservation_too():
    """64×48 in the header and for 4 s, then 1280×720 frames: decoding would overrun what
    the header let it reserve, so the item holds more, or here, over its cap, stops."""
    from encoders.media.video import decoded_bytes
    from tests.hardening.make_corpus import _avi_stream

    grows = _avi_stream([(24, (64, 48), True), (2, (1280, 720), False)])
    cap = decoded_bytes(640, 480)
    with pytest.raises(MediaError) as info:
        preprocess("video", grows, MediaLimits(max_decoded_bytes=cap))
    assert info.value.reason == "too_large"
