"""Decoded audio frames → float32 samples in [−1, 1], without per-frame temporaries.

Frames are read as views of their native samples (``frame_samples``) and
converted once, straight into the caller's buffer (``to_float``); the arithmetic
per sample is the reference's (int16 / 32768 and the like).
"""

from __future__ import annotations

import av
import numpy as np

# Integer sample formats → the divisor that maps them to [−1, 1).
_INT_SCALE = {np.dtype(np.int16): 32768.0, np.dtype(np.int32): 2.0**31, np.dtype(np.int64): 2.0**63}


# FFmpeg sample format (planar "p" suffix dropped) → NumPy dtype, native byte order: the
# formats PyAV's to_ndarray reads. Others (s64) go through to_ndarray, which refuses them
# (a ValueError, mapped to "corrupt"), as before.
_SAMPLE_DTYPES = {
    "u8": np.dtype(np.uint8),
    "s16": np.dtype(np.int16),
    "s32": np.dtype(np.int32),
    "flt": np.dtype(np.float32),
    "dbl": np.dtype(np.float64),
}


def frame_samples(frame: av.AudioFrame) -> list[np.ndarray]:
    """One decoded frame → one ``[n]`` view per channel, in the frame's own dtype."""
    channels = frame.layout.nb_channels
    dtype = _SAMPLE_DTYPES.get(frame.format.name.removesuffix("p"))
    if dtype is None:  # a format without a plain dtype: let PyAV convert it
        array = frame.to_ndarray()
        if not frame.format.is_planar:
            array = array.reshape(-1, channels).T
        return list(array)
    if frame.format.is_planar:
        return [np.frombuffer(plane, dtype, count=frame.samples) for plane in frame.planes]
    packed = np.frombuffer(frame.planes[0], dtype, count=frame.samples * channels)
    return list(packed.reshape(-1, channels).T)  # [n·C] → C strided [n] views


def to_float(samples: np.ndarray, out: np.ndarray) -> None:
    """Native samples → float32 in [−1, 1], written to ``out``."""
    if samples.dtype == np.uint8:
        np.subtract(samples, np.float32(128.0), out=out, dtype=np.float32)
        np.divide(out, np.float32(128.0), out=out)
        return
    scale = _INT_SCALE.get(samples.dtype)
    if scale is not None:
        # x / 2^k rounded to float32 equals round_f32(x) · 2^-k exactly (scaling by a
        # power of two commutes with rounding), so float32 arithmetic gives the
        # bits the float64 division gave, without a float64 temporary.
        np.multiply(samples, np.float32(1.0 / scale), out=out, dtype=np.float32, casting="unsafe")
        return
    np.copyto(out, samples, casting="unsafe")
