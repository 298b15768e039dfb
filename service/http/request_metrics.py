"""Count and time every HTTP request by route template, and write the access log.

The route template (`/v1/chat/completions`, not the raw path) is read after the
router ran: Starlette stores the matched route in the scope, so label
cardinality stays bounded; unmatched paths are labelled `unmatched`.
"""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.metrics import Metrics

_log = logging.getLogger("service.access")


class MetricsMiddleware:
    def __init__(self, app: ASGIApp, *, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_recording(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_recording)
        finally:
            elapsed = time.perf_counter() - start
            route = scope.get("route")
            label = getattr(route, "path", None) or "unmatched"
            method = scope["method"]
            self.metrics.http_requests.labels(route=label, method=method, status=str(status)).inc()
            self.metrics.http_request_duration.labels(route=label).observe(elapsed)
            # Probes and scrapes arrive every few seconds: keep them out of the info log.
            level = logging.DEBUG if label.startswith(("/health", "/metrics")) else logging.INFO
            _log.log(
                level,
                "%s %s %d %.1fms",
                method,
                scope["path"],
                status,
                elapsed * 1000,
                extra={"status": status, "route": label, "duration_ms": round(elapsed * 1000, 1)},
            )
