"""The worker's admission control: a bounded number of running jobs plus a bounded wait queue.

A job first takes a place in the queue; when the queue is full the worker
refuses at once with `ServerBusy` (the gateway answers 429 with Retry-After)
instead of letting latency grow without bound. A queued job then waits for one
of the running slots. Both counts feed readiness.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from service.errors import ServerBusy


class SlotQueue:
    def __init__(self, *, max_running: int, max_waiting: int, retry_after_s: float = 1.0) -> None:
        if max_running < 1:
            raise ValueError(f"max_running must be >= 1, got {max_running}")
        if max_waiting < 0:
            raise ValueError(f"max_waiting must be >= 0, got {max_waiting}")
        self.max_running = max_running
        self.max_waiting = max_waiting
        self.retry_after_s = retry_after_s
        self._slots = asyncio.Semaphore(max_running)
        self.running = 0
        self.waiting = 0

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one running slot for the body; raises `ServerBusy` when saturated."""
        if self._slots.locked() and self.waiting >= self.max_waiting:
            raise ServerBusy(
                f"Worker is busy: {self.running} jobs running and {self.waiting} waiting.",
                retry_after=self.retry_after_s,
            )
        self.waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self.waiting -= 1
        self.running += 1
        try:
            yield
        finally:
            self.running -= 1
            self._slots.release()
