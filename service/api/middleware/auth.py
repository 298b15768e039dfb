"""Bearer API keys for `/v1/*`; health, metrics and the playground stay open.

Keys come from settings and/or a mounted secret file (one key per line, `#`
comments), re-read when its mtime changes. Every configured key is compared
with `hmac.compare_digest` (no early exit), and no key is ever logged.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from pathlib import Path

from starlette.types import ASGIApp, Receive, Scope, Send

from service.errors import Unauthorized
from service.http.errors import error_response
from service.metrics import Metrics

_log = logging.getLogger(__name__)
PROTECTED_PREFIX = "/v1/"


class KeyStore:
    def __init__(
        self, keys: list[str], key_file: Path | None = None, *, recheck_s: float = 2.0
    ) -> None:
        self._static = [k for k in keys if k]
        self._file = key_file
        self._file_keys: list[str] = []
        self._mtime: float | None = None
        self._recheck_s = recheck_s
        self._next_check = 0.0
        if key_file is not None:
            self._reload_sync()

    @property
    def enabled(self) -> bool:
        return self._file is not None or bool(self._static)

    async def keys(self) -> list[str]:
        if self._file is not None and time.monotonic() >= self._next_check:
            self._next_check = time.monotonic() + self._recheck_s
            # stat + read off the event loop: the secret may sit on a slow volume.
            await asyncio.to_thread(self._reload_sync)
        return self._static + self._file_keys

    def _reload_sync(self) -> None:
        assert self._file is not None
        try:
            mtime = self._file.stat().st_mtime
            if mtime == self._mtime:
                return
            lines = self._file.read_text().splitlines()
        except OSError as exc:
            _log.warning("cannot read api_key_file: %s", exc.strerror)
            return
        self._mtime = mtime
        self._file_keys = [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]
        _log.info("loaded %d API key(s) from api_key_file", len(self._file_keys))


def check_key(presented: str, keys: list[str]) -> bool:
    ok = False
    for key in keys:
        # Compare against every key, so timing doesn't tell which one was close.
        ok |= hmac.compare_digest(presented.encode(), key.encode())
    return ok


class AuthMiddleware:
    def __init__(self, app: ASGIApp, *, store: KeyStore, metrics: Metrics | None = None) -> None:
        self.app = app
        self.store = store
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or not self.store.enabled
            or not scope["path"].startswith(PROTECTED_PREFIX)
            or scope["method"] == "OPTIONS"  # CORS preflight carries no credentials
        ):
            await self.app(scope, receive, send)
            return
        presented = ""
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                scheme, _, token = value.decode("latin-1").partition(" ")
                if scheme.lower() == "bearer":
                    presented = token.strip()
                break
        if presented and check_key(presented, await self.store.keys()):
            await self.app(scope, receive, send)
            return
        if self.metrics is not None:
            self.metrics.rejected_requests.labels(reason="unauthorized").inc()
        message = "Invalid API key." if presented else "Missing API key (Authorization: Bearer)."
        response = error_response(Unauthorized(message), headers={"WWW-Authenticate": "Bearer"})
        await response(scope, receive, send)
