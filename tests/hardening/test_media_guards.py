"""Media inputs the hostile corpus found accepted: each is refused with its reason."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest

from encoders.media import MediaError, MediaLimits, preprocess


def _npy(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.save(out, array, allow_pickle=False)
    return out.getvalue()


def _wav(rate: int, samples: int = 1600) -> bytes:
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16)
    body = b"fmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", samples * 2)
    return (
        b"RIFF"
        + struct.pack("<I", 4 + len(body) + samples * 2)
        + b"WAVE"
        + body
        + (b"\x00\x01" * samples)
    )


@pytest.mark.parametrize("shape", [(6, 0), (0, 6)])
def test_imu_without_samples_is_too_short(shape: tuple[int, int]) -> None:
    with pytest.raises(MediaError) as info:
        preprocess("imu", _npy(np.zeros(shape, dtype=np.float32)))
    assert info.value.reason == "too_short"


@pytest.mark.parametrize("rate", [1, 7, 999])
def test_absurdly_low_sample_rate_is_refused(rate: int) -> None:
    with pytest.raises(MediaError) as info:
        preprocess("audio", _wav(rate))
    assert info.value.reason == "unsupported_format"
    assert "sample rate" in info.value.message


def test_lowest_accepted_rate_still_decodes() -> None:
    rate = MediaLimits().min_audio_sample_rate
    assert preprocess("audio", _wav(rate, rate // 2)).shape == (1, 3, 1, 128, 204)
