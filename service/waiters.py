"""Requests waiting for a place that another one frees: lower `priority` first
(vLLM's convention), arrival order within one priority.

Both admission queues use it: the gateway's (`service.api.inflight`) and the
worker's (`service.worker.slots`). A freed place is handed to the head waiter
directly rather than freed and raced for, so a newcomer never overtakes a
queued request.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable

_Waiter = tuple[int, int, asyncio.Future[None]]  # (priority, arrival, future)


class PriorityWaiters:
    def __init__(self) -> None:
        self._heap: list[_Waiter] = []
        self._arrivals = itertools.count()

    def __len__(self) -> int:
        return len(self._heap)

    async def wait(self, priority: int, pass_on: Callable[[], None]) -> None:
        """Returns once `hand_over` gives this waiter a place. A waiter cancelled
        just as its place came calls `pass_on`, so the place is not lost."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiter: _Waiter = (priority, next(self._arrivals), future)
        heapq.heappush(self._heap, waiter)
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                pass_on()
            elif waiter in self._heap:  # (a hand-over may have dropped it already)
                self._heap.remove(waiter)
                heapq.heapify(self._heap)
            raise

    def hand_over(self) -> bool:
        """Gives a freed place to the first waiter still waiting; False when none is."""
        while self._heap:
            _, _, future = heapq.heappop(self._heap)
            if not future.done():
                future.set_result(None)
                return True
        return False
