"""The fast fidelity on a GPU: batched nvJPEG decoding and the resize on the device.

On a GPU worker the encoder's forward outruns host-side JPEG decoding by an
order of magnitude (README, Encoders). With ``PANDAGPT_MEDIA_FIDELITY=fast`` on
CUDA, baseline JPEGs are decoded in batches by nvJPEG (torchvision's
``decode_jpeg`` with a CUDA device), then resized with torch's antialiased
bicubic, centre-cropped and normalised there, as the CPU fast path does on
uint8 data (``image.py``): the preprocessed tensor never visits the host.

Only what this path reproduces takes it: a JPEG whose header geometry passes
the limits (checked before any pixel is decoded, as in ``raster.open_image``),
three colour channels and no EXIF turn. Everything else (PNG, greyscale or
CMYK JPEG, a rotated phone photo, data nvJPEG refuses) goes back to the
caller's CPU path, which decodes it or says why it cannot.
"""

from __future__ import annotations

import io

import torch
import torch.nn.functional as F
from PIL import ExifTags, Image

from . import raster
from .image import CLIP_MEAN, CLIP_STD
from .media_limits import MediaLimits

HeaderSize = tuple[int, int]


def gpu_jpeg_available(device: torch.device) -> bool:
    """Whether torchvision's nvJPEG decoder can run on ``device``."""
    if device.type != "cuda":
        return False
    try:
        from torchvision.io import decode_jpeg  # noqa: F401
    except Exception:  # torchvision missing or built without its image extension
        return False
    return True


def jpeg_header(data: bytes, limits: MediaLimits) -> HeaderSize | None:
    """(width, height) when ``data`` can take the GPU path; None sends it to the CPU.

    Raises ``MediaError`` for a geometry over the limits, as the CPU path would."""
    try:
        image = Image.open(io.BytesIO(data), formats=("JPEG",))
        size, mode = image.size, image.mode
        turned = image.getexif().get(ExifTags.Base.Orientation, 1) not in (0, 1)
    except Exception:  # not a JPEG Pillow can read: the CPU path says what it is
        return None
    raster.check_geometry(size, limits)
    if mode != "RGB" or turned or image.format != "JPEG":
        return None
    return size


class GpuJpegPreprocessor:
    """Encoded JPEGs → normalised ``[3, 224, 224]`` tensors on ``device``.

    Runs on one worker thread: ``preprocess_batch`` synchronises with the device
    before returning so that a caller may hand the tensors to another stream."""

    def __init__(self, device: torch.device, dtype: torch.dtype = torch.float32):
        from torchvision.io import decode_jpeg  # lazily: only CUDA workers need torchvision

        self._decode = decode_jpeg
        self.device = device
        self.dtype = dtype
        self._mean = torch.tensor(CLIP_MEAN, device=device).view(3, 1, 1)
        self._std = torch.tensor(CLIP_STD, device=device).view(3, 1, 1)

    def preprocess_batch(self, items: list[bytes]) -> list[torch.Tensor | None]:
        """One tensor per item; None where nvJPEG refused the data (CPU path decides)."""
        encoded = [torch.frombuffer(bytearray(data), dtype=torch.uint8) for data in items]
        try:
            decoded = self._decode(encoded, device=self.device)
        except RuntimeError:  # one bad item fails the batch: find it one by one
            decoded = [self._decode_one(data) for data in encoded]
        out = [None if planes is None else self._resize_crop(planes) for planes in decoded]
        torch.cuda.current_stream(self.device).synchronize()
        return out

    def _decode_one(self, data: torch.Tensor) -> torch.Tensor | None:
        try:
            return self._decode(data, device=self.device)
        except RuntimeError:
            return None

    def _resize_crop(self, planes: torch.Tensor) -> torch.Tensor | None:
        if planes.shape[0] != 3:  # nvJPEG gave another channel count: leave it to Pillow
            return None
        height, width = planes.shape[1:]
        target_w, target_h = raster.short_side_size((width, height))
        scaled = F.interpolate(
            planes.unsqueeze(0).float(),
            size=(target_h, target_w),
            mode="bicubic",
            antialias=True,
            align_corners=False,
        )[0]
        # The CPU fast path resizes uint8 data: round and clamp to the same levels.
        levels = scaled.round_().clamp_(0, 255)
        top = round((target_h - raster.SIZE) / 2.0)  # as raster.center_crop: half to even
        left = round((target_w - raster.SIZE) / 2.0)
        crop = levels[:, top : top + raster.SIZE, left : left + raster.SIZE]
        return crop.div(255).sub_(self._mean).div_(self._std).to(self.dtype)
