"""IMU: .npy and CSV layouts, pad/crop to 2000, refusal of bad values."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from encoders.media import MediaError, MediaLimits, preprocess


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def _ramp(samples: int) -> np.ndarray:
    """[6, N] with value channel·10000 + index."""
    return np.arange(CHANNELS)[:, None] * 10000.0 + np.arange(samples)[None, :]


CHANNELS = 6


@pytest.mark.parametrize("transpose", [False, True])
def test_npy_either_layout(transpose):
    array = _ramp(2500).astype(np.float32)
    out = preprocess("imu", _npy(array.T if transpose else array))
    assert out.shape == (1, 6, 2000) and out.dtype == torch.float32
    # Crop keeps the first 2000 samples.
    assert torch.equal(out[0], torch.from_numpy(array[:, :2000]))


def test_short_recording_is_zero_padded_on_the_right():
    out = preprocess("imu", _npy(_ramp(500).astype(np.float64)))
    assert torch.equal(out[0, :, :500], torch.from_numpy(_ramp(500).astype(np.float32)))
    assert out[0, :, 500:].eq(0).all()


def test_csv_with_header_rows_are_samples():
    rows = ["ax,ay,az,gx,gy,gz"] + [",".join(str(c * 10 + i) for c in range(6)) for i in range(3)]
    out = preprocess("imu", "\n".join(rows).encode())
    assert out[0, :, :3].tolist() == [[c * 10 + i for i in range(3)] for c in range(6)]
    assert out[0, :, 3:].eq(0).all()


def test_csv_other_separators():
    text = "1;2;3;4;5;6\n7\t8\t9\t10\t11\t12\n"
    out = preprocess("imu", text.encode())
    assert out[0, :, 1].tolist() == [7, 8, 9, 10, 11, 12]


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values_are_refused(bad):
    array = _ramp(100)
    array[2, 50] = bad
    for data in (_npy(array), "\n".join(",".join(map(str, r)) for r in array.T).encode()):
        with pytest.raises(MediaError) as info:
            preprocess("imu", data)
        assert info.value.reason == "invalid_value"


@pytest.mark.parametrize("shape", [(5, 100), (100,), (2, 6, 10), (7, 7)])
def test_wrong_shapes_are_refused(shape):
    with pytest.raises(MediaError) as info:
        preprocess("imu", _npy(np.zeros(shape)))
    assert info.value.reason == "invalid_value"


def test_pickled_object_arrays_are_refused():
    with pytest.raises(MediaError) as info:
        preprocess("imu", _npy(np.array([[object()] * 10] * 6, dtype=object)))
    assert info.value.reason == "unsupported_format"


def test_huge_declared_npy_is_refused_before_reading():
    header = _npy(np.zeros((6, 1), np.float32))
    # Rewrite the shape in the header to claim 10^9 samples; the data stays 24 bytes.
    forged = header.replace(b"(6, 1)", b"(6, 1000000000)")
    with pytest.raises(MediaError) as info:
        preprocess("imu", forged)
    assert info.value.reason == "too_long"


def test_sample_cap_applies_to_csv():
    text = "\n".join("1,2,3,4,5,6" for _ in range(50)).encode()
    with pytest.raises(MediaError) as info:
        preprocess("imu", text, MediaLimits(max_imu_samples=10))
    assert info.value.reason == "too_long"


@pytest.mark.parametrize("data", [b"hello world, this is text", b"\xff\xfe\x00garbage\x81"])
def test_text_and_garbage_are_refused(data):
    with pytest.raises(MediaError) as info:
        preprocess("imu", data)
    assert info.value.reason in {"unsupported_format", "invalid_value"}
