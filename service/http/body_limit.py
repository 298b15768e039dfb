"""Refuse request bodies over the cap with 413: by Content-Length up front, and
by counting while reading (chunked bodies, lying headers). A body that has not
fully arrived within `timeout_s` (a slow-loris upload) gets 408 and the
connection is closed: uvicorn's keep-alive timeout does not cover a slow body.

The body is read here and replayed to the app: FastAPI turns errors raised while
it reads the body into a generic 400, so the limit must be enforced before it.
"""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import PayloadTooLarge, RequestTimeout, ServiceError
from service.http.errors import error_response
from service.metrics import Metrics


class BodyLimitMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        timeout_s: float | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
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
            async with asyncio.timeout(self.timeout_s):
                body = await self._read(receive)
        except TimeoutError:
            await self._refuse(
                scope,
                receive,
                send,
                RequestTimeout(f"Request body not received within {self.timeout_s:g}s."),
                reason="body_timeout",
            )
            return
        if body is None:  # the client left
            return
        if len(body) > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            # After the body, pass through so disconnects still reach the app.
            return await receive()

        await self.app(scope, replay, send)

    async def _read(self, receive: Receive) -> bytes | None:
        """The whole body, or None on disconnect; stops one chunk past the cap."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            chunks.append(chunk)
            if size > self.max_bytes or not message.get("more_body", False):
                return b"".join(chunks)

    async def _refuse(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        error: ServiceError | None = None,
        reason: str = "body_too_large",
    ) -> None:
        if self.metrics is not None:
            self.metrics.rejected_requests.labels(reason=reason).inc()
        error = error or PayloadTooLarge(
            f"Request body exceeds the limit of {self.max_bytes} bytes."
        )
        response = error_response(error, headers={"Connection": "close"})
        await response(scope, receive, send)
