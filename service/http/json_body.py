"""Parse large JSON bodies without stalling the event loop.

A chat request carrying a 30 MB image is a 40 MB JSON document that is almost
entirely one string. `json.loads` holds the GIL for the whole document (over
100 ms for that body on a busy core), so even in a thread it freezes the event
loop, health probes included. Here the long strings are cut out first with
`bytes.find` (C speed, a few ms per call), the small rest is parsed as usual,
and each long string is decoded on its own and put back. Every step holds the
GIL for a bounded time, so run in a thread the parse lets the loop breathe.

`OffloopJSONRoute` makes FastAPI parse bodies this way: a route class for the
routers that take large bodies.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

from service.http.bulk import BulkWorker

# Bodies up to this size are parsed inline: a thread hop costs more than the parse.
INLINE_BYTES = 256 * 1024
# Strings at least this long are cut out and decoded on their own.
LONG_STRING_BYTES = 64 * 1024
_QUOTE, _BACKSLASH = ord('"'), ord("\\")


def loads(body: bytes) -> Any:
    """`json.loads(body)`, with long strings decoded one by one (same result)."""
    if body[:3] == b"\xef\xbb\xbf" or b"\x00" in body[:4]:
        return json.loads(body)  # a BOM, or UTF-16/32: rare, and not worth cutting up
    spans = _long_string_spans(body)
    if not spans:
        return json.loads(body)
    # Placeholders carry a random tag, so no string of the client's can pass for one.
    tag = secrets.token_hex(8)
    skeleton: list[bytes] = []
    start = 0
    for i, (begin, end) in enumerate(spans):
        skeleton += [body[start:begin], f'"{tag}:{i}"'.encode()]
        start = end
    skeleton.append(body[start:])
    strings = {f"{tag}:{i}": _decode_string(body, *span) for i, span in enumerate(spans)}
    return _restore(json.loads(b"".join(skeleton)), strings)


def _long_string_spans(body: bytes) -> list[tuple[int, int]]:
    """(begin, end) of each string literal of at least LONG_STRING_BYTES, quotes included.

    A quote starts a string only outside strings, so walking from quote to closing
    quote finds every literal; keys and short values are skipped over. Malformed
    text is left for `json.loads` to refuse."""
    if len(body) < LONG_STRING_BYTES:
        return []
    spans: list[tuple[int, int]] = []
    position = 0
    while (begin := body.find(b'"', position)) >= 0:
        end = _closing_quote(body, begin + 1)
        if end < 0:
            return spans  # unterminated: json.loads reports it
        if end - begin > LONG_STRING_BYTES:
            spans.append((begin, end + 1))
        position = end + 1
    return spans


def _closing_quote(body: bytes, position: int) -> int:
    while (quote := body.find(b'"', position)) >= 0:
        backslashes = 0
        while body[quote - 1 - backslashes] == _BACKSLASH:
            backslashes += 1
        if backslashes % 2 == 0:
            return quote
        position = quote + 1
    return -1


def _decode_string(body: bytes, begin: int, end: int) -> str:
    if body.find(b"\\", begin, end) >= 0:  # escapes: let the JSON decoder read this one
        value = json.loads(body[begin:end])
        assert isinstance(value, str)
        return value
    # Decoded from a view: no bytes copy of a string that may be tens of MB.
    return str(memoryview(body)[begin + 1 : end - 1], "utf-8")


def _restore(value: Any, strings: dict[str, str]) -> Any:
    if isinstance(value, str):
        return strings.get(value, value)
    if isinstance(value, list):
        return [_restore(item, strings) for item in value]
    if isinstance(value, dict):
        return {strings.get(key, key): _restore(item, strings) for key, item in value.items()}
    return value


class _OffloopJSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            try:
                if len(body) <= INLINE_BYTES:
                    self._json = json.loads(body)
                else:
                    self._json = await _bulk(self).run(loads, body)
            except UnicodeDecodeError as exc:  # FastAPI answers JSONDecodeError with a 400
                raise json.JSONDecodeError("the body is not UTF-8 text", "", exc.start) from exc
        return self._json


def _bulk(request: Request) -> BulkWorker:
    bulk: BulkWorker = request.app.state.bulk
    return bulk


class OffloopJSONRoute(APIRoute):
    """A route whose JSON body is parsed by `loads`, on the app's `BulkWorker`
    (`app.state.bulk`) when it is large."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            return await handler(_OffloopJSONRequest(request.scope, request.receive))

        return handle
