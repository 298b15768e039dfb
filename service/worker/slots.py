"""The worker's admission control: a bounded number of running jobs plus a bounded wait queue.

A job first takes a place in the queue; when the queue is full the worker
refuses at once with `ServerBusy` (the gateway answers 429 with Retry-After)
instead of letting latency grow without bound. A queued job then waits for one
of the running slots, lower `priority` first and in arrival order within one
(the job's priority, vLLM's convention); a freed slot goes straight to the
head of the queue. Both counts feed readiness.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from service.errors import ServerBusy
from service.waiters import PriorityWaiters


class SlotQueue:
    def __init__(self, *, max_running: int, max_waiting: int, retry_after_s: float = 1.0) -> None:
        if max_running < 1:
            raise ValueError(f"max_running must be >= 1, got {max_running}")
        if max_waiting < 0:
            raise ValueError(f"max_waiting must be >= 0, got {max_waiting}")
        self.max_running = max_running
        self.max_waiting = max_waiting
        self.retry_after_s = retry_after_s
        self.running = 0
        self._queue = PriorityWaiters()

    @property
    def waiting(self) -> int:
        return len(self._queue)

    @asynccontextmanager
    async def slot(self, priority: int = 0) -> AsyncIterator[None]:
        """Hold one running slot for the body; raises `ServerBusy` when saturated."""
        await self._acquire(priority)
        try:
            yield
        finally:
            self._hand_on()

    async def _acquire(self, priority: int) -> None:
        if self.running < self.max_running and not self._queue:
            self.running += 1
            return
        if len(self._queue) >= self.max_waiting:
            raise ServerBusy(
                f"Worker is busy: {self.running} jobs running and {self.waiting} waiting.",
                retry_after=self.retry_after_s,
            )
        await self._queue.wait(priority, pass_on=self._hand_on)

    def _hand_on(self) -> None:
        """A slot is free: the first job still waiting gets it (running stays), else it frees."""
        if not self._queue.hand_over():
            self.running -= 1
