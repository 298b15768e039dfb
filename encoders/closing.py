"""How the encoder's asynchronous stages close.

The batch scheduler and the nvJPEG stage each run one asyncio task that feeds a
thread and answer their callers through futures. Closing cancels that task and
fails every caller still waiting, so nobody waits for a result that will not come.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from typing import Any


async def cancel_task(task: asyncio.Task[Any] | None) -> None:
    """Cancels `task` (if any) and waits until it has stopped."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def fail_waiting(futures: Iterable[asyncio.Future[Any]]) -> None:
    """Every caller still waiting on one of `futures` gets "encoder closed"."""
    for future in futures:
        if not future.done():
            future.set_exception(RuntimeError("encoder closed"))
