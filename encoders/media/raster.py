"""Safe still-image decoding and the shared resize / centre-crop (Pillow).

Reference steps (PandaGPT ``data.py`` vision and thermal loaders, torchvision
``Resize(224, BICUBIC)`` + ``CenterCrop(224)`` on a PIL image):

1. resize with PIL bicubic so the short side is 224, long side int(224·long/short);
2. centre-crop 224 with offsets round((size − 224)/2), Python's round-half-even.

Deliberate departures from the reference, all for untrusted input:

- Only an allow-list of Pillow formats is opened (no EPS, which runs Ghostscript,
  and none of the rarely used plugins).
- The decoded size is checked from the header before any pixel is decoded
  (``Image.open`` is lazy): pixel count, longest side, aspect ratio.
- EXIF orientation is applied (the reference ignores it, so a phone photo taken
  upright would be fed sideways); images without the tag are unchanged.
- Transparency is flattened onto **white** (the reference's ``convert("RGB")``
  drops alpha and exposes whatever colour sits under transparent pixels, often
  black); an opaque image is unchanged.
"""

from __future__ import annotations

import io
from functools import lru_cache

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import MediaError
from .limits import MediaLimits

SIZE = 224

# Formats whose decoders are common and in-process; animated ones yield frame 0.
_FORMATS = ("JPEG", "MPO", "PNG", "GIF", "WEBP", "BMP", "DIB", "TIFF", "PPM", "TGA", "ICO", "AVIF")


@lru_cache(maxsize=1)
def _allowed_formats() -> tuple[str, ...]:
    """The allow-list minus plugins this Pillow build lacks (AVIF is optional)."""
    Image.init()  # registers every plugin once; Image.open would otherwise KeyError on MPO
    return tuple(name for name in _FORMATS if name in Image.OPEN)


# Background for transparent pixels (see module docstring).
_ALPHA_BACKGROUND = (255, 255, 255)


def open_image(data: bytes, limits: MediaLimits) -> Image.Image:
    """Open ``data`` lazily, check its header geometry against ``limits``, then decode.

    Returns a loaded, EXIF-upright image in its native mode.
    """
    try:
        # DecompressionBombWarning is raised, not warned, when a caller runs with
        # warnings as errors; either way it means too large (caught below).
        image = Image.open(io.BytesIO(data), formats=_allowed_formats())
        check_geometry(image.size, limits)
        image.load()
    except MediaError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise MediaError("too_large", f"image over the pixel limit: {exc}") from exc
    except UnidentifiedImageError as exc:
        raise MediaError("unsupported_format", "not an image format this service reads") from exc
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError) as exc:
        # Pillow reports truncated or malformed data with any of these.
        raise MediaError("corrupt", f"image could not be decoded: {exc}") from exc
    try:
        upright = ImageOps.exif_transpose(image)
    except Exception:
        # A malformed EXIF block does not spoil the pixels: keep them as stored.
        upright = None
    return upright if upright is not None else image


def check_geometry(size: tuple[int, int], limits: MediaLimits) -> None:
    """Refuse a (width, height) over the pixel, side or aspect-ratio limits."""
    width, height = size
    if width <= 0 or height <= 0:
        raise MediaError("corrupt", f"image has no pixels ({width}×{height})")
    if width * height > limits.max_pixels:
        raise MediaError(
            "too_large", f"image is {width}×{height}, over the {limits.max_pixels}-pixel limit"
        )
    if max(width, height) > limits.max_image_side:
        raise MediaError(
            "bad_dimensions",
            f"image is {width}×{height}, a side over the {limits.max_image_side} limit",
        )
    if max(width, height) / min(width, height) > limits.max_aspect_ratio:
        raise MediaError(
            "bad_dimensions",
            f"image is {width}×{height}, aspect ratio over {limits.max_aspect_ratio}",
        )


def flatten_alpha(image: Image.Image) -> Image.Image:
    """Composite a transparent image onto the background; other images pass through."""
    if image.mode in ("RGBA", "LA", "PA") or (
        image.mode in ("P", "L", "RGB") and "transparency" in image.info
    ):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*_ALPHA_BACKGROUND, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image


def resize_short_side(image: Image.Image, size: int = SIZE) -> Image.Image:
    """Bicubic resize so the short side is ``size`` (long = int(size·long/short))."""
    width, height = image.size
    if width <= height:
        new_w, new_h = size, int(size * height / width)
    else:
        new_w, new_h = int(size * width / height), size
    return image.resize((new_w, new_h), Image.Resampling.BICUBIC)


def center_crop(image: Image.Image, size: int = SIZE) -> Image.Image:
    """Crop ``size``×``size`` from the centre; offsets round half to even like the reference."""
    width, height = image.size
    top = round((height - size) / 2.0)
    left = round((width - size) / 2.0)
    return image.crop((left, top, left + size, top + size))


def to_tensor(image: Image.Image) -> torch.Tensor:
    """8-bit image → float32 [C, H, W] in [0, 1] (torchvision ``ToTensor``)."""
    array = np.asarray(image, dtype=np.uint8)
    if array.ndim == 2:
        array = array[:, :, None]
    # [H, W, C] → [C, H, W]
    tensor = torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()
    return tensor.to(torch.float32).div(255)
