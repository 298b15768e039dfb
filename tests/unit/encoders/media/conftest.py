"""Fixtures for encoders.media tests: golden tensors, fixture media, and small
encoders (PyAV, Pillow) that make synthetic test files in memory."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from harness.media import write_audio, write_video

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures"
MEDIA = FIXTURES / "media"


@pytest.fixture(scope="session")
def golden() -> dict[str, torch.Tensor]:
    return load_file(FIXTURES / "imagebind" / "preprocess.safetensors")


@pytest.fixture(scope="session")
def media() -> Callable[[str], bytes]:
    return lambda name: (MEDIA / name).read_bytes()


def encode_audio(
    samples: np.ndarray, rate: int, container: str = "wav", codec: str = "pcm_s16le"
) -> bytes:
    """float [C, n] in [−1, 1] → encoded bytes (PyAV)."""
    return write_audio(samples, rate=rate, codec=codec, container=container)


def encode_video(
    frames: np.ndarray, fps: int, container: str = "mp4", codec: str = "mpeg4"
) -> bytes:
    """uint8 [N, H, W, 3] → encoded bytes (PyAV)."""
    qscale = 2 if codec == "mpeg4" else None
    return write_video(frames, rate=fps, codec=codec, container=container, qscale=qscale)


def png_header(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims ``width``×``height`` but holds (almost) no pixel data."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def wav_bytes(pcm: np.ndarray, rate: int, declared_samples: int | None = None) -> bytes:
    """int16 [C, n] → a WAV file; ``declared_samples`` makes the header claim another length."""
    channels, samples = pcm.shape
    body = np.ascontiguousarray(pcm.T).astype("<i2").tobytes()
    data_size = (declared_samples if declared_samples is not None else samples) * channels * 2
    header = struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        min(36 + data_size, 0xFFFFFFFF),
        b"WAVE",
        b"fmt ",
        16,
        1,  # PCM
        channels,
        rate,
        rate * channels * 2,
        channels * 2,
        16,
        b"data",
        min(data_size, 0xFFFFFFFF),
    )
    return header + body


def sine(seconds: float, rate: int, channels: int = 1, freq: float = 440.0) -> np.ndarray:
    """A [C, n] test tone with a different phase per channel."""
    t = np.arange(round(seconds * rate)) / rate
    return np.stack([0.5 * np.sin(2 * np.pi * freq * t + c) for c in range(channels)])


def moving_frames(count: int, height: int, width: int) -> np.ndarray:
    """[N, H, W, 3] uint8 frames whose content changes with the index (a moving ramp)."""
    y, x = np.mgrid[0:height, 0:width]
    frames = [
        np.stack([(x * 4 + i * 3) % 256, (y * 4 + i * 5) % 256, np.full_like(x, i * 7 % 256)], -1)
        for i in range(count)
    ]
    return np.asarray(frames, dtype=np.uint8)


@pytest.fixture(scope="session")
def make() -> object:
    """The synthetic-media builders, as attributes (``make.audio(...)``)."""

    class Builders:
        audio = staticmethod(encode_audio)
        video = staticmethod(encode_video)
        png_header = staticmethod(png_header)
        wav = staticmethod(wav_bytes)
        sine = staticmethod(sine)
        frames = staticmethod(moving_frames)

    return Builders
