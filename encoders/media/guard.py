"""What decoding one media item may cost: memory reserved up front, CPU, cancellation.

Why: the byte limits bound what a client sends, not what it decodes into. A
125 KB FLAC of silence declares 8 channels at 192 kHz for 299 s (1.8 GB of
float samples); one keyframe followed by 17,000 P-frames makes a 530 KB video
cost 13 s of decoding. So each modality computes from its headers what an item
will hold once decoded and what decoding will cost, and calls the guard before
decoding:

- ``reserve(nbytes, what)``: over the per-item cap is ``too_large`` (it could
  never fit); otherwise the bytes are held against the process's memory budget
  (the ``reserve`` callable the service supplies: it waits a moment for room,
  then raises ``MediaBusy``) until the item is done.
- ``check()``, called between packets: ``MediaCancelled`` once nobody waits
  for the item, ``too_complex`` past the CPU-time ceiling (the decoding
  thread's own CPU time; decoders run single-threaded here, see ``container``).

A guard serves one item in one thread; ``close()`` gives back what it holds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from .errors import MediaCancelled, MediaError

#: Holds ``nbytes`` against the process's budget (may wait, may raise ``MediaBusy``)
#: and returns the function that gives them back.
Reserve = Callable[[int, str], Callable[[], None]]


class DecodeGuard:
    def __init__(
        self,
        *,
        max_cpu_s: float,
        reserve: Reserve | None = None,
        cancelled: threading.Event | None = None,
    ) -> None:
        self.max_cpu_s = max_cpu_s
        self._reserve = reserve
        self._cancelled = cancelled
        self._releases: list[Callable[[], None]] = []
        self.reserved = 0
        self._cpu_start = time.thread_time()

    def reserve(self, nbytes: int, cap: int, what: str) -> None:
        """Hold ``nbytes`` for ``what`` until ``close``; over ``cap`` is ``too_large``."""
        nbytes = max(0, int(nbytes))
        if self.reserved + nbytes > cap:
            raise MediaError(
                "too_large",
                f"{what} would decode to {_mib(self.reserved + nbytes)}, over the "
                f"{_mib(cap)} per-item limit",
            )
        if self._reserve is not None and nbytes:
            self._releases.append(self._reserve(nbytes, what))
        self.reserved += nbytes

    def check(self) -> None:
        """Between packets: stop if nobody waits any more or the CPU ceiling is passed."""
        if self._cancelled is not None and self._cancelled.is_set():
            raise MediaCancelled("the request for this item went away")
        spent = time.thread_time() - self._cpu_start
        if spent > self.max_cpu_s:
            raise MediaError(
                "too_complex",
                f"decoding took over {self.max_cpu_s:g} s of CPU time ({spent:.1f} s so far)",
            )

    def close(self) -> None:
        while self._releases:
            self._releases.pop()()
        self.reserved = 0

    def __enter__(self) -> DecodeGuard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _mib(nbytes: int) -> str:
    return f"{nbytes / 2**20:.1f} MiB"
