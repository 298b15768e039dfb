"""A byte budget for what requests hold in memory at once.

Large media arrive as request bodies (a 30 MB image is a 40 MB JSON body), are
parsed, decoded and, in split mode, sent on to a worker. Without a bound, a
burst of such requests grows the process until the container is killed, taking
every stream on it down. So each request holds a `Reservation` against its
process's `MemoryBudget`: the HTTP layer reserves the body before reading it
(from Content-Length, or chunk by chunk), the media fetcher adds what it
decodes or downloads. A reservation that does not fit is `ServerBusy` (429 with
Retry-After): the client retries later instead of the pod dying. Everything a
request reserved is given back when its response ends.

Request data is counted on the event loop; `charge` finds the current request's
reservation through a contextvar, so the code that fetches media needs no extra
parameter. Decoded media are counted from the preprocessing threads (`hold`:
what an item will hold once decoded, computed from its headers before decoding,
given back when the item is done), so the counter takes a lock, and a thread
may wait a moment for room where a request on the event loop never waits.

When the budget drains after holding a lot, a garbage collection runs: an
error's traceback forms a cycle with the frames that held a request's body, and
an idle process allocates nothing that would trigger the collector, so without
it those bodies stay resident after a burst. `freeze_startup_objects` keeps that
collection short (it skips everything loaded at start-up, the model included).
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable
from contextvars import ContextVar

from service.config import AdmissionSettings
from service.errors import ServerBusy
from service.memory.allocator import trim
from service.metrics import Metrics

_log = logging.getLogger(__name__)
# A drained budget that held at least this much since the last collection collects.
COLLECT_AFTER_BYTES = 256 * 2**20

current_reservation: ContextVar[Reservation | None] = ContextVar(
    "pandagpt_memory_reservation", default=None
)


class MemoryBudget:
    def __init__(
        self, limit_bytes: int, *, metrics: Metrics | None = None, retry_after_s: float = 1.0
    ) -> None:
        if limit_bytes < 1:
            raise ValueError(f"a memory budget needs at least one byte, got {limit_bytes}")
        self.limit_bytes = limit_bytes
        self.retry_after_s = retry_after_s
        self.in_use = 0
        self._held_since_collect = 0
        self._metrics = metrics
        self._room = threading.Condition()  # guards in_use; notified when bytes come back
        if metrics is not None:
            metrics.memory_budget.set(limit_bytes)

    def set_limit(self, limit_bytes: int) -> None:
        """Resize, e.g. once the process has loaded its model (what is left is known then)."""
        if limit_bytes < 1:
            raise ValueError(f"a memory budget needs at least one byte, got {limit_bytes}")
        with self._room:
            self.limit_bytes = limit_bytes
            self._room.notify_all()
        if self._metrics is not None:
            self._metrics.memory_budget.set(limit_bytes)

    def reservation(self) -> Reservation:
        return Reservation(self)

    def hold(self, nbytes: int, what: str, wait_s: float = 0.0) -> Callable[[], None]:
        """From any thread: hold `nbytes` for `what`, waiting up to `wait_s` for room
        (never on the event loop); `ServerBusy` when it does not come. Returns the
        function that gives them back (once)."""
        deadline = time.monotonic() + wait_s
        with self._room:
            while self.in_use + nbytes > self.limit_bytes and nbytes <= self.limit_bytes:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._room.wait(left)
            self._take(nbytes, what)
        released = threading.Event()

        def give_back() -> None:
            if not released.is_set():
                released.set()
                self._give(nbytes)

        return give_back

    def _take(self, nbytes: int, what: str) -> None:
        with self._room:
            if self.in_use + nbytes > self.limit_bytes:
                if self._metrics is not None:
                    self._metrics.rejected_requests.labels(reason="memory").inc()
                raise ServerBusy(
                    f"The server holds too much data right now ({what} of {nbytes} bytes"
                    f" does not fit its {self.limit_bytes}-byte memory budget); retry later.",
                    retry_after=self.retry_after_s,
                )
            self._set(self.in_use + nbytes)
            self._held_since_collect += nbytes

    def _give(self, nbytes: int) -> None:
        with self._room:
            self._set(self.in_use - nbytes)
            self._room.notify_all()
            collect = self.in_use == 0 and self._held_since_collect >= COLLECT_AFTER_BYTES
            if collect:
                self._held_since_collect = 0
        if collect:
            start = time.perf_counter()
            found = gc.collect()
            _log.debug(
                "collected %d objects after a burst in %.1f ms",
                found,
                (time.perf_counter() - start) * 1000,
            )
            # malloc_trim walks every heap, the model's too: in a thread (ctypes lets go
            # of the GIL), never on the event loop.
            threading.Thread(target=trim, name="malloc-trim", daemon=True).start()

    def _set(self, in_use: int) -> None:
        self.in_use = in_use
        if self._metrics is not None:
            self._metrics.memory_in_use.set(in_use)


class Reservation:
    """What one request holds; grows as its data arrives, released once at its end."""

    def __init__(self, budget: MemoryBudget) -> None:
        self._budget = budget
        self.nbytes = 0

    def grow(self, nbytes: int, what: str = "a request") -> None:
        """Hold `nbytes` more; `ServerBusy` (and nothing held) when they do not fit."""
        if nbytes <= 0:
            return
        self._budget._take(nbytes, what)
        self.nbytes += nbytes

    def release(self) -> None:
        self._budget._give(self.nbytes)
        self.nbytes = 0


def budget_from_settings(
    settings: AdmissionSettings, metrics: Metrics | None = None
) -> MemoryBudget:
    """The configured budget, or the container-sized default (docs/DESIGN.md §5)."""
    return MemoryBudget(
        budget_bytes(settings), metrics=metrics, retry_after_s=settings.retry_after_s
    )


def budget_bytes(settings: AdmissionSettings) -> int:
    """The configured size, or half of what the container leaves the process now."""
    from service.memory.limits import auto_budget_bytes

    return settings.memory_budget_bytes or auto_budget_bytes()


def freeze_startup_objects() -> None:
    """Move everything alive now out of the collector's sight (`gc.freeze`): a server
    calls it once loaded, so that later collections scan only what requests made."""
    gc.collect()
    gc.freeze()


def charge(nbytes: int, what: str) -> None:
    """Add `nbytes` to the current request's reservation (no-op outside one)."""
    reservation = current_reservation.get()
    if reservation is not None:
        reservation.grow(nbytes, what)
