"""The preprocessing stage: bytes → model inputs on threads, off the event loop.

Items run in a `FairPool` (`encoders.fair_pool`: requests served in turn, heavy
items in a lane) of `workers` threads, each running torch single-threaded, since
the pool is the parallelism. Each item runs under a fresh `DecodeGuard`: its
decoded size reserved through `reserve`, its CPU time capped, and its decoding
stopped between packets once nobody waits for it.

On a CUDA worker with the GPU JPEG path on, images go to the `GpuJpegStage`
first (`encoders/gpu_jpeg_stage.py`); what it sends back (a PNG, an EXIF-rotated
photo, ...) takes the CPU path. `encoders.media` is imported on first use: the
media decoding libraries are heavy.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import torch
from torch import Tensor

from encoders.fair_pool import HEAVY, FairPool
from encoders.media.threads import single_threaded_torch

if TYPE_CHECKING:
    from encoders.gpu_jpeg_stage import GpuJpegStage
    from encoders.media import MediaLimits
    from encoders.media.guard import Reserve
    from encoders.tracing import EncoderTracer

logger = logging.getLogger(__name__)

T = TypeVar("T")


class PreprocessStage:
    """See the module docstring; `preprocess` is the stage, `run` borrows its pool."""

    def __init__(
        self,
        workers: int,
        *,
        device: torch.device,
        limits: MediaLimits | None = None,
        reserve: Reserve | None = None,
        tracer: EncoderTracer | None = None,
        gpu_jpeg: bool = False,
        gpu_jpeg_batch_size: int = 32,
    ) -> None:
        self.limits = limits
        self.reserve = reserve
        self.tracer = tracer
        self.pool = FairPool(
            workers, thread_name_prefix="imagebind-preprocess", initializer=single_threaded_torch
        )
        # nvJPEG runs on CUDA only; elsewhere every image takes the CPU path.
        nvjpeg = gpu_jpeg and device.type == "cuda"
        self.gpu_jpeg = _gpu_jpeg_stage(device, limits, gpu_jpeg_batch_size) if nvjpeg else None

    async def preprocess(self, modality: str, data: bytes) -> Tensor:
        """`encoders.media.preprocess` of one item (on the device for nvJPEG images)."""
        from encoders.media import preprocess  # lazy: media decoding libraries are heavy

        if modality == "image" and self.gpu_jpeg is not None:
            on_device = await self.gpu_jpeg.preprocess(data)
            if on_device is not None:
                return on_device
        if self.tracer is None:
            return await self._guarded(preprocess, modality, data)
        with self.tracer.span("encoder.preprocess", {"modality": modality, "bytes": len(data)}):
            return await self._guarded(preprocess, modality, data)

    async def run(self, fn: Callable[[str], T], arg: str) -> T:
        """`fn(arg)` in the pool (light work such as tokenising, owned like the rest)."""
        return await asyncio.wrap_future(self.pool.submit(fn, arg))

    async def aclose(self) -> None:
        if self.gpu_jpeg is not None:
            await self.gpu_jpeg.aclose()
        self.pool.shutdown(cancel_futures=True)

    async def _guarded(
        self, preprocess: Callable[..., Tensor], modality: str, data: bytes
    ) -> Tensor:
        """`preprocess` in the pool under a fresh guard; a caller that goes away stops
        the decoding between packets (the guard's event) instead of leaving it to run."""
        from encoders.media import DecodeGuard, MediaLimits

        limits = self.limits or MediaLimits()
        stop = threading.Event()
        guard = DecodeGuard(max_cpu_s=limits.max_decode_cpu_s, reserve=self.reserve, cancelled=stop)
        future = self.pool.submit(
            preprocess, modality, data, limits, guard, heavy=modality in HEAVY
        )
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            stop.set()
            future.cancel()
            raise


def _gpu_jpeg_stage(
    device: torch.device, limits: MediaLimits | None, max_batch_size: int
) -> GpuJpegStage | None:
    """The nvJPEG stage, or None where torchvision has no nvJPEG for `device`."""
    from encoders.gpu_jpeg_stage import GpuJpegStage
    from encoders.media import MediaLimits
    from encoders.media.gpu_jpeg import gpu_jpeg_available

    if not gpu_jpeg_available(device):
        logger.warning("no nvJPEG (torchvision) on %s: JPEGs decode on the CPU", device)
        return None
    return GpuJpegStage(device, limits or MediaLimits(), max_batch_size=max_batch_size)
