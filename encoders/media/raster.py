"""Safe still-image decoding and the shared resize / centre-crop (Pillow).

Reference steps (PandaGPT ``data.py`` vision and thermal loaders, torchvision
``Resize(224, BICUBIC)`` + ``CenterCrop(224)`` on a PIL image):

1. resize with PIL bicubic so the short side is 224, long side int(224·long/short);
2. centre-crop 224 with offsets round((size − 224)/2), Python's round-half-even.

Deliberate departures from the reference, all for untrusted input:

- Only an allow-list of Pillow formats is opened (``MediaLimits.image_formats``:
  what the sniffer accepts; no EPS, which runs Ghostscript, and none of the
  rarely used plugins).
- The decoded size is checked from the header before any pixel is decoded
  (``Image.open`` is lazy): pixel count, longest side, aspect ratio; then the
  bytes decoding will hold (``decoded_bytes``) are reserved from the guard.
- EXIF orientation is applied (the reference ignores it, so a phone photo taken
  upright would be fed sideways); images without the tag are unchanged, and
  not copied (neither is a convert to the mode an image already has).
- Transparency is flattened onto **white** (the reference's ``convert("RGB")``
  drops alpha and exposes whatever colour sits under transparent pixels, often
  black); an opaque image is unchanged.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from functools import lru_cache

import numpy as np
import torch
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from .errors import MediaError
from .guard import DecodeGuard
from .media_limits import MediaLimits

SIZE = 224


@lru_cache(maxsize=8)
def _allowed_formats(formats: tuple[str, ...]) -> tuple[str, ...]:
    """``formats`` minus plugins this Pillow build lacks; animated ones yield frame 0."""
    Image.init()  # registers every plugin once; Image.open would otherwise KeyError on MPO
    return tuple(name for name in formats if name in Image.OPEN)


# Background for transparent pixels (see module docstring).
_ALPHA_BACKGROUND = (255, 255, 255)


def open_image(
    data: bytes,
    limits: MediaLimits,
    guard: DecodeGuard | None = None,
    draft: Callable[[tuple[int, int]], tuple[int, int]] | None = None,
) -> Image.Image:
    """Open ``data`` lazily, check its header geometry against ``limits``, then decode.

    ``draft(header_size)``, for a JPEG, names the smallest size worth decoding: the
    decoder then downscales in the DCT domain by the largest of 1/2, 1/4, 1/8 that
    keeps both sides at least that big (``Image.draft``; the fast fidelity only).
    Returns a loaded, EXIF-upright image in its native mode.
    """
    try:
        # DecompressionBombWarning is raised, not warned, when a caller runs with
        # warnings as errors; either way it means too large (caught below).
        image = Image.open(io.BytesIO(data), formats=_allowed_formats(limits.image_formats))
        check_geometry(image.size, limits)
        if draft is not None and image.format in ("JPEG", "MPO"):
            image.draft(image.mode, draft(image.size))
        if guard is None:
            guard = DecodeGuard(max_cpu_s=limits.max_decode_cpu_s)
        guard.reserve(decoded_bytes(image), limits.max_decoded_bytes, "the image")
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
    return upright(image)


def decoded_bytes(image: Image.Image) -> int:
    """What decoding ``image`` (opened, not loaded) and bringing it upright in RGB holds
    at most: its pixels in their decoded mode, plus a full-size copy for an EXIF turn
    and one for a mode conversion, and the RGBA buffers of flattening transparency."""
    pixels = image.width * image.height
    wide = image.mode in ("I", "F") or image.mode.startswith("I;")
    native = pixels * len(image.getbands()) * (4 if wide else 1)
    total = native
    if _orientation(image) in _TRANSPOSING:
        total += native
    if image.mode not in ("RGB", "L"):
        total += pixels * 3
    if "A" in image.getbands() or "transparency" in image.info:
        total += 3 * pixels * 4  # RGBA, its background, the composite
    return total


def _orientation(image: Image.Image) -> int:
    try:
        return int(image.getexif().get(ExifTags.Base.Orientation, 1))
    except Exception:
        return 1


# EXIF orientations that move pixels (1 is "as stored").
_TRANSPOSING = frozenset(range(2, 9))


def upright(image: Image.Image) -> Image.Image:
    """``image`` turned as its EXIF orientation says; the image itself when there is
    nothing to turn (``ImageOps.exif_transpose`` would return a full-size copy)."""
    try:
        if image.getexif().get(ExifTags.Base.Orientation, 1) not in _TRANSPOSING:
            return image
        turned = ImageOps.exif_transpose(image)
    except Exception:
        # A malformed EXIF block does not spoil the pixels: keep them as stored.
        return image
    return turned if turned is not None else image


def to_mode(image: Image.Image, mode: str) -> Image.Image:
    """``image.convert(mode)``, without the full-size copy it makes when already in ``mode``."""
    return image if image.mode == mode else image.convert(mode)


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


def short_side_size(size: tuple[int, int], short: int = SIZE) -> tuple[int, int]:
    """(width, height) with the short side ``short`` and long = int(short·long/short side)."""
    width, height = size
    if width <= height:
        return short, int(short * height / width)
    return int(short * width / height), short


def resize_short_side(image: Image.Image, size: int = SIZE) -> Image.Image:
    """Bicubic resize so the short side is ``size`` (long = int(size·long/short))."""
    return image.resize(short_side_size(image.size, size), Image.Resampling.BICUBIC)


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
