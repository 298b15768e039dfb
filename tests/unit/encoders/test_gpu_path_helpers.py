"""The host-side parts of the encoder's GPU paths, which run anywhere: graph batch
buckets and the JPEG header triage that decides what nvJPEG may decode. The
device-side parts are in tests/parity/test_encoder_gpu.py (needs CUDA)."""

from __future__ import annotations

import io

import pytest
import torch
from PIL import Image

from bench.encoder import build_model, small_config
from encoders.cuda_graphs import batch_buckets
from encoders.media import MediaError, MediaLimits
from encoders.media.gpu_jpeg import gpu_jpeg_available, jpeg_header
from encoders.micro_batcher import Encoder


def encoded(mode: str, fmt: str, size: tuple[int, int] = (320, 240), **save) -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, 128 if mode == "L" else (10, 120, 200)).save(out, fmt, **save)
    return out.getvalue()


@pytest.mark.parametrize(
    ("max_batch", "buckets"),
    [(1, [1]), (2, [1, 2]), (8, [1, 2, 4, 8]), (12, [1, 2, 4, 8, 12]), (32, [1, 2, 4, 8, 16, 32])],
)
def test_batch_buckets_cover_every_batch_size(max_batch: int, buckets: list[int]) -> None:
    assert batch_buckets(max_batch) == buckets


def test_rgb_jpeg_goes_to_the_gpu_with_its_size() -> None:
    assert jpeg_header(encoded("RGB", "JPEG"), MediaLimits()) == (320, 240)


def test_what_nvjpeg_would_get_wrong_goes_to_the_cpu() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: turned a quarter
    assert jpeg_header(encoded("RGB", "JPEG", exif=exif.tobytes()), MediaLimits()) is None
    assert jpeg_header(encoded("L", "JPEG"), MediaLimits()) is None
    assert jpeg_header(encoded("CMYK", "JPEG"), MediaLimits()) is None
    assert jpeg_header(encoded("RGB", "PNG"), MediaLimits()) is None
    assert jpeg_header(b"\xff\xd8\xff\xe0 truncated", MediaLimits()) is None


def test_oversized_jpeg_is_refused_before_decoding() -> None:
    with pytest.raises(MediaError) as refused:
        jpeg_header(encoded("RGB", "JPEG", (400, 300)), MediaLimits(max_pixels=1000))
    assert refused.value.reason == "too_large"


def test_gpu_paths_stay_off_on_the_cpu() -> None:
    assert not gpu_jpeg_available(torch.device("cpu"))
    config = small_config(quick=True)
    encoder = Encoder(
        build_model(config, torch.device("cpu"), torch.float32), cuda_graphs=True, gpu_jpeg=True
    )
    assert encoder._heads is None and encoder._gpu_jpeg is None
