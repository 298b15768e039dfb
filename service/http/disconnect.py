"""Cancel a non-streaming request's work when its client goes away.

A non-streaming chat holds a generation slot until the whole reply exists;
if the client has left, finishing it wastes the GPU. Streams watch for the
disconnect themselves (`streaming.EventStreamResponse`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import TypeVar

from starlette.requests import Request
from starlette.responses import Response

T = TypeVar("T")

# nginx's "client closed request": never seen by the client, only in metrics/logs.
CLIENT_CLOSED = 499


async def cancel_on_disconnect(request: Request, work: Awaitable[T]) -> T | Response:
    task = asyncio.ensure_future(work)

    async def watch() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    watcher = asyncio.ensure_future(watch())
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        if not task.done():
            task.cancel()  # cancelling closes the worker stream (ChatServing's finally)
            with contextlib.suppress(asyncio.CancelledError):
                await task
    if task.cancelled():
        return Response(status_code=CLIENT_CLOSED)
    return task.result()
