"""Running an ASGI app under uvicorn with the shutdown order the service needs.

SIGTERM or SIGINT: uvicorn stops accepting connections, lets in-flight
responses finish for up to `graceful_s` (then cancels them, which aborts their
generations), runs the app's lifespan shutdown, and returns; the caller then
closes the worker (the vLLM engine and its processes). uvicorn re-raises the
signal it caught once it is done; a no-op handler installed here catches that,
so the process exits 0 through the normal path instead of dying mid-cleanup.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from types import FrameType
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_log = logging.getLogger(__name__)

HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _note_signal(sig: int, frame: FrameType | None) -> None:
    _log.info("signal %s received after shutdown began", signal.Signals(sig).name)


def install_quiet_signal_handlers() -> None:
    """Let signals re-raised by uvicorn after its shutdown reach a no-op."""
    for sig in HANDLED_SIGNALS:
        signal.signal(sig, _note_signal)


def server_config(
    app: Any,
    *,
    host: str,
    port: int,
    log_level: str = "info",
    graceful_s: float = 30.0,
    header_timeout_s: float = 10.0,
) -> uvicorn.Config:
    """uvicorn's settings for `app` as the service runs it."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=header_deadline_protocol(header_timeout_s),
        log_level=log_level,
        log_config=None,  # the service configures logging itself
        timeout_graceful_shutdown=max(1, round(graceful_s)),
        lifespan="on",
        # Each request starts from an empty context. Otherwise, once a body larger
        # than uvicorn's read buffer paused the socket, reading resumes from inside
        # that request's handler, asyncio keeps that handler's context for the
        # socket's later reads (python/cpython#140947), and the next request on the
        # kept-alive connection inherits it: its trace span became a child of the
        # previous request's (its own `traceparent` ignored), and the request-scoped
        # context variables (request id, key name, memory reservation) began with
        # the previous request's values.
        reset_contextvars=True,
    )


async def serve_app(
    config: uvicorn.Config, *, on_started: Callable[[str], None] | None = None
) -> None:
    """Serve `config.app` (built by `server_config`) until a signal; `on_started(base_url)`
    runs once the socket listens."""
    host, port = config.host, config.port
    server = uvicorn.Server(config)
    install_quiet_signal_handlers()
    announcer = asyncio.create_task(_announce(server, host, port, on_started))
    try:
        await server.serve()
    finally:
        announcer.cancel()
    if not server.started:
        raise RuntimeError(f"server on {host}:{port} failed to start (see the log above)")


class HeaderDeadlineProtocol(HttpToolsProtocol):
    """uvicorn's HTTP protocol, closing connections whose request headers come too slowly.

    uvicorn has no deadline for the request head, so a client that opens
    connections and trickles header bytes (slow-loris) holds each one forever.
    Here every request head must be complete within `header_timeout_s`, else
    the connection is closed: on a new connection the clock starts when it
    opens, on a kept-alive one when the next request's first byte arrives
    (uvicorn's keep-alive timer stops there). A pipelined head waiting behind a
    response still being sent is never cut off while that response lasts. The
    body has its own deadline (`BodyLimitMiddleware`), and idle keep-alive
    connections uvicorn's.
    """

    header_timeout_s = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_deadline = self.loop.call_later(self.header_timeout_s, self._head_too_slow)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        # The first request's clock already runs from connection_made; restarting
        # it here would give a client that waits, then trickles, twice the time.
        if self._head_deadline.cancelled():
            self._head_deadline = self.loop.call_later(self.header_timeout_s, self._head_too_slow)

    def on_headers_complete(self) -> None:
        self._head_deadline.cancel()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._head_deadline.cancel()
        super().connection_lost(exc)

    def _head_too_slow(self) -> None:
        if self.cycle is not None and not self.cycle.response_complete:
            # A pipelined head waits behind a response still being sent; closing now
            # would cut that response short, so its clock starts again.
            self._head_deadline = self.loop.call_later(self.header_timeout_s, self._head_too_slow)
        elif not self.transport.is_closing():
            _log.info(
                "closing a connection whose request headers took over %ss", self.header_timeout_s
            )
            self.transport.close()


def header_deadline_protocol(header_timeout_s: float) -> type[HeaderDeadlineProtocol]:
    """The protocol class for `uvicorn.Config(http=...)` with this deadline."""
    return type(
        "HeaderDeadlineProtocol", (HeaderDeadlineProtocol,), {"header_timeout_s": header_timeout_s}
    )


async def _announce(
    server: uvicorn.Server,
    host: str,
    port: int,
    on_started: Callable[[str], None] | None,
) -> None:
    while not server.started:
        await asyncio.sleep(0.05)
    if on_started is not None:
        on_started(base_url(host, _bound_port(server, port)))


def _bound_port(server: uvicorn.Server, port: int) -> int:
    for srv in server.servers:
        for sock in srv.sockets:
            return int(sock.getsockname()[1])
    return port


def base_url(host: str, port: int) -> str:
    """The URL a local client uses (a wildcard bind address is reached on loopback)."""
    shown = "127.0.0.1" if host in {"0.0.0.0", "::", ""} else host
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}"
