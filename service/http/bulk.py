"""One thread for the byte-heavy steps of large requests.

Parsing a 40 MB JSON body or decoding 30 MB of base64 holds the GIL for the
length of each C call. Run on the event loop, that stalls every request; run in
the default executor, six such threads take turns at the GIL and the loop waits
behind all of them. These steps cannot run in parallel anyway (they hold the
GIL), so a single thread does them all, one C call at a time, and the loop gets
the GIL back after each: its stalls stay within one call (milliseconds).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


class BulkWorker:
    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bulk")

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
