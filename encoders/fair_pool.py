"""The preprocessing pool: threads that serve requests in turn, heavy items in a lane.

Why not a plain ``ThreadPoolExecutor``: its one FIFO queue serves items in
arrival order, so an image sent behind eight long videos waits for all eight.
Here each owner (the request an item belongs to, ``current_owner``) has its
own queue and free threads take the owners in turn (round robin). And items
that can cost seconds (video, audio: ``HEAVY``) may hold at most all threads
but one when there are two or more, so a cheap item never waits for a heavy
one to finish: it waits at most for another cheap one.

``submit`` returns a ``concurrent.futures.Future``; ``asyncio.wrap_future``
awaits it. Threads are started on first use and run ``initializer`` once.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import Future
from contextvars import ContextVar
from typing import Any, TypeVar

T = TypeVar("T")

#: Who an item is preprocessed for; the worker sets it per request.
current_owner: ContextVar[str] = ContextVar("pandagpt_preprocess_owner", default="")
#: Modalities whose decoding can cost seconds of a core.
HEAVY = frozenset({"video", "audio"})


class _Item:
    __slots__ = ("args", "fn", "future", "heavy")

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...], heavy: bool) -> None:
        self.fn, self.args, self.heavy = fn, args, heavy
        self.future: Future[Any] = Future()


class FairPool:
    def __init__(
        self,
        workers: int,
        *,
        thread_name_prefix: str = "preprocess",
        initializer: Callable[[], None] | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError(f"a pool needs at least one thread, got {workers}")
        self.workers = workers
        self.max_heavy = max(1, workers - 1)
        self._prefix = thread_name_prefix
        self._initializer = initializer
        self._queues: OrderedDict[str, deque[_Item]] = OrderedDict()  # owners in turn order
        self._heavy_running = 0
        self._threads: list[threading.Thread] = []
        self._cond = threading.Condition()
        self._closed = False

    def submit(self, fn: Callable[..., T], *args: Any, heavy: bool = False) -> Future[T]:
        item = _Item(fn, args, heavy)
        with self._cond:
            if self._closed:
                raise RuntimeError("the preprocessing pool is shut down")
            self._queues.setdefault(current_owner.get(), deque()).append(item)
            if len(self._threads) < self.workers:
                self._start_thread()
            self._cond.notify()
        return item.future

    def shutdown(self, cancel_futures: bool = True) -> None:
        with self._cond:
            self._closed = True
            if cancel_futures:
                for queue in self._queues.values():
                    for item in queue:
                        item.future.cancel()
                self._queues.clear()
            self._cond.notify_all()

    # ------------------------------------------------------------ threads
    def _start_thread(self) -> None:
        thread = threading.Thread(
            target=self._run, name=f"{self._prefix}_{len(self._threads)}", daemon=True
        )
        self._threads.append(thread)
        thread.start()

    def _next(self) -> _Item | None:
        """The first runnable item of the owners in turn; that owner goes to the back."""
        for owner, queue in self._queues.items():
            for item in queue:
                if item.heavy and self._heavy_running >= self.max_heavy:
                    continue
                queue.remove(item)
                if queue:
                    self._queues.move_to_end(owner)
                else:
                    del self._queues[owner]
                return item
        return None

    def _run(self) -> None:
        if self._initializer is not None:
            self._initializer()
        while True:
            with self._cond:
                item = self._next()
                while item is None:
                    if self._closed:
                        return
                    self._cond.wait()
                    item = self._next()
                if item.heavy:
                    self._heavy_running += 1
            try:
                if item.future.set_running_or_notify_cancel():
                    try:
                        result = item.fn(*item.args)
                    except BaseException as exc:  # handed to the waiter, as an executor does
                        item.future.set_exception(exc)
                    else:
                        item.future.set_result(result)
            finally:
                if item.heavy:
                    with self._cond:
                        self._heavy_running -= 1
                        self._cond.notify_all()
