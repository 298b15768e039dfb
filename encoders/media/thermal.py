"""Thermal image → thermal input ``[1, 1, 224, 224]``.

Reference step: PandaGPT ``data.load_and_transform_thermal_data``: grayscale
("L", Pillow's ITU-R 601 luma of an RGB file), bicubic short-side resize to 224,
centre crop, [0, 1], **no** normalisation. Transparent images are flattened
onto white first (``raster.py``).
"""

from __future__ import annotations

import torch

from . import raster
from .guard import DecodeGuard
from .media_limits import MediaLimits


def preprocess_thermal(data: bytes, limits: MediaLimits, guard: DecodeGuard) -> torch.Tensor:
    """Encoded thermal image bytes → float32 ``[1, 1, 224, 224]``."""
    image = raster.to_mode(raster.flatten_alpha(raster.open_image(data, limits, guard)), "L")
    image = raster.center_crop(raster.resize_short_side(image))
    return raster.to_tensor(image).unsqueeze(0)  # [1,H,W] → [1,1,H,W]
