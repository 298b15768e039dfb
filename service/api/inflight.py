"""The gateway's admission control: at most N requests in flight, a bounded
priority queue behind them, 429 beyond.

A ticket follows one request from admission to its last byte (for streams, the
stream's `finally` releases it) and moves the running/waiting gauges. When the
limit is reached, up to `max_waiting` requests wait for a place, lower
`priority` first and in arrival order within one priority (vLLM's convention);
a released place is handed straight to the head of the queue, so a newcomer
never overtakes a queued request.
"""

from __future__ import annotations

from service.errors import ServerBusy
from service.metrics import Metrics
from service.waiters import PriorityWaiters


class Ticket:
    def __init__(self, limit: InflightLimit) -> None:
        self._limit = limit
        self._running = False
        self._released = False

    def started(self) -> None:
        """The first token arrived: waiting → running."""
        if not self._running and not self._released:
            self._running = True
            self._limit._move_to_running()

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._limit._release(self._running)


class InflightLimit:
    def __init__(
        self, limit: int, *, retry_after_s: float, metrics: Metrics, max_waiting: int = 0
    ) -> None:
        self.limit = limit
        self.max_waiting = max_waiting
        self.retry_after_s = retry_after_s
        self.in_flight = 0
        self._metrics = metrics
        self._queue = PriorityWaiters()

    @property
    def queued(self) -> int:
        return len(self._queue)

    async def acquire(self, priority: int = 0) -> Ticket:
        """A place, at once or after queueing; `ServerBusy` when the queue is full too."""
        if self.in_flight < self.limit and not self._queue:
            self.in_flight += 1
            return self._ticket()
        if len(self._queue) >= self.max_waiting:
            self._metrics.rejected_requests.labels(reason="busy").inc()
            raise ServerBusy(
                f"Server is at capacity ({self.limit} requests in flight"
                f"{f', {len(self._queue)} queued' if self.max_waiting else ''}); retry later.",
                retry_after=self.retry_after_s,
            )
        self._metrics.requests_queued.inc()
        try:
            await self._queue.wait(priority, pass_on=self._hand_on)
        finally:
            self._metrics.requests_queued.dec()
        return self._ticket()  # the releasing request handed its place over

    def _ticket(self) -> Ticket:
        self._metrics.requests_waiting.inc()
        return Ticket(self)

    def _move_to_running(self) -> None:
        self._metrics.requests_waiting.dec()
        self._metrics.requests_running.inc()

    def _release(self, running: bool) -> None:
        (self._metrics.requests_running if running else self._metrics.requests_waiting).dec()
        self._hand_on()

    def _hand_on(self) -> None:
        """A place is free: the first waiter still waiting gets it, else it frees."""
        if not self._queue.hand_over():
            self.in_flight -= 1
