"""Refuse request bodies over the cap with 413: by Content-Length up front, and
by counting while reading (chunked bodies, lying headers). A body that has not
fully arrived within `timeout_s` (a slow-loris upload) gets 408 and the
connection is closed: uvicorn's keep-alive timeout does not cover a slow body.

With a `MemoryBudget`, the request's `Reservation` starts here: `hold_factor`
bytes per body byte (the body, and what parsing it makes) are reserved before
the body is read, from its Content-Length, or chunk by chunk for a chunked
body. When they do not fit, the answer is 429 with Retry-After and the body is
never read. The reservation is the current one (`service.memory.charge`) while
the app runs, and is given back when the response has been sent.

The body is read here and replayed to the app: FastAPI turns errors raised while
it reads the body into a generic 400, so the limit must be enforced before it.
"""

from __future__ import annotations

import asyncio
import collections

from starlette.applications import Starlette
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.config import HTTPSettings
from service.errors import PayloadTooLarge, RequestTimeout, ServerBusy, ServiceError
from service.http.errors import error_response
from service.memory import MemoryBudget, Reservation, budget_from_settings, current_reservation
from service.metrics import Metrics


class BodyLimitMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        timeout_s: float | None = None,
        metrics: Metrics | None = None,
        budget: MemoryBudget | None = None,
        hold_factor: int = 1,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s
        self.metrics = metrics
        self.budget = budget
        self.hold_factor = hold_factor

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        reservation = self.budget.reservation() if self.budget is not None else None
        token = current_reservation.set(reservation)
        try:
            await self._handle(scope, receive, send, reservation)
        finally:
            current_reservation.reset(token)
            if reservation is not None:
                reservation.release()

    async def _handle(
        self, scope: Scope, receive: Receive, send: Send, reservation: Reservation | None
    ) -> None:
        declared = None
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.max_bytes:
                    await self._refuse(scope, receive, send)
                    return
        try:
            if reservation is not None and declared:
                reservation.grow(declared * self.hold_factor, "the request body")
            async with asyncio.timeout(self.timeout_s):
                chunks = await self._read(receive, None if declared else reservation)
        except ServerBusy as exc:  # the memory budget: nothing more is read or kept
            # The connection stays open: uvicorn discards the rest of the body as it
            # arrives, so the client finishes its upload and reads the 429 (a close now
            # would reset the connection under a client still sending).
            await self._refuse(scope, receive, send, exc, reason=None, close=False)
            return
        except TimeoutError:
            await self._refuse(
                scope,
                receive,
                send,
                RequestTimeout(f"Request body not received within {self.timeout_s:g}s."),
                reason="body_timeout",
            )
            return
        if chunks is None:  # the client left
            return
        if sum(len(chunk) for chunk in chunks) > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        # Replayed as received: the app joins them (one copy), and after the last one
        # this middleware holds none of them.
        pending = collections.deque(chunks)
        del chunks

        async def replay() -> Message:
            if pending:
                body = pending.popleft()
                return {"type": "http.request", "body": body, "more_body": bool(pending)}
            # After the body, pass through so disconnects still reach the app.
            return await receive()

        await self.app(scope, replay, send)

    async def _read(self, receive: Receive, reservation: Reservation | None) -> list[bytes] | None:
        """The whole body as received, or None on disconnect; stops one chunk past the
        cap. With a reservation (a body of unknown length), each chunk is reserved as it
        comes."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if reservation is not None:
                reservation.grow(len(chunk) * self.hold_factor, "the request body")
            chunks.append(chunk)
            if size > self.max_bytes or not message.get("more_body", False):
                return chunks

    async def _refuse(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        error: ServiceError | None = None,
        reason: str | None = "body_too_large",
        close: bool = True,
    ) -> None:
        if self.metrics is not None and reason is not None:  # None: counted where it arose
            self.metrics.rejected_requests.labels(reason=reason).inc()
        error = error or PayloadTooLarge(
            f"Request body exceeds the limit of {self.max_bytes} bytes."
        )
        response = error_response(error, headers={"Connection": "close"} if close else None)
        await response(scope, receive, send)


def add_body_limit(
    app: Starlette,
    settings: HTTPSettings,
    metrics: Metrics,
    *,
    hold_factor: int,
    budget: MemoryBudget | None = None,
) -> None:
    """The body limit, read timeout and memory budget of `settings`, on `app`: the
    gateway and the worker differ only in how many bytes a body byte holds there.
    `budget`: the process's, shared with media decoding (a new one when None)."""
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.max_body_bytes,
        timeout_s=settings.body_read_timeout_s,
        metrics=metrics,
        budget=budget or budget_from_settings(settings, metrics),
        hold_factor=hold_factor,
    )
