"""The encoder's GPU-only paths against its eager and CPU ones (skipped without CUDA).

CUDA-graph replay must give what eager gives at every batch size (a batch of 3
replays the graph of 4); the nvJPEG fast path must give the CPU fast path's
pixels within a few levels, and features close to the exact path's."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest
import torch
from PIL import Image

from encoders.imagebind.config import ImageBindConfig
from encoders.imagebind.model import ImageBindModel
from encoders.media import MediaLimits, preprocess
from encoders.media.errors import MediaError
from encoders.micro_batcher import Encoder

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

MEDIA = Path(__file__).parents[1] / "fixtures" / "media"
JPEGS = ["bird_image.jpg", "car_image.jpg", "dog_image.jpg", "190662.jpg", "210009.jpg"]


@pytest.fixture(scope="module")
def model() -> ImageBindModel:
    """Real geometry, narrow towers (random weights): what the graphs capture is the same."""
    torch.manual_seed(0)
    sizes = {
        f"{tower}_embed_dim": 128
        for tower in ("vision", "audio", "text", "depth", "thermal", "imu")
    }
    blocks = {
        f"{tower}_num_blocks": 2 for tower in ("vision", "audio", "text", "depth", "thermal", "imu")
    }
    heads = {
        f"{tower}_num_heads": 4 for tower in ("vision", "audio", "text", "depth", "thermal", "imu")
    }
    config = ImageBindConfig(out_embed_dim=128, **sizes, **blocks, **heads)
    return ImageBindModel(config).to("cuda").eval().requires_grad_(False)


def encode_all(encoder: Encoder, modality: str, items: list[torch.Tensor]) -> torch.Tensor:
    async def run() -> list[torch.Tensor]:
        async with encoder:
            return await asyncio.gather(*(encoder.encode_input(modality, x) for x in items))

    return torch.stack(asyncio.run(run()))


@pytest.mark.parametrize("batch", [1, 3, 8])
@pytest.mark.parametrize(
    ("modality", "shape"),
    [("image", (3, 224, 224)), ("audio", (3, 1, 128, 204)), ("video", (2, 3, 2, 224, 224))],
)
def test_cuda_graphs_match_eager(model, modality: str, shape: tuple[int, ...], batch: int) -> None:
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    items = [torch.randn(shape, generator=torch.Generator().manual_seed(i)) for i in range(batch)]
    eager = encode_all(Encoder(model, device="cuda", max_batch_size=8), modality, items)
    graphed_encoder = Encoder(model, device="cuda", max_batch_size=8, cuda_graphs=True)
    graphed = encode_all(graphed_encoder, modality, items)
    assert graphed_encoder._heads is not None and graphed_encoder._heads.replays >= 1
    torch.testing.assert_close(graphed, eager, rtol=1e-4, atol=1e-5)


def test_cuda_graphs_replay_without_capturing_again(model) -> None:
    encoder = Encoder(model, device="cuda", max_batch_size=4, cuda_graphs=True)
    items = [torch.randn(3, 224, 224) for _ in range(3)]

    async def run() -> tuple[list[torch.Tensor], int, list[torch.Tensor]]:
        async with encoder:
            first = await asyncio.gather(*(encoder.encode_input("image", x) for x in items))
            captures = encoder._heads.captures
            again = await asyncio.gather(*(encoder.encode_input("image", x) for x in items))
            return first, captures, again

    first, captures, again = asyncio.run(run())
    assert encoder._heads.captures == captures  # replayed, not captured again
    torch.testing.assert_close(torch.stack(again), torch.stack(first), rtol=1e-4, atol=1e-5)


def test_nvjpeg_pixels_match_the_cpu_fast_path() -> None:
    from encoders.media.gpu_jpeg import GpuJpegPreprocessor

    fast = MediaLimits(fidelity="fast")
    gpu = GpuJpegPreprocessor(torch.device("cuda"))
    datas = [(MEDIA / name).read_bytes() for name in JPEGS]
    on_device = gpu.preprocess_batch(datas)
    for name, data, tensor in zip(JPEGS, datas, on_device, strict=True):
        assert tensor is not None and tensor.is_cuda, name
        cpu_fast = preprocess("image", data, fast)[0]
        exact = preprocess("image", data, MediaLimits())[0]
        # Normalised units: one level is 1/255/std ≈ 0.015. The CPU fast path decodes at a
        # DCT scale, nvJPEG at full size: a few levels apart at edges, close on average.
        diff = (tensor.cpu() - cpu_fast).abs()
        assert diff.mean() < 0.05, (name, diff.mean())
        against_exact = (tensor.cpu() - exact).abs()
        assert against_exact.mean() < 0.05, (name, against_exact.mean())


def test_nvjpeg_stage_leaves_what_it_cannot_do_to_the_cpu_path(model) -> None:
    png = io.BytesIO()
    Image.new("RGB", (300, 200), (10, 200, 30)).save(png, "PNG")
    grey = io.BytesIO()
    Image.new("L", (300, 200), 90).save(grey, "JPEG")
    huge = io.BytesIO()
    Image.new("RGB", (64, 64)).save(huge, "JPEG")
    tiny_limits = MediaLimits(fidelity="fast", max_pixels=1000)
    encoder = Encoder(model, device="cuda", limits=MediaLimits(fidelity="fast"), gpu_jpeg=True)

    async def run() -> None:
        async with encoder:
            assert encoder._gpu_jpeg is not None
            bird = (MEDIA / "bird_image.jpg").read_bytes()
            for data in (bird, png.getvalue(), grey.getvalue()):
                feature = await encoder.encode("image", data)
                assert feature.shape == (model.config.out_embed_dim,)
                assert torch.isfinite(feature).all()
            assert encoder._gpu_jpeg.items == 3  # all three looked at; two sent back
            with pytest.raises(MediaError):
                await encoder.encode("image", b"\xff\xd8\xff\xe0 not really a jpeg")
            encoder._gpu_jpeg.limits = tiny_limits
            with pytest.raises(MediaError) as refused:
                await encoder.encode("image", huge.getvalue())
            assert refused.value.reason == "too_large"

    asyncio.run(run())
