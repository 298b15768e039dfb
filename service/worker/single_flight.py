"""One piece of work per key, shared by every caller that asks for it meanwhile.

Concurrent requests for the same media item share one cache lookup and one
encode. A caller that goes away leaves the work running for the others; when
the last one goes, the work is cancelled (a media item's decoding then stops
between packets) and the next caller starts afresh.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Hashable
from typing import Any, Generic, TypeVar

V = TypeVar("V")


class SingleFlight(Generic[V]):
    def __init__(self) -> None:
        self._tasks: dict[Hashable, asyncio.Task[V]] = {}
        self._callers: dict[asyncio.Task[V], int] = {}

    def __contains__(self, key: Hashable) -> bool:
        """Whether work for `key` is running now (joining it needs no work of one's own)."""
        return key in self._tasks

    async def run(self, key: Hashable, work: Callable[[], Coroutine[Any, Any, V]]) -> V:
        """The result of `work()` for `key`, started now or joined if already running."""
        task = self._tasks.get(key)
        if task is None:
            task = asyncio.create_task(work())
            self._tasks[key] = task
            task.add_done_callback(lambda done: self._forget(key, done))
        self._callers[task] = self._callers.get(task, 0) + 1
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if self._callers.get(task) == 1 and not task.done():  # the last caller
                self._tasks.pop(key, None)
                task.cancel()
            raise
        finally:
            left = self._callers.pop(task, 1) - 1
            if left > 0:
                self._callers[task] = left

    def _forget(self, key: Hashable, task: asyncio.Task[V]) -> None:
        if self._tasks.get(key) is task:
            del self._tasks[key]
        if not task.cancelled():
            task.exception()  # retrieved: every caller may have gone away
