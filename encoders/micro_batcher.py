"""Batched ImageBind encoding for concurrent asyncio callers (docs/INTERFACES.md).

Media items from concurrent requests are merged into per-key batches, where a
key is (model modality, item shape): images and videos both run the vision
tower but never share a batch. A batch runs when it holds `max_batch_size`
items or its oldest item has waited `max_wait_ms`, whichever comes first; while
a forward runs, new items queue up and go in the next batch.

Threads keep the event loop free: bytes → tensors runs in a pool of
`preprocess_workers` threads (`encoders.media.preprocess`, imported lazily;
`encoders.fair_pool`: requests served in turn, heavy items in a lane), each
item under a `DecodeGuard` (its decoded size reserved through `reserve`, its
CPU time capped, stopped between packets once nobody waits for it),
at most the CPUs this process may use (`encoders.media.threads.usable_cpus`:
affinity and cgroup quota), each running torch single-threaded, since the
pool is the parallelism; every forward runs on one dedicated thread under
`torch.inference_mode()` with the intra-op thread count the encoder was built
with.

Failure isolation: preprocessing and shape checks happen per item, before
batching, so a bad item fails only its own caller. If a batched forward raises,
its items are retried one by one, so only the item that causes it fails.
A caller that gives up (cancellation) is dropped from its batch.

Tracing goes through an optional `EncoderTracer` that the service passes in
(this package imports nothing of the service, nor OpenTelemetry): one span per
item's preprocessing, and one per batched forward, linked to the requests whose
items it holds. Without one, nothing is traced.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from encoders.cuda_graphs import GraphedHeads
from encoders.fair_pool import HEAVY, FairPool
from encoders.imagebind.config import IMAGE_SIZE, IMU_CHANNELS, IMU_LENGTH
from encoders.imagebind.model import ImageBindModel
from encoders.media.threads import single_threaded_torch, usable_cpus

if TYPE_CHECKING:
    from encoders.gpu_jpeg_stage import GpuJpegStage
    from encoders.imagebind.tokenizer import CLIPTokenizer
    from encoders.media import MediaLimits
    from encoders.media.guard import Reserve

logger = logging.getLogger(__name__)

Want = Literal["pandagpt", "embed"]
BatchKey = tuple[str, tuple[int, ...]]
# Called after each successful forward: (modality, batch size, forward seconds).
BatchObserver = Callable[[str, int, float], None]


class EncoderTracer(Protocol):
    """Tracing hooks (service.telemetry provides them when tracing is on)."""

    def span(
        self, name: str, attributes: Mapping[str, str | int | float]
    ) -> contextlib.AbstractContextManager[Any]:
        """A span in the caller's trace, current inside the block."""
        ...

    def capture(self) -> object:
        """The caller's trace position, taken when its item is queued."""
        ...

    def linked_span(
        self, name: str, attributes: Mapping[str, str | int | float], callers: Sequence[object]
    ) -> contextlib.AbstractContextManager[Any]:
        """A span for work done for all `callers` (what `capture` returned) at once."""
        ...


# API modality name -> ImageBind tower.
TOWERS: dict[str, str] = {
    "image": "vision",
    "video": "vision",
    "audio": "audio",
    "thermal": "thermal",
    "depth": "depth",
    "imu": "imu",
    "text": "text",
}
ITEM_NDIM: dict[str, int] = {
    "image": 3,
    "video": 5,
    "audio": 4,
    "thermal": 3,
    "depth": 3,
    "imu": 2,
    "text": 1,
}


def batch_modality(key: BatchKey) -> str:
    """The API modality of a batch: the vision tower runs images (3-D items) and videos (5-D)."""
    tower, shape = key
    if tower == "vision":
        return "video" if len(shape) == ITEM_NDIM["video"] else "image"
    return tower


@dataclass
class EncoderStats:
    forward_calls: int = 0
    items: int = 0
    failed_forwards: int = 0
    batch_sizes: Counter[int] = field(default_factory=Counter)  # size -> number of batches
    batches_by_key: Counter[str] = field(default_factory=Counter)  # "vision[15, 3, ...]" -> n


@dataclass
class _Pending:
    x: Tensor
    want: Want
    future: asyncio.Future[Tensor]
    queued_at: float
    caller: object = None  # EncoderTracer.capture(), when tracing


class Encoder:
    """See the module docstring. Results are float32 CPU tensors `[out_dim]`."""

    def __init__(
        self,
        model: ImageBindModel,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        max_batch_size: int = 32,
        max_wait_ms: float = 5.0,
        preprocess_workers: int | None = None,
        tokenizer: CLIPTokenizer | None = None,
        limits: MediaLimits | None = None,
        on_batch: BatchObserver | None = None,
        tracer: EncoderTracer | None = None,
        cuda_graphs: bool = False,
        gpu_jpeg: bool = False,
        reserve: Reserve | None = None,
    ) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        if max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be >= 0, got {max_wait_ms}")
        self.device = torch.device(device)
        self.dtype = dtype
        self.model = model.to(device=self.device, dtype=dtype).eval()
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_ms / 1000.0
        self.limits = limits
        self.reserve = reserve
        self.on_batch = on_batch
        self.tracer = tracer
        self.stats = EncoderStats()
        # GPU-only paths, ignored elsewhere: encoders/cuda_graphs.py, encoders/gpu_jpeg_stage.py.
        on_cuda = self.device.type == "cuda"
        graphs = cuda_graphs and on_cuda
        self._heads = GraphedHeads(self.model, max_batch_size=max_batch_size) if graphs else None
        self._gpu_jpeg = self._gpu_jpeg_stage() if gpu_jpeg and on_cuda else None
        self._tokenizer = tokenizer
        cpus = usable_cpus()
        self.preprocess_workers = max(1, min(preprocess_workers or cpus, cpus))
        # Preprocessing threads set torch to one thread, which torch also makes the
        # default for threads started later: the forward thread sets its own.
        forward_threads = torch.get_num_threads()
        self._forward_pool = ThreadPoolExecutor(
            1,
            thread_name_prefix="imagebind-forward",
            initializer=torch.set_num_threads,
            initargs=(forward_threads,),
        )
        self._preprocess_pool = FairPool(
            self.preprocess_workers,
            thread_name_prefix="imagebind-preprocess",
            initializer=single_threaded_torch,
        )
        self._queues: dict[BatchKey, list[_Pending]] = {}
        self._arrived: asyncio.Event | None = None
        self._worker: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def out_dim(self) -> int:
        return self.model.config.out_embed_dim

    # ------------------------------------------------------------ public API
    async def encode(self, modality: str, data: bytes) -> Tensor:
        """PandaGPT feature of one media item given as bytes."""
        return await self.encode_input(modality, await self._preprocess(modality, data))

    async def encode_input(self, modality: str, tensor: Tensor) -> Tensor:
        """PandaGPT feature of one already-preprocessed item (with or without batch dim 1)."""
        if modality == "text":
            raise ValueError("PandaGPT has no text media feature; use embed('text', ...)")
        return await self._submit(modality, tensor, "pandagpt")

    async def embed(self, modality: str, data: bytes | str | Tensor) -> Tensor:
        """Upstream ImageBind embedding, L2-normalised (for /v1/embeddings)."""
        if modality == "text":
            if not isinstance(data, str):
                raise ValueError("text embeddings take a str")
            x = await asyncio.wrap_future(self._preprocess_pool.submit(self._tokenize, data))
        elif isinstance(data, Tensor):
            x = data
        elif isinstance(data, bytes):
            x = await self._preprocess(modality, data)
        else:
            raise ValueError(f"{modality} embeddings take bytes or a tensor")
        return await self._submit(modality, x, "embed")

    async def aclose(self) -> None:
        self._closed = True
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        for queue in self._queues.values():
            for p in queue:
                if not p.future.done():
                    p.future.set_exception(RuntimeError("encoder closed"))
        self._queues.clear()
        if self._gpu_jpeg is not None:
            await self._gpu_jpeg.aclose()
        self._preprocess_pool.shutdown(cancel_futures=True)
        # Waits for a forward in progress without blocking the event loop.
        await asyncio.to_thread(self._forward_pool.shutdown, True)

    async def __aenter__(self) -> Encoder:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # ------------------------------------------------------------ per-item steps
    def _gpu_jpeg_stage(self) -> GpuJpegStage | None:
        from encoders.gpu_jpeg_stage import GpuJpegStage
        from encoders.media import MediaLimits
        from encoders.media.gpu_jpeg import gpu_jpeg_available

        if not gpu_jpeg_available(self.device):
            logger.warning("no nvJPEG (torchvision) on %s: JPEGs decode on the CPU", self.device)
            return None
        limits = self.limits or MediaLimits()
        return GpuJpegStage(self.device, limits, max_batch_size=self.max_batch_size)

    async def _preprocess(self, modality: str, data: bytes) -> Tensor:
        from encoders.media import preprocess  # lazy: media decoding libraries are heavy

        if modality == "image" and self._gpu_jpeg is not None:
            on_device = await self._gpu_jpeg.preprocess(data)
            if on_device is not None:
                return on_device
        if self.tracer is None:
            return await self._preprocess_guarded(preprocess, modality, data)
        with self.tracer.span("encoder.preprocess", {"modality": modality, "bytes": len(data)}):
            return await self._preprocess_guarded(preprocess, modality, data)

    async def _preprocess_guarded(
        self, preprocess: Callable[..., Tensor], modality: str, data: bytes
    ) -> Tensor:
        """`preprocess` in the pool under a fresh guard; a caller that goes away stops
        the decoding between packets (the guard's event) instead of leaving it to run."""
        from encoders.media import DecodeGuard, MediaLimits

        limits = self.limits or MediaLimits()
        stop = threading.Event()
        guard = DecodeGuard(max_cpu_s=limits.max_decode_cpu_s, reserve=self.reserve, cancelled=stop)
        future = self._preprocess_pool.submit(
            preprocess, modality, data, limits, guard, heavy=modality in HEAVY
        )
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            stop.set()
            future.cancel()
            raise

    def _tokenize(self, text: str) -> Tensor:
        if self._tokenizer is None:
            from encoders.imagebind.tokenizer import CLIPTokenizer

            self._tokenizer = CLIPTokenizer()
        return self._tokenizer([text])[0]  # (77,)

    def _item_shape(self, modality: str, x: Tensor) -> tuple[int, ...]:
        """The expected per-item shape; video and audio take any clip count S = x.shape[0]."""
        cfg = self.model.config
        s = IMAGE_SIZE
        return {
            "image": (3, s, s),
            "thermal": (1, s, s),
            "depth": (1, s, s),
            "imu": (IMU_CHANNELS, IMU_LENGTH),
            "text": (cfg.context_length,),
            "video": (x.shape[0], 3, cfg.video_frames, s, s),
            "audio": (x.shape[0], 1, cfg.audio_num_mel_bins, cfg.audio_target_len),
        }[modality]

    def _validate(self, modality: str, x: Tensor) -> Tensor:
        if modality not in TOWERS:
            raise ValueError(f"unknown modality {modality!r}; expected one of {sorted(TOWERS)}")
        ndim = ITEM_NDIM[modality]
        if x.ndim == ndim + 1 and x.shape[0] == 1:
            x = x[0]  # drop the batch dim of 1 that preprocess returns
        expected = self._item_shape(modality, x) if x.ndim == ndim else None
        if expected is None or tuple(x.shape) != expected or x.numel() == 0:
            raise ValueError(
                f"{modality} input has shape {list(x.shape)}; expected "
                f"{list(expected) if expected else f'{ndim} dims'} (optionally with a "
                "leading batch dim of 1)"
            )
        if modality == "text":
            if x.dtype != torch.long:
                raise ValueError(f"text input must be int64 token ids, got {x.dtype}")
        elif not x.is_floating_point():
            raise ValueError(f"{modality} input must be floating point, got {x.dtype}")
        return x.detach() if x.device == self.device else x.detach().cpu()

    async def _submit(self, modality: str, tensor: Tensor, want: Want) -> Tensor:
        if self._closed:
            raise RuntimeError("encoder closed")
        x = self._validate(modality, tensor)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Tensor] = loop.create_future()
        key: BatchKey = (TOWERS[modality], tuple(x.shape))
        caller = self.tracer.capture() if self.tracer is not None else None
        pending = _Pending(x, want, future, time.monotonic(), caller)
        self._queues.setdefault(key, []).append(pending)
        if self._worker is None or self._worker.done():
            self._arrived = asyncio.Event()
            self._worker = loop.create_task(self._run(), name="imagebind-batcher")
        assert self._arrived is not None
        self._arrived.set()
        return await future

    # ------------------------------------------------------------ batching
    def _oldest_key(self) -> BatchKey | None:
        live = [(q[0].queued_at, k) for k, q in self._queues.items() if q]
        return min(live)[1] if live else None

    async def _run(self) -> None:
        assert self._arrived is not None
        arrived = self._arrived
        while True:
            key = self._oldest_key()
            if key is None:
                arrived.clear()
                await arrived.wait()
                continue
            queue = self._queues[key]
            deadline = queue[0].queued_at + self.max_wait_s
            while len(queue) < self.max_batch_size:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                arrived.clear()
                try:  # (asyncio.wait_for on 3.11 may drop aclose()'s cancellation)
                    async with asyncio.timeout(remaining):
                        await arrived.wait()
                except TimeoutError:
                    break
            taken = queue[: self.max_batch_size]
            del queue[: self.max_batch_size]
            if not queue:
                del self._queues[key]
            batch = [p for p in taken if not p.future.done()]  # drop cancelled callers
            if batch:
                await self._run_batch(key, batch)

    async def _run_batch(self, key: BatchKey, batch: list[_Pending]) -> None:
        if self.tracer is None:
            await self._forward_batch(key, batch)
            return
        attributes = {"modality": batch_modality(key), "batch_size": len(batch)}
        with self.tracer.linked_span("encoder.batch", attributes, [p.caller for p in batch]):
            await self._forward_batch(key, batch)

    async def _forward_batch(self, key: BatchKey, batch: list[_Pending]) -> None:
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        self.stats.forward_calls += 1
        try:
            results = await loop.run_in_executor(
                self._forward_pool,
                self._forward,
                key[0],
                [p.x for p in batch],
                [p.want for p in batch],
            )
        except asyncio.CancelledError:  # aclose() while this batch was running
            for p in batch:
                if not p.future.done():
                    p.future.set_exception(RuntimeError("encoder closed"))
            raise
        except Exception as exc:
            self.stats.failed_forwards += 1
            if len(batch) > 1:  # find the item that breaks it; the others still get results
                for p in batch:
                    await self._run_batch(key, [p])
                return
            if not batch[0].future.done():
                batch[0].future.set_exception(exc)
            return
        finally:
            elapsed = time.perf_counter() - started
        if self.on_batch is not None:
            try:  # a broken metrics hook must not leave callers waiting
                self.on_batch(batch_modality(key), len(batch), elapsed)
            except Exception:
                logger.exception("Encoder on_batch observer failed")
        self.stats.items += len(batch)
        self.stats.batch_sizes[len(batch)] += 1
        self.stats.batches_by_key[f"{key[0]}{list(key[1])}"] += 1
        for p, result in zip(batch, results, strict=True):
            if not p.future.done():
                p.future.set_result(result)

    def _forward(self, tower: str, items: list[Tensor], wants: list[Want]) -> list[Tensor]:
        """Runs on the forward thread."""
        model = self.model
        with torch.inference_mode():
            x = torch.stack(items).to(self.device, non_blocking=True)  # (B, ...)
            if x.is_floating_point():
                x = x.to(self.dtype)
            if self._heads is not None:
                head, num_clips = self._heads(tower, x)
            else:
                head, num_clips = model.encode_heads(tower, x)
            out: dict[Want, Tensor] = {}
            if "pandagpt" in wants:
                out["pandagpt"] = model.postprocess(tower, head, num_clips, pandagpt=True).cpu()
            if "embed" in wants:
                upstream = model.postprocess(tower, head, num_clips)
                out["embed"] = F.normalize(upstream, dim=-1).cpu()
        # Cloned outside inference mode: callers may use them with autograd-enabled modules.
        return [out[w][i].clone() for i, w in enumerate(wants)]
