"""EventStreamResponse against a client that leaves: the source is closed even when a
cancellation gets lost on its way down (as `asyncio.wait_for` on 3.11 loses one)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

from starlette.types import Message

from service.http.streaming import EventStreamResponse


async def test_a_writer_that_swallows_its_cancellation_is_stopped_and_the_source_closed() -> None:
    closed = asyncio.Event()
    swallowed = 0

    async def source() -> AsyncGenerator[str, None]:
        nonlocal swallowed
        try:
            while True:
                try:
                    await asyncio.sleep(0.01)
                except asyncio.CancelledError:
                    if swallowed == 0:  # the first one is lost, as below a racing result
                        swallowed += 1
                    else:
                        raise
                yield "data: x\n\n"
        finally:
            closed.set()

    sent: list[Message] = []
    client_left = asyncio.Event()

    async def receive() -> Message:
        await client_left.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)  # uvicorn drops writes to a gone client without an error
        if len(sent) == 3:
            client_left.set()

    await asyncio.wait_for(EventStreamResponse(source())({"type": "http"}, receive, send), 10)
    assert swallowed == 1 and closed.is_set()
