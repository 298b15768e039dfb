"""The gateway's admission control: at most N requests in flight, 429 beyond.

A ticket follows one request from admission to its last byte (for streams, the
stream's `finally` releases it) and moves the running/waiting gauges.
"""

from __future__ import annotations

from service.errors import ServerBusy
from service.metrics import Metrics


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
    def __init__(self, limit: int, *, retry_after_s: float, metrics: Metrics) -> None:
        self.limit = limit
        self.retry_after_s = retry_after_s
        self.in_flight = 0
        self._metrics = metrics

    def acquire(self) -> Ticket:
        if self.in_flight >= self.limit:
            self._metrics.rejected_requests.labels(reason="busy").inc()
            raise ServerBusy(
                f"Server is at capacity ({self.limit} requests in flight); retry later.",
                retry_after=self.retry_after_s,
            )
        self.in_flight += 1
        self._metrics.requests_waiting.inc()
        return Ticket(self)

    def _move_to_running(self) -> None:
        self._metrics.requests_waiting.dec()
        self._metrics.requests_running.inc()

    def _release(self, running: bool) -> None:
        self.in_flight -= 1
        (self._metrics.requests_running if running else self._metrics.requests_waiting).dec()
