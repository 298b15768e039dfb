"""Batches JPEGs for nvJPEG on a GPU worker (the fast fidelity on CUDA).

Batching is natural, not timed: while one batch decodes on the stage's thread,
the JPEGs that arrive wait, and the next batch takes all of them (up to
``max_batch_size``). Under load batches fill; alone, an image waits for nothing.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import torch

from encoders.closing import cancel_task, fail_waiting
from encoders.media.errors import MediaError
from encoders.media.gpu_jpeg import GpuJpegPreprocessor, jpeg_header
from encoders.media.media_limits import MediaLimits

_Pending = tuple[bytes, "asyncio.Future[torch.Tensor | None]"]


class GpuJpegStage:
    def __init__(self, device: torch.device, limits: MediaLimits, *, max_batch_size: int = 32):
        self.limits = limits
        self.max_batch_size = max_batch_size
        self._preprocessor = GpuJpegPreprocessor(device)
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="nvjpeg")
        self._pending: list[_Pending] = []
        self._runner: asyncio.Task[None] | None = None
        self.batches = 0
        self.items = 0

    async def preprocess(self, data: bytes) -> torch.Tensor | None:
        """The normalised ``[3, 224, 224]`` tensor on the device, or None: use the CPU path.

        Raises ``MediaError`` for a JPEG whose header is over the limits."""
        future: asyncio.Future[torch.Tensor | None] = asyncio.get_running_loop().create_future()
        self._pending.append((data, future))
        if self._runner is None or self._runner.done():
            self._runner = asyncio.get_running_loop().create_task(self._run(), name="nvjpeg")
        return await future

    async def aclose(self) -> None:
        await cancel_task(self._runner)
        fail_waiting(future for _, future in self._pending)
        self._pending.clear()
        await asyncio.to_thread(self._thread.shutdown, True)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending:
            taken = self._pending[: self.max_batch_size]
            del self._pending[: self.max_batch_size]
            live = [(data, future) for data, future in taken if not future.done()]
            if not live:
                continue
            try:
                results = await loop.run_in_executor(
                    self._thread, self._preprocess_batch, [data for data, _ in live]
                )
            except Exception as exc:  # a device fault: every caller hears of it
                results = [exc] * len(live)
            self.batches += 1
            self.items += len(live)
            for (_, future), result in zip(live, results, strict=True):
                if future.done():
                    continue
                if isinstance(result, BaseException):
                    future.set_exception(result)
                else:
                    future.set_result(result)

    def _preprocess_batch(self, items: list[bytes]) -> list[torch.Tensor | Exception | None]:
        """Runs on the stage's thread: header checks, then one nvJPEG batch."""
        results: list[torch.Tensor | Exception | None] = [None] * len(items)
        eligible: list[int] = []
        for index, data in enumerate(items):
            try:
                if jpeg_header(data, self.limits) is not None:
                    eligible.append(index)
            except MediaError as exc:
                results[index] = exc
        if eligible:
            decoded = self._preprocessor.preprocess_batch([items[i] for i in eligible])
            for index, tensor in zip(eligible, decoded, strict=True):
                results[index] = tensor
        return results
