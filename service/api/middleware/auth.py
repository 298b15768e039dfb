"""Bearer API keys for `/v1/*`; health, metrics and the playground stay open.

Keys come from settings and/or a mounted secret file (one key per line, or
YAML with named keys and their limits: `service.ratelimit.keys`), re-read when
its mtime changes; a file that turns bad keeps the keys it had. Presented
keys are hashed and compared with every configured digest (no early exit),
and no key is ever logged: the key's *name* goes into log lines and metrics.

For a `/v1/` request the middleware also sets, for the handler, the key it
matched (`service.ratelimit.current_key`) and a header dict that the limiter fills
with `x-ratelimit-*` headers, added to whatever response goes out.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service import telemetry
from service.errors import Unauthorized
from service.http.errors import error_response
from service.http.logging import api_key_var
from service.metrics import Metrics
from service.ratelimit.keys import ApiKey, KeyFileError, find_key, plain_key, read_key_file
from service.ratelimit.rate_limiter import current_key, response_headers

_log = logging.getLogger(__name__)
PROTECTED_PREFIX = "/v1/"


class KeyStore:
    def __init__(
        self, keys: list[str], key_file: Path | None = None, *, recheck_s: float = 2.0
    ) -> None:
        self._static = [plain_key(k) for k in keys if k]
        self._file = key_file
        self._file_keys: list[ApiKey] = []
        self._mtime: float | None = None
        self._recheck_s = recheck_s
        self._next_check = 0.0
        if key_file is not None:
            self._reload_sync(startup=True)

    @property
    def enabled(self) -> bool:
        return self._file is not None or bool(self._static)

    async def keys(self) -> list[ApiKey]:
        if self._file is not None and time.monotonic() >= self._next_check:
            self._next_check = time.monotonic() + self._recheck_s
            # stat + read off the event loop: the secret may sit on a slow volume.
            await asyncio.to_thread(self._reload_sync)
        return self._static + self._file_keys

    def _reload_sync(self, *, startup: bool = False) -> None:
        assert self._file is not None
        try:
            mtime = self._file.stat().st_mtime
            if mtime == self._mtime:
                return
            keys = read_key_file(self._file)
        except OSError as exc:
            _log.warning("cannot read api_key_file: %s", exc.strerror)
            return
        except KeyFileError as exc:
            if startup:
                raise
            _log.error("api_key_file not reloaded, the previous keys stay: %s", exc)
            self._mtime = mtime  # once per change, not every recheck
            return
        self._mtime = mtime
        self._file_keys = keys
        limited = sum(1 for key in keys if key.limits.limited)
        _log.info("loaded %d API key(s) from api_key_file (%d with limits)", len(keys), limited)


class AuthMiddleware:
    def __init__(self, app: ASGIApp, *, store: KeyStore, metrics: Metrics | None = None) -> None:
        self.app = app
        self.store = store
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or not scope["path"].startswith(PROTECTED_PREFIX)
            or scope["method"] == "OPTIONS"  # CORS preflight carries no credentials
        ):
            await self.app(scope, receive, send)
            return
        key = None
        if self.store.enabled:
            with telemetry.span("auth") as span:
                presented = _bearer(scope)
                key = find_key(presented, await self.store.keys()) if presented else None
                span.set_attribute("authorized", key is not None)
            if key is None:
                await self._refuse(bool(presented), scope, receive, send)
                return
        headers: dict[str, str] = {}

        async def send_with_limits(message: Message) -> None:
            if message["type"] == "http.response.start" and headers:
                MutableHeaders(scope=message).update(headers)
            await send(message)

        # Not reset afterwards: the access line, logged by the outer metrics middleware
        # once the response is sent, carries the key name too. Each request runs in a
        # task of its own, so the name never reaches another request's lines.
        api_key_var.set(key.name if key else None)
        key_token, headers_token = current_key.set(key), response_headers.set(headers)
        try:
            await self.app(scope, receive, send_with_limits)
        finally:
            response_headers.reset(headers_token)
            current_key.reset(key_token)

    async def _refuse(self, presented: bool, scope: Scope, receive: Receive, send: Send) -> None:
        if self.metrics is not None:
            self.metrics.rejected_requests.labels(reason="unauthorized").inc()
        message = "Invalid API key." if presented else "Missing API key (Authorization: Bearer)."
        response = error_response(Unauthorized(message), headers={"WWW-Authenticate": "Bearer"})
        await response(scope, receive, send)


def _bearer(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" else ""
    return ""
