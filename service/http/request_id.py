"""Give every request an id: the client's `X-Request-ID` when it is sane, else
a fresh one. It is set in the logging contextvar and echoed in the response."""

from __future__ import annotations

import re
import uuid

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.http.logging import request_id_var

HEADER = "x-request-id"
_MAX_LEN = 128
# Ids end up in logs and headers: printable, no spaces or separators that could
# forge log fields or split headers.
_SAFE = re.compile(r"^[A-Za-z0-9._:\-]+$")


def sanitise_request_id(raw: str | None) -> str:
    if raw:
        raw = raw.strip()[:_MAX_LEN]
        if _SAFE.match(raw):
            return raw
    return uuid.uuid4().hex


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw = None
        for name, value in scope.get("headers", ()):
            if name == HEADER.encode():
                raw = value.decode("latin-1")
                break
        request_id = sanitise_request_id(raw)
        scope.setdefault("state", {})["request_id"] = request_id
        token = request_id_var.set(request_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)["X-Request-ID"] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id_var.reset(token)
