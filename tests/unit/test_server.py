"""service.server: uvicorn as the service configures it, on a real socket.

A request must not start out in the context of the request before it on the
same kept-alive connection. asyncio keeps the context of whoever resumed a
paused socket for that socket's later reads, and uvicorn resumes it from inside
the handler after a large body; without a fresh context per request, the next
request on the connection inherited the previous one's context variables (its
trace span among them: its own `traceparent` was then ignored)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import httpx
import uvicorn

from harness.local_servers import running_in_thread
from service.server import server_config

_marker: ContextVar[str | None] = ContextVar("test_server_marker", default=None)
# Far above uvicorn's 64 KiB read buffer: the socket is paused while the handler reads.
LARGE_BODY = b"x" * (4 << 20)


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Reports what `_marker` held when the request began, then marks it with its path."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    seen = _marker.get()
    _marker.set(scope["path"])  # set before the body is read, as a request span is
    size, more = 0, True
    while more:
        message = await receive()
        size += len(message.get("body", b""))
        more = message.get("more_body", False)
    body = json.dumps({"seen": seen, "bytes": size, "client": list(scope["client"])}).encode()
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@contextmanager
def _served() -> Iterator[str]:
    server = uvicorn.Server(server_config(_app, host="127.0.0.1", port=0, log_level="warning"))
    # On asyncio's own loop, as `serve_app` runs (`server.run` would pick uvloop).
    with running_in_thread(server, lambda: asyncio.run(server.serve())) as url:
        yield url


def test_a_request_after_a_large_body_starts_from_a_clean_context() -> None:
    with _served() as url, httpx.Client(base_url=url, trust_env=False) as client:
        first = client.post("/first", content=LARGE_BODY).json()
        after = [client.get(f"/next-{i}").json() for i in range(3)]
    assert first["seen"] is None and first["bytes"] == len(LARGE_BODY)
    # One kept-alive connection throughout, or the test would prove nothing.
    assert {tuple(r["client"]) for r in [first, *after]} == {tuple(first["client"])}
    assert [r["seen"] for r in after] == [None, None, None]
