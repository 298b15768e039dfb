"""Image → vision input ``[1, 3, 224, 224]``.

Reference step: PandaGPT ``data.load_and_transform_vision_data``: RGB, bicubic
short-side resize to 224, centre crop, [0, 1], CLIP mean/std. Decoding, EXIF
and alpha handling are in ``raster.py`` (departures listed there).

``MediaLimits.fidelity == "fast"`` (opt-in, ``PANDAGPT_MEDIA_FIDELITY``) trades
exactness for speed on large photos: a JPEG is decoded at the largest DCT
scale (1/2, 1/4, 1/8) that keeps at least twice the resize target
(``Image.draft``), and the resize runs on the uint8 channels-last tensor with
torch's antialiased bicubic (the same a = −0.5 kernel as Pillow's, within one
level on identical input). The target size and crop come from the full-size
header, as in the exact path. Differences against exact are reported in the
README (Encoders); they are not bit-identical.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from . import raster
from .guard import DecodeGuard
from .media_limits import MediaLimits

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def normalize_clip(x: torch.Tensor) -> torch.Tensor:
    """(x − mean) / std per channel; channels on dim 0, any trailing dims."""
    shape = (3,) + (1,) * (x.dim() - 1)
    mean = torch.tensor(CLIP_MEAN, dtype=x.dtype).view(shape)
    std = torch.tensor(CLIP_STD, dtype=x.dtype).view(shape)
    return x.sub(mean).div(std)


def preprocess_image(data: bytes, limits: MediaLimits, guard: DecodeGuard) -> torch.Tensor:
    """Encoded image bytes → float32 ``[1, 3, 224, 224]``."""
    if limits.fidelity == "fast":
        return _preprocess_fast(data, limits, guard)
    image = raster.to_mode(raster.flatten_alpha(raster.open_image(data, limits, guard)), "RGB")
    image = raster.center_crop(raster.resize_short_side(image))
    return normalize_clip(raster.to_tensor(image)).unsqueeze(0)  # [3,H,W] → [1,3,H,W]


def _preprocess_fast(data: bytes, limits: MediaLimits, guard: DecodeGuard) -> torch.Tensor:
    header: list[tuple[int, int]] = []

    def draft(size: tuple[int, int]) -> tuple[int, int]:
        header.append(size)
        width, height = raster.short_side_size(size)
        return 2 * width, 2 * height

    image = raster.to_mode(
        raster.flatten_alpha(raster.open_image(data, limits, guard, draft)), "RGB"
    )
    full = header[0] if header else image.size
    if (image.width - image.height) * (full[0] - full[1]) < 0:  # EXIF turned it a quarter
        full = (full[1], full[0])
    width, height = raster.short_side_size(full)
    rgb = torch.from_numpy(np.asarray(image, dtype=np.uint8).copy())  # [H, W, 3]
    planes = rgb.permute(2, 0, 1).unsqueeze(0)  # [1, 3, H, W], channels-last memory
    scaled = F.interpolate(
        planes, size=(height, width), mode="bicubic", antialias=True, align_corners=False
    )[0]  # uint8 [3, height, width]
    top = round((height - raster.SIZE) / 2.0)  # as raster.center_crop: half to even
    left = round((width - raster.SIZE) / 2.0)
    crop = scaled[:, top : top + raster.SIZE, left : left + raster.SIZE]
    return normalize_clip(crop.to(torch.float32).div(255)).unsqueeze(0)  # [1, 3, 224, 224]
