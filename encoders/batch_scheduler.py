"""Micro-batching: concurrent callers' items merged into per-key batches, oldest first.

A batch key is (ImageBind tower, item shape): images and videos both run the
vision tower but never share a batch, since only items of one shape stack. A
batch runs when it holds `max_batch_size` items or its oldest item has waited
`max_wait_s`, whichever comes first; the key whose oldest item came first goes
first. While a forward runs, new items queue up and go in the next batch.

The forward itself is the caller's (`BatchForward`, run on the executor it
passes: the encoder's one forward thread), so this module knows nothing of the
model. If a batched forward raises, its items are retried one by one, so only
the item that causes it fails. A caller that gives up (cancellation) is dropped
from its batch.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from torch import Tensor

from encoders.closing import cancel_task, fail_waiting
from encoders.input_checks import ITEM_NDIM, TOWERS

if TYPE_CHECKING:
    from encoders.tracing import EncoderTracer

logger = logging.getLogger(__name__)

Want = Literal["pandagpt", "embed"]
BatchKey = tuple[str, tuple[int, ...]]
# Runs one batch of one tower on the forward thread: (tower, items, wants) -> one
# result per item, in order.
BatchForward = Callable[[str, list[Tensor], list[Want]], list[Tensor]]
# Called after each successful forward: (modality, batch size, forward seconds).
BatchObserver = Callable[[str, int, float], None]


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


class BatchScheduler:
    """See the module docstring. `submit` returns the item's result from `forward`."""

    def __init__(
        self,
        forward: BatchForward,
        executor: Executor,
        *,
        max_batch_size: int,
        max_wait_s: float,
        on_batch: BatchObserver | None = None,
        tracer: EncoderTracer | None = None,
    ) -> None:
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self.on_batch = on_batch
        self.tracer = tracer
        self.stats = EncoderStats()
        self._forward = forward
        self._executor = executor
        self._queues: dict[BatchKey, list[_Pending]] = {}
        self._arrived: asyncio.Event | None = None
        self._worker: asyncio.Task[None] | None = None

    async def submit(self, modality: str, x: Tensor, want: Want) -> Tensor:
        """Queues one checked item (`encoders.input_checks.checked_item`) and waits for it."""
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

    async def aclose(self) -> None:
        """Stops scheduling; callers still queued, or in the batch that was running, fail."""
        await cancel_task(self._worker)
        self._worker = None
        fail_waiting(p.future for queue in self._queues.values() for p in queue)
        self._queues.clear()

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
                self._executor,
                self._forward,
                key[0],
                [p.x for p in batch],
                [p.want for p in batch],
            )
        except asyncio.CancelledError:  # aclose() while this batch was running
            fail_waiting(p.future for p in batch)
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
        self._observe(key, len(batch), elapsed)
        for p, result in zip(batch, results, strict=True):
            if not p.future.done():
                p.future.set_result(result)

    def _observe(self, key: BatchKey, size: int, elapsed: float) -> None:
        if self.on_batch is not None:
            try:  # a broken metrics hook must not leave callers waiting
                self.on_batch(batch_modality(key), size, elapsed)
            except Exception:
                logger.exception("Encoder on_batch observer failed")
        self.stats.items += size
        self.stats.batch_sizes[size] += 1
        self.stats.batches_by_key[f"{key[0]}{list(key[1])}"] += 1
