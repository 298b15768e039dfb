"""Media inputs the hostile corpus found accepted: each is refused with its reason."""

from __future__ import annotations

import io

import numpy as np
import pytest

from encoders.media import MediaError, preprocess


def _npy(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.save(out, array, allow_pickle=False)
    return out.getvalue()


@pytest.mark.parametrize("shape", [(6, 0), (0, 6)])
def test_imu_without_samples_is_too_short(shape: tuple[int, int]) -> None:
    with pytest.raises(MediaError) as info:
        preprocess("imu", _npy(np.zeros(shape, dtype=np.float32)))
    assert info.value.reason == "too_short"
