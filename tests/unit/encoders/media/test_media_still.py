"""Image, thermal and depth: geometry, EXIF, alpha and depth scaling decisions."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from encoders.media import MediaError, preprocess
from encoders.media.image import CLIP_MEAN, CLIP_STD


def _encode(image: Image.Image, fmt: str = "PNG", **save: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **save)
    return buffer.getvalue()


def _unnormalise(x: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    return x * std + mean


@pytest.mark.parametrize("size", [(300, 224), (224, 500), (100, 80), (225, 1001)])
def test_image_any_size_gives_224(size):
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (*size[::-1], 3), np.uint8))
    out = preprocess("image", _encode(image))
    assert out.shape == (1, 3, 224, 224) and out.dtype == torch.float32


def test_image_exif_orientation_is_applied():
    # Left half red, right half blue; EXIF 6 says "rotate 90° clockwise to view".
    array = np.zeros((224, 448, 3), np.uint8)
    array[:, :224, 0] = 255
    array[:, 224:, 2] = 255
    image = Image.fromarray(array)
    exif = image.getexif()
    exif[0x0112] = 6
    plain = _unnormalise(preprocess("image", _encode(image, "JPEG", quality=95)))
    rotated = _unnormalise(preprocess("image", _encode(image, "JPEG", quality=95, exif=exif)))
    # Upright after rotation: red on top, blue below; the centre crop shows both.
    assert rotated[0, 0, :50].mean() > 0.9 and rotated[0, 2, :50].mean() < 0.1
    assert rotated[0, 2, -50:].mean() > 0.9
    # Without the tag the centre crop straddles the vertical red|blue edge.
    assert plain[0, 0, :, :50].mean() > 0.9 and plain[0, 2, :, -50:].mean() > 0.9


def test_image_alpha_is_flattened_onto_white():
    array = np.zeros((240, 240, 4), np.uint8)  # fully transparent black
    array[:, :120] = (0, 0, 0, 255)  # left half opaque black
    out = _unnormalise(preprocess("image", _encode(Image.fromarray(array))))
    assert torch.allclose(out[..., :, 150:], torch.ones(1, 3, 224, 74), atol=1e-5)
    assert torch.allclose(out[..., :, :100], torch.zeros(1, 3, 224, 100), atol=1e-5)


def test_image_palette_transparency_and_grayscale():
    palette = Image.new("P", (230, 230), 0)
    palette.putpalette([0, 0, 0, 255, 0, 0])
    palette.info["transparency"] = 0
    out = _unnormalise(preprocess("image", _encode(palette, transparency=0)))
    assert torch.allclose(out, torch.ones_like(out), atol=1e-5)
    gray = preprocess("image", _encode(Image.new("L", (250, 230), 128)))
    assert torch.allclose(_unnormalise(gray), torch.full_like(gray, 128 / 255), atol=1e-5)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF"])
def test_image_formats(fmt):
    image = Image.new("RGB", (256, 240), (10, 200, 30))
    assert preprocess("image", _encode(image, fmt)).shape == (1, 3, 224, 224)


def test_thermal_rgb_is_read_as_luma_without_normalisation():
    image = Image.new("RGB", (320, 256), (200, 100, 50))
    out = preprocess("thermal", _encode(image))
    luma = round((200 * 299 + 100 * 587 + 50 * 114) / 1000) / 255
    assert out.shape == (1, 1, 224, 224)
    assert torch.allclose(out, torch.full_like(out, luma), atol=1 / 255)


def test_depth_16bit_is_divided_by_65535():
    array = np.full((300, 240), 16384, np.uint16)
    image = Image.fromarray(array)
    assert image.mode.startswith("I;16")
    out = preprocess("depth", _encode(image))
    assert out.shape == (1, 1, 224, 224) and out.dtype == torch.float32
    assert torch.allclose(out, torch.full_like(out, 16384 / 65535), atol=1e-6)


def test_depth_8bit_is_divided_by_255_and_resized_in_float():
    ramp = np.tile(np.linspace(0, 255, 448).astype(np.uint8), (224, 1))  # [224, 448]
    out = preprocess("depth", _encode(Image.fromarray(ramp)))
    assert out.shape == (1, 1, 224, 224)
    assert out.min() >= 0.0 and out.max() <= 1.0
    # Short side already 224, long 448 → 224: the centre column ≈ the middle of the ramp.
    assert abs(out[0, 0, :, 112].mean().item() - 0.5) < 0.01


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "LA"])
def test_depth_refuses_colour_and_alpha(mode):
    image = Image.new(mode, (230, 230))
    with pytest.raises(MediaError) as info:
        preprocess("depth", _encode(image))
    assert info.value.reason == "unsupported_format"
