"""Still images: no copies that change nothing (exact mode stays bit-identical), and
the opt-in fast mode stays close to exact."""

from __future__ import annotations

import io
from functools import cache

import numpy as np
import pytest
import torch
from PIL import Image

import encoders.media.raster as raster
from encoders.media import MediaLimits, preprocess
from encoders.media.image import CLIP_STD, normalize_clip
from tests.unit.encoders.media.conftest import MEDIA

FAST = MediaLimits(fidelity="fast")
STD = torch.tensor(CLIP_STD).view(1, 3, 1, 1)


def _levels(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest difference of two normalised images in 8-bit levels."""
    return float(((a - b) * STD * 255).abs().max())


@cache
def _photo(width: int = 2400, height: int = 1800, orientation: int | None = None) -> bytes:
    """A large JPEG: a fixture upscaled, with noise (real photos are not smooth)."""
    base = Image.open(MEDIA / "bird_image.jpg")
    big = np.asarray(base.convert("RGB").resize((width, height), Image.Resampling.BICUBIC))
    noisy = big.astype(np.int16) + np.random.default_rng(1).integers(-8, 9, big.shape)
    image = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))
    out = io.BytesIO()
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    image.save(out, "JPEG", quality=90, exif=exif.tobytes())
    return out.getvalue()


def test_no_copy_when_nothing_changes(media, monkeypatch):
    """Upright RGB JPEG: no exif_transpose, no convert; the output is unchanged."""
    calls: list[str] = []
    real_transpose, real_convert = raster.ImageOps.exif_transpose, Image.Image.convert
    monkeypatch.setattr(
        raster.ImageOps,
        "exif_transpose",
        lambda *a, **k: calls.append("t") or real_transpose(*a, **k),
    )
    monkeypatch.setattr(
        Image.Image,
        "convert",
        lambda self, *a, **k: calls.append("c") or real_convert(self, *a, **k),
    )
    got = preprocess("image", media("bird_image.jpg"))
    assert calls == []
    monkeypatch.undo()
    reference = Image.open(io.BytesIO(media("bird_image.jpg"))).convert("RGB")
    expected = raster.center_crop(raster.resize_short_side(reference))
    assert torch.equal(got, normalize_clip(raster.to_tensor(expected)).unsqueeze(0))


@pytest.mark.parametrize("orientation", [1, 3, 6, 8])
def test_orientation_is_still_applied(orientation):
    data = _photo(640, 480, orientation)
    image = raster.open_image(data, MediaLimits())
    assert image.size == ((480, 640) if orientation in (6, 8) else (640, 480))


@pytest.mark.parametrize("name", ["bird_image.jpg", "dog_image.jpg", "190662.jpg"])
def test_fast_mode_is_close_on_the_fixtures(name, media):
    exact, fast = preprocess("image", media(name)), preprocess("image", media(name), FAST)
    assert fast.shape == exact.shape == (1, 3, 224, 224)
    levels = _levels(exact, fast)
    print(f"{name}: fast vs exact, max {levels:.2f} levels")
    assert levels <= 4.01  # 1 where no JPEG scaling applies (torch vs Pillow bicubic)


@pytest.mark.parametrize("orientation", [None, 6])
def test_fast_mode_is_close_on_a_large_photo(orientation):
    data = _photo(2400, 1800, orientation)  # decoded at 1/4 scale: 600×450 ≥ 2 × 298×224
    exact, fast = preprocess("image", data), preprocess("image", data, FAST)
    levels = _levels(exact, fast)
    mean = float(((exact - fast) * STD * 255).abs().mean())
    print(f"2400×1800 (orientation {orientation}): max {levels:.2f}, mean {mean:.3f} levels")
    assert levels <= 8.01 and mean <= 0.5


def test_fast_mode_decodes_jpeg_at_a_reduced_scale(monkeypatch):
    sizes: list[tuple[int, int]] = []
    real = raster.upright
    monkeypatch.setattr(raster, "upright", lambda image: sizes.append(image.size) or real(image))
    preprocess("image", _photo(), FAST)
    # 1/4 scale: 600×450 is at least twice the 298×224 target; 1/8 (300×225) is not.
    assert sizes == [(600, 450)]


def test_fast_mode_takes_png_too():
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (300, 500, 3), np.uint8))
    out = io.BytesIO()
    image.save(out, "PNG")
    data = out.getvalue()
    assert _levels(preprocess("image", data), preprocess("image", data, FAST)) <= 2.0


def test_fidelity_is_checked():
    with pytest.raises(ValueError, match="fidelity"):
        MediaLimits(fidelity="approximate")  # type: ignore[arg-type]
