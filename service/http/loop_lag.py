"""Measure event-loop stalls: how late a periodic timer fires.

Every request of a process shares one event loop, so one blocking step (a big
JSON parse, a base64 decode, a hash) delays all of them, health probes too. A
task sleeps `interval_s` over and over and records how much later than asked
it woke: that delay is the longest any callback held the loop meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from service.metrics import Metrics


async def _watch(metrics: Metrics, interval_s: float) -> None:
    loop = asyncio.get_running_loop()
    worst = 0.0
    while True:
        start = loop.time()
        await asyncio.sleep(interval_s)
        lag = max(0.0, loop.time() - start - interval_s)
        metrics.event_loop_lag.observe(lag)
        if lag > worst:
            worst = lag
            metrics.event_loop_lag_max.set(lag)


@contextlib.asynccontextmanager
async def watch_loop_lag(metrics: Metrics, interval_s: float = 0.05) -> AsyncIterator[None]:
    """Record stalls while the body runs (a server's lifespan)."""
    task = asyncio.create_task(_watch(metrics, interval_s), name="event-loop-lag")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
