"""IMU recording → IMU input ``[1, 6, 2000]``.

There is no reference loader; ImageBind's IMU tower takes 6 channels
(accelerometer xyz, gyroscope xyz, Ego4D order) × 2000 samples (10 s at 200 Hz).
Our definition:

- Input: ``.npy`` (numeric dtype, shape ``[6, N]`` or ``[N, 6]``; ``[6, 6]`` is
  read as ``[6, N]``), or CSV text with 6 columns (one row per sample, an optional
  header row of names, separators ``,`` ``;`` tab or spaces).
- Values are used as given (no unit conversion or normalisation).
- Length: the **first** 2000 samples are kept; shorter recordings are padded on
  the **right with zeros**. (The reference model has no notion of sample rate,
  so the client resamples to 200 Hz.)
- NaN or ±inf anywhere → ``invalid_value``. Pickled or object arrays are refused.
"""

from __future__ import annotations

import io
import re

import numpy as np
import torch

from .errors import MediaError
from .guard import DecodeGuard
from .media_limits import MediaLimits

CHANNELS = 6
SAMPLES = 2000

_SEPARATOR = re.compile(r"[,;\t ]+")


def preprocess_imu(data: bytes, limits: MediaLimits, guard: DecodeGuard) -> torch.Tensor:
    """``.npy`` or CSV bytes → float32 ``[1, 6, 2000]``."""
    is_npy = bytes(data[:6]) == b"\x93NUMPY"
    array = _load_npy(data, limits) if is_npy else _load_csv(data, limits)
    channels_first = _to_channels_first(array)  # [6, N]
    if channels_first.shape[1] > limits.max_imu_samples:
        raise MediaError(
            "too_long",
            f"IMU has {channels_first.shape[1]} samples, over the {limits.max_imu_samples} limit",
        )
    if channels_first.shape[1] == 0:
        raise MediaError("too_short", "IMU has no samples")
    if not np.isfinite(channels_first).all():
        raise MediaError("invalid_value", "IMU values must be finite (found NaN or inf)")
    out = torch.zeros(CHANNELS, SAMPLES, dtype=torch.float32)
    kept = min(SAMPLES, channels_first.shape[1])
    out[:, :kept] = torch.from_numpy(channels_first[:, :kept].astype(np.float32))
    return out.unsqueeze(0)  # [6,2000] → [1,6,2000]


def _load_npy(data: bytes, limits: MediaLimits) -> np.ndarray:
    """Read the header first so a huge declared shape is refused before allocation."""
    stream = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(stream)
        else:
            shape, _, dtype = np.lib.format.read_array_header_2_0(stream)
    except (ValueError, EOFError, SyntaxError) as exc:
        raise MediaError("corrupt", f"bad .npy header: {exc}") from exc
    if dtype.kind not in "biuf":
        raise MediaError("unsupported_format", f"IMU .npy dtype must be numeric, got {dtype}")
    if int(np.prod(shape)) > CHANNELS * limits.max_imu_samples:
        raise MediaError("too_long", f"IMU array of shape {shape} is over the sample limit")
    stream.seek(0)
    try:
        return np.load(stream, allow_pickle=False)
    except (ValueError, EOFError, OSError) as exc:
        raise MediaError("corrupt", f".npy data could not be read: {exc}") from exc


def _load_csv(data: bytes, limits: MediaLimits) -> np.ndarray:
    """Parse numeric CSV rows; a first row that is not numeric is taken as a header."""
    try:
        text = bytes(data).decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise MediaError("unsupported_format", "IMU must be .npy or UTF-8 CSV text") from exc
    rows = [line.strip() for line in text.splitlines() if line.strip()]
    if len(rows) > limits.max_imu_samples + 1:
        raise MediaError("too_long", f"IMU CSV has over {limits.max_imu_samples} rows")
    values: list[list[float]] = []
    for number, row in enumerate(rows):
        fields = [f for f in _SEPARATOR.split(row.strip(",; \t")) if f]
        try:
            values.append([float(f) for f in fields])
        except ValueError as exc:
            if number == 0:
                continue  # header row of channel names
            raise MediaError(
                "unsupported_format", f"IMU CSV row {number + 1} is not numeric"
            ) from exc
    if not values:
        raise MediaError("unsupported_format", "IMU CSV has no numeric rows")
    widths = {len(row) for row in values}
    if len(widths) != 1:
        raise MediaError(
            "invalid_value", f"IMU CSV rows have differing column counts {sorted(widths)}"
        )
    table = np.asarray(values, dtype=np.float64)  # [rows, columns]
    # One row per sample is the documented layout; [6, N] text is accepted too.
    return table.T if table.shape[1] == CHANNELS else table


def _to_channels_first(array: np.ndarray) -> np.ndarray:
    """[6, N] or [N, 6] → [6, N]."""
    if array.ndim == 2 and array.shape[0] == CHANNELS:
        return array
    if array.ndim == 2 and array.shape[1] == CHANNELS:
        return array.T
    raise MediaError(
        "invalid_value", f"IMU must have shape [6, N] or [N, 6], got {list(array.shape)}"
    )
