"""Audio: sized probing, batched sample conversion and clip-only resampling give the
same bits as FFmpeg's default probing, per-frame conversion and full resampling."""

from __future__ import annotations

import io
import struct

import av
import numpy as np
import pytest
import torch

import encoders.media.container as container_module
from encoders.media import MediaLimits, preprocess
from encoders.media.audio import features
from encoders.media.audio_samples import _INT_SCALE
from encoders.media.audio_samples import to_float as _to_float
from encoders.media.container import AUDIO_DEMUXERS, AUDIO_OPTIONS, open_container
from encoders.media.resample import resample
from encoders.media.sniff import sniff

# (container, codec, rate, seconds, channels): every container the audio path accepts.
CASES = {
    "wav": ("wav", "pcm_s16le", 44100, 5.0, 2),
    "wav-16k-stereo": ("wav", "pcm_s16le", 16000, 5.0, 2),  # no resampling: layout matters
    "wav-s32": ("wav", "pcm_s32le", 48000, 3.0, 2),
    "wav-f32": ("wav", "pcm_f32le", 22050, 3.0, 1),
    "flac": ("flac", "flac", 22050, 4.0, 2),
    "flac-16k": ("flac", "flac", 16000, 3.0, 2),
    "mp3": ("mp3", "libmp3lame", 44100, 4.0, 2),
    "ogg": ("ogg", "libopus", 48000, 4.0, 2),
    "m4a": ("ipod", "aac", 44100, 4.0, 2),
    "mp4": ("mp4", "aac", 44100, 3.0, 1),
    "adts": ("adts", "aac", 44100, 3.0, 2),
    "webm": ("webm", "libopus", 48000, 3.0, 2),
    "mkv": ("matroska", "flac", 96000, 3.0, 2),
    "short-1s": ("wav", "pcm_s16le", 44100, 1.0, 2),  # clips overlap
}


def _noisy(make, seconds: float, rate: int, channels: int) -> np.ndarray:
    noise = np.random.default_rng(rate).normal(0, 0.1, (channels, round(seconds * rate)))
    return np.clip(make.sine(seconds, rate, channels) + noise, -1, 1)


@pytest.fixture(scope="module")
def encoded(make) -> dict[str, bytes]:
    out = {}
    for name, (fmt, codec, rate, seconds, channels) in CASES.items():
        out[name] = make.audio(_noisy(make, seconds, rate, channels), rate, fmt, codec)
    return out


def _reference(data: bytes) -> torch.Tensor:
    """Default probing, per-frame float64 conversion, concatenation, full resampling:
    the path before sized probing and clip-only resampling."""
    fmt = AUDIO_DEMUXERS[sniff(data) or ""]
    chunks, rate = [], 0
    with av.open(io.BytesIO(data), format=fmt) as box:
        for frame in box.decode(box.streams.audio[0]):
            array, rate = frame.to_ndarray(), frame.sample_rate
            if not frame.format.is_planar:
                array = array.reshape(-1, frame.layout.nb_channels).T
            scale = _INT_SCALE.get(array.dtype)
            if array.dtype == np.uint8:
                array = (array.astype(np.float32) - 128.0) / 128.0
            elif scale is not None:
                array = (array.astype(np.float64) / scale).astype(np.float32)
            chunks.append(array.astype(np.float32, copy=False))
    waveform = resample(torch.from_numpy(np.concatenate(chunks, axis=1)), rate, 16000)
    return features(waveform)


@pytest.mark.parametrize("name", sorted(CASES))
def test_same_bits_as_default_probing_and_full_resampling(name, encoded):
    data = encoded[name]
    assert torch.equal(preprocess("audio", data), _reference(data)), name


@pytest.mark.parametrize("name", sorted(CASES))
def test_sized_probing_reads_the_same_header(name, encoded, monkeypatch):
    data = encoded[name]

    def declared() -> tuple[object, ...]:
        with open_container(data, AUDIO_DEMUXERS, "audio", container_module.AUDIO_OPTIONS) as c:
            s = c.streams.audio[0]
            return (s.codec_context.sample_rate, s.codec_context.channels, c.duration, s.duration)

    sized = declared()
    monkeypatch.setattr(container_module, "AUDIO_OPTIONS", {})
    assert sized == declared()


def test_wav_probing_is_a_few_bytes():
    assert AUDIO_OPTIONS["wav"]["probesize"] == "32"
    assert "aac" not in AUDIO_OPTIONS  # ADTS estimates its duration from probed frames


def test_mp3_without_a_xing_header(make):
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp3", options={"write_xing": "0"}) as out:
        s = out.add_stream("libmp3lame", rate=44100, layout="stereo")
        samples = _noisy(make, 3.0, 44100, 2).astype(np.float32)
        for start in range(0, samples.shape[1], 1152):
            part = np.ascontiguousarray(samples[:, start : start + 1152])
            frame = av.AudioFrame.from_ndarray(part, format="fltp", layout="stereo")
            frame.sample_rate, frame.pts = 44100, start
            for packet in s.encode(frame):
                out.mux(packet)
        for packet in s.encode(None):
            out.mux(packet)
    data = buffer.getvalue()
    assert torch.equal(preprocess("audio", data), _reference(data))


def test_u8_and_f64_wav(make):
    rng = np.random.default_rng(5)
    u8 = rng.integers(0, 256, 24000, dtype=np.uint8)
    f64 = np.ascontiguousarray(_noisy(make, 2.0, 16000, 2).T).astype("<f8")
    for fmt_code, channels, rate, bits, body in (
        (1, 1, 8000, 8, u8.tobytes()),
        (3, 2, 16000, 64, f64.tobytes()),
    ):
        block = channels * bits // 8
        head = struct.pack(
            "<4sI4s4sIHHIIHH4sI", b"RIFF", 36 + len(body), b"WAVE", b"fmt ", 16, fmt_code,
            channels, rate, rate * block, block, bits, b"data", len(body),
        )  # fmt: skip
        assert torch.equal(preprocess("audio", head + body), _reference(head + body))


@pytest.mark.parametrize("dtype", [np.int16, np.int32, np.int64])
def test_integer_scaling_in_float32_equals_the_float64_division(dtype):
    info = np.iinfo(dtype)
    rng = np.random.default_rng(0)
    values = np.concatenate(
        [
            rng.integers(info.min, info.max, 200_000, dtype=dtype, endpoint=True),
            np.array([info.min, info.max, 0, -1, 1, info.min + 1, info.max - 1], dtype=dtype),
        ]
    )
    expected = (values.astype(np.float64) / _INT_SCALE[np.dtype(dtype)]).astype(np.float32)
    got = np.empty(len(values), np.float32)
    _to_float(values, got)
    assert np.array_equal(got, expected)


def test_limits_still_apply_while_decoding(make):
    data = make.audio(make.sine(3.0, 16000), 16000, "flac", "flac")
    with pytest.raises(Exception) as info:
        preprocess("audio", data, MediaLimits(max_audio_seconds=1.0))
    assert getattr(info.value, "reason", "") == "too_long"


def test_sample_formats_pyav_cannot_read_are_still_refused():
    """64-bit PCM: not a decoder on the allow-list."""
    from tests.hardening.make_corpus import wav_header

    with pytest.raises(Exception) as info:
        preprocess("audio", wav_header(16000, 1, 64))
    assert getattr(info.value, "reason", "") == "unsupported_codec"
