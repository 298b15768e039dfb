"""A streamed response (SSE; JSON lines inside the service) that notices a
client going away and closes its source.

Starlette's StreamingResponse (ASGI 2.4) only sees a disconnect when a write
fails, and leaves closing the iterator to garbage collection. Generation must
stop as soon as the client leaves (it frees a GPU slot), so this response
watches `http.disconnect` beside the writer and always `aclose()`s the source.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

# Long enough for a stream's own clean-up (closing its source, aborting the generation)
# to finish between two cancellations.
_RECANCEL_AFTER_S = 1.0


class EventStreamResponse(Response):
    media_type = "text/event-stream"

    def __init__(
        self, events: AsyncGenerator[str, None], media_type: str = "text/event-stream"
    ) -> None:
        # No Response.__init__: it would add `content-length: 0`; a stream has none.
        self.status_code = 200
        self.background = None
        self.body = b""
        self.raw_headers = [
            (b"content-type", f"{media_type}; charset=utf-8".encode()),
            (b"cache-control", b"no-cache"),
            (b"x-accel-buffering", b"no"),  # nginx-style proxies must not buffer tokens
        ]
        self.events = events

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def produce() -> None:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            async for event in self.events:
                await send(
                    {"type": "http.response.body", "body": event.encode(), "more_body": True}
                )
            await send({"type": "http.response.body", "body": b"", "more_body": False})

        async def watch_disconnect() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        writer = asyncio.ensure_future(produce())
        watcher = asyncio.ensure_future(watch_disconnect())
        try:
            await asyncio.wait({writer, watcher}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            watcher.cancel()
            await _stop(writer)
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await watcher
            # Closing the source runs its `finally`, which closes the worker stream.
            await self.events.aclose()
        if writer.done() and not writer.cancelled() and writer.exception() is not None:
            exc = writer.exception()
            if not isinstance(exc, OSError):  # a vanished client is not our error
                raise exc  # type: ignore[misc]


async def _stop(writer: asyncio.Future[None]) -> None:
    """Cancel the writer and wait for it. A cancellation can be lost below us (on 3.11,
    `asyncio.wait_for` drops one that arrives with its result), and uvicorn drops writes
    to a gone client without an error: a writer that outlives its cancellation would
    stream a whole answer to nobody, so it is cancelled again until it stops."""
    while not writer.done():
        writer.cancel()
        await asyncio.wait({writer}, timeout=_RECANCEL_AFTER_S)


def sse(data: str) -> str:
    return f"data: {data}\n\n"
