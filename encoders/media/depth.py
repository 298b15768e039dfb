"""Depth (disparity) image → depth input ``[1, 1, 224, 224]``.

There is no reference loader (upstream ImageBind and PandaGPT ship none), so this
is our definition, chosen to match the thermal path's geometry:

- Input: a single-channel image, normally PNG, holding a **disparity** map
  (ImageBind's depth tower was trained on disparity, not metric depth; the
  client converts). 8-bit ("L") values are divided by 255, 16-bit ("I;16",
  or "I" from older 16-bit PNG decoding, values 0..65535) by 65535, giving [0, 1].
  Colour or alpha images are refused (``unsupported_format``): a colourised depth
  map cannot be inverted safely.
- The [0, 1] map is resized in float ("F" mode, bicubic; no 8-bit rounding)
  so the short side is 224, then centre-cropped to 224 like thermal. Bicubic
  overshoot at edges is clamped back to [0, 1].
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from . import raster
from .errors import MediaError
from .guard import DecodeGuard
from .media_limits import MediaLimits

# Pillow mode → full-scale value of that bit depth.
_FULL_SCALE = {"L": 255.0, "I;16": 65535.0, "I;16B": 65535.0, "I;16L": 65535.0, "I": 65535.0}


def preprocess_depth(data: bytes, limits: MediaLimits, guard: DecodeGuard) -> torch.Tensor:
    """Encoded single-channel disparity image → float32 ``[1, 1, 224, 224]``."""
    image = raster.open_image(data, limits, guard)
    full_scale = _FULL_SCALE.get(image.mode)
    if full_scale is None:
        raise MediaError(
            "unsupported_format",
            f"depth must be a single-channel 8- or 16-bit image, got mode {image.mode}",
        )
    array = np.asarray(image).astype(np.float32)  # [H, W]
    if image.mode == "I" and (array.min() < 0 or array.max() > full_scale):
        raise MediaError("invalid_value", "depth values outside the 16-bit range")
    scaled = Image.fromarray(array / np.float32(full_scale))  # float32 → mode "F"
    scaled = raster.center_crop(raster.resize_short_side(scaled))
    out = torch.from_numpy(np.asarray(scaled, dtype=np.float32).copy()).clamp_(0.0, 1.0)
    return out[None, None]  # [H,W] → [1,1,H,W]
