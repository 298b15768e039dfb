"""Image → vision input ``[1, 3, 224, 224]``.

Reference step: PandaGPT ``data.load_and_transform_vision_data``: RGB, bicubic
short-side resize to 224, centre crop, [0, 1], CLIP mean/std. Decoding, EXIF
and alpha handling are in ``raster.py`` (departures listed there).
"""

from __future__ import annotations

import torch

from . import raster
from .limits import MediaLimits

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def normalize_clip(x: torch.Tensor) -> torch.Tensor:
    """(x − mean) / std per channel; channels on dim 0, any trailing dims."""
    shape = (3,) + (1,) * (x.dim() - 1)
    mean = torch.tensor(CLIP_MEAN, dtype=x.dtype).view(shape)
    std = torch.tensor(CLIP_STD, dtype=x.dtype).view(shape)
    return x.sub(mean).div(std)


def preprocess_image(data: bytes, limits: MediaLimits) -> torch.Tensor:
    """Encoded image bytes → float32 ``[1, 3, 224, 224]``."""
    image = raster.flatten_alpha(raster.open_image(data, limits)).convert("RGB")
    image = raster.center_crop(raster.resize_short_side(image))
    return normalize_clip(raster.to_tensor(image)).unsqueeze(0)  # [3,H,W] → [1,3,H,W]
