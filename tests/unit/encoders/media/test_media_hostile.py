"""Hostile input: every case raises one MediaError with a reason code, quickly."""

from __future__ import annotations

import io
import struct
import time
import warnings

import numpy as np
import pytest
from PIL import Image

from encoders.media import REASONS, SHAPES, MediaError, MediaLimits, preprocess
from encoders.media.audio import decode_stream
from encoders.media.container import AUDIO_DEMUXERS, open_container

MODALITIES = sorted(SHAPES)


def _reason(modality: str, data: bytes, limits: MediaLimits | None = None) -> str:
    start = time.monotonic()
    with pytest.raises(MediaError) as info:
        preprocess(modality, data, limits)
    assert time.monotonic() - start < 5.0, "refusal took too long"
    assert info.value.reason in REASONS
    return info.value.reason


def _png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (1, 2, 3)).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("modality", MODALITIES)
def test_empty(modality):
    assert _reason(modality, b"") == "empty"


@pytest.mark.parametrize("modality", MODALITIES)
def test_over_byte_cap(modality, media):
    assert _reason(modality, media("bird_image.jpg"), MediaLimits(max_bytes=1000)) == "too_large"


@pytest.mark.parametrize("modality", MODALITIES)
@pytest.mark.parametrize("seed", [0, 1])
def test_random_garbage(modality, seed):
    data = np.random.default_rng(seed).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    assert _reason(modality, data) in {"unsupported_format", "corrupt"}


@pytest.mark.parametrize(
    ("modality", "magic"),
    [
        ("image", b"\xff\xd8\xff\xe0"),
        ("image", b"\x89PNG\r\n\x1a\n"),
        ("thermal", b"GIF89a"),
        ("depth", b"\x89PNG\r\n\x1a\n"),
        ("audio", b"RIFF\x00\x10\x00\x00WAVEfmt "),
        ("audio", b"fLaC"),
        ("audio", b"OggS"),
        ("audio", b"ID3\x03\x00"),
        ("video", b"\x00\x00\x00\x18ftypmp42"),
        ("video", b"\x1a\x45\xdf\xa3"),
        ("video", b"RIFF\x00\x10\x00\x00AVI "),
        ("imu", b"\x93NUMPY\x01\x00"),
    ],
)
def test_valid_magic_then_garbage(modality, magic):
    tail = np.random.default_rng(7).integers(0, 256, 2048, dtype=np.uint8).tobytes()
    allowed = {"unsupported_format", "corrupt", "no_audio_stream", "no_video_stream"}
    assert _reason(modality, magic + tail) in allowed


@pytest.mark.parametrize(
    ("modality", "name"),
    [
        ("image", "bird_audio.wav"),
        ("image", "a.mp4"),
        ("thermal", "bird_audio.wav"),
        ("depth", "a.mp4"),
        ("audio", "bird_image.jpg"),
        ("video", "bird_image.jpg"),
        ("video", "bird_audio.wav"),
        ("imu", "bird_image.jpg"),
    ],
)
def test_wrong_type(modality, name, media):
    assert _reason(modality, media(name)) == "unsupported_format"


@pytest.mark.parametrize("modality", ["image", "thermal", "depth"])
def test_truncated_jpeg(modality, media):
    data = media("bird_image.jpg")
    assert _reason(modality, data[: len(data) // 2]) in {"corrupt", "unsupported_format"}


@pytest.mark.parametrize("size", [(100_000, 100_000), (30_000, 30_000), (65_535, 65_535)])
def test_decompression_bomb_header_is_refused_before_decoding(make, size):
    """A ~100-byte PNG claiming up to 10^10 pixels: refused from the header."""
    assert _reason("image", make.png_header(*size)) == "too_large"


def test_bomb_warning_as_error_is_still_too_large(make):
    """Between Pillow's warn (89.5 MP) and error (179 MP) thresholds, with -W error."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _reason("image", make.png_header(10_000, 10_000)) == "too_large"


def test_own_pixel_cap_from_header(make):
    limits = MediaLimits(max_pixels=10_000)
    assert _reason("image", make.png_header(200, 200), limits) == "too_large"
    assert _reason("thermal", _png(120, 100), limits) == "too_large"


def test_absurd_dimensions():
    assert _reason("image", _png(1, 5000)) == "bad_dimensions"  # aspect ratio
    assert _reason("depth", _png(3000, 40)) == "bad_dimensions"
    assert _reason("image", _png(300, 250), MediaLimits(max_image_side=256)) == "bad_dimensions"


def test_truncated_png_body():
    data = _png(400, 300)
    assert _reason("image", data[:-40]) == "corrupt"


def test_audio_header_claiming_one_hour_is_refused_before_decoding(make):
    """A 10 kB FLAC whose STREAMINFO says 1 h of 8 kHz audio: refused from the header."""
    data = bytearray(make.audio(make.sine(0.5, 8000), 8000, "flac", "flac"))
    # STREAMINFO starts at byte 8; bytes 10..17 of it end with the 36-bit sample count.
    (packed,) = struct.unpack(">Q", data[18:26])
    packed = (packed & ~((1 << 36) - 1)) | (8000 * 3600)
    data[18:26] = struct.pack(">Q", packed)
    assert len(data) < 20_000
    assert _reason("audio", bytes(data)) == "too_long"


def test_wav_header_overclaiming_its_size_is_read_as_what_is_there(make):
    """FFmpeg bounds a WAV's data chunk by the real file size: 50 ms, decoded normally."""
    data = make.wav(np.zeros((1, 400), np.int16), 8000, declared_samples=8000 * 3600)
    assert preprocess("audio", data).shape == SHAPES["audio"]


def test_audio_duration_cap(make):
    data = make.audio(make.sine(3.0, 16000), 16000, "flac", "flac")
    assert _reason("audio", data, MediaLimits(max_audio_seconds=2.0)) == "too_long"


def test_audio_cap_while_decoding_when_the_header_lies(make):
    """Decoding counts samples itself: a missing or wrong header duration is not trusted."""
    data = make.audio(make.sine(3.0, 16000), 16000, "flac", "flac")
    limits = MediaLimits(max_audio_seconds=1.0)
    with pytest.raises(MediaError) as info, open_container(data, AUDIO_DEMUXERS, "audio") as box:
        decode_stream(box, box.streams.audio[0], limits)  # header check skipped
    assert info.value.reason == "too_long"


def test_audio_zero_length(make):
    assert _reason("audio", make.wav(np.zeros((2, 0), np.int16), 44100)) == "too_short"


def test_audio_with_no_audio_stream(make):
    video_only = make.video(make.frames(5, 32, 32), 10)
    assert _reason("audio", video_only) == "no_audio_stream"


def test_too_many_channels(make):
    data = make.wav(np.zeros((10, 1600), np.int16), 16000)
    assert _reason("audio", data) == "unsupported_format"


def test_video_with_no_video_stream(make):
    audio_only = make.audio(make.sine(1.0, 16000), 16000, "mp4", "aac")
    assert _reason("video", audio_only) == "no_video_stream"


def test_video_duration_and_frame_caps(make):
    data = make.video(make.frames(40, 32, 32), 10)  # 4 s
    assert _reason("video", data, MediaLimits(max_video_seconds=3.0)) == "too_long"
    assert _reason("video", data, MediaLimits(max_video_frames=30)) == "too_long"
    mkv = make.video(make.frames(40, 32, 32), 10, "matroska")  # counted while demuxing
    assert _reason("video", mkv, MediaLimits(max_video_seconds=3.0)) == "too_long"


def test_video_frame_size_cap(make, media):
    assert _reason("video", media("a.mp4"), MediaLimits(max_video_pixels=1280 * 720)) == "too_large"


def test_truncated_video(media):
    data = media("a.mp4")
    cut = data[: len(data) // 3]
    try:
        out = preprocess("video", cut)
    except MediaError as exc:
        assert exc.reason in {"corrupt", "too_short"}
    else:  # a decoder may recover the frames that arrived; then the output is well formed
        assert out.shape == SHAPES["video"]


def test_every_modality_survives_fuzzed_real_files(media, make):
    """Byte flips in real files: a MediaError or a well-formed tensor, never anything else."""
    rng = np.random.default_rng(3)
    cases = {
        "image": media("bird_image.jpg"),
        "audio": make.audio(make.sine(2.5, 16000), 16000, "flac", "flac"),
        "video": make.video(make.frames(20, 32, 32), 10),
    }
    for modality, original in cases.items():
        for _ in range(4):
            data = bytearray(original)
            for at in rng.integers(64, len(data), 20):
                data[at] = rng.integers(0, 256)
            try:
                out = preprocess(modality, bytes(data))
            except MediaError:
                continue
            assert out.shape == SHAPES[modality]


def test_unknown_modality_is_a_caller_error():
    with pytest.raises(ValueError):
        preprocess("smell", b"x")


def test_reason_codes_are_checked():
    with pytest.raises(ValueError):
        MediaError("nope", "x")


def test_video_built_against_seeking_is_refused():
    """The corpus's seek-defeating cases (tests/hardening/make_corpus.py): refused, quickly.
    Seek-defeating streams that decode are in test_media_video_seek.py."""
    from tests.hardening.make_corpus import seek_cases

    reasons = {case.name: _reason(case.modality, case.raw) for case in seek_cases()}
    assert reasons == {
        "avi-frames-grow-after-keyframe": "too_large",
        "avi-claims-900-frames-none-decode": "corrupt",
    }
