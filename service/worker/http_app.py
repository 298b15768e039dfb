"""The worker's internal HTTP API, over any `Worker` (split mode).

    POST /internal/chat    ChatJob JSON  → 200 + NDJSON, one ChatEvent per line
    POST /internal/embed   EmbedJob JSON → EmbedResult JSON
    GET  /internal/models                → [ServedModel]
    GET  /internal/ready                 → WorkerReadiness (503 when not ready)
    GET  /health/live, /health/ready, /metrics  (probes and scraping)

Errors before the stream starts are an HTTP status (from `error_spec`) with a
`WorkerErrorEvent` JSON body (Retry-After kept for 429), so the gateway can
rebuild the same exception; errors after it are one `error` event line. When
the gateway hangs up, the worker stream is closed, aborting the generation.

With `worker_token` set, `/internal/*` requires it as a bearer token (401
otherwise); probes and metrics stay open. Without it the API is open: keep it
off public networks (the Helm chart sets a token and a NetworkPolicy).
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import AsyncGenerator, AsyncIterator

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from service.api.exception_handlers import param_from_loc
from service.api.middleware.metrics import MetricsMiddleware
from service.api.middleware.request_id import RequestIdMiddleware
from service.api.streaming import EventStreamResponse
from service.config import Settings
from service.errors import (
    InvalidRequest,
    ServiceError,
    Unauthorized,
    WorkerFailed,
    error_spec,
)
from service.metrics import Metrics, render_latest
from service.worker.base import Worker
from service.worker.protocol import (
    ChatEvent,
    ChatJob,
    EmbedJob,
    EmbedResult,
    ServedModel,
    WorkerErrorEvent,
    WorkerReadiness,
)

_log = logging.getLogger(__name__)
NDJSON = "application/x-ndjson"


def error_event(exc: BaseException) -> WorkerErrorEvent:
    if not isinstance(exc, ServiceError):
        _log.error("worker request failed", exc_info=exc)
        exc = WorkerFailed("The worker failed.")
    spec = error_spec(exc)
    return WorkerErrorEvent(
        kind=type(exc).__name__, message=spec.message, param=spec.param, code=spec.code
    )


def error_response(exc: BaseException) -> JSONResponse:
    spec = error_spec(exc)
    return JSONResponse(
        error_event(exc).model_dump(mode="json"), status_code=spec.status, headers=spec.headers
    )


async def _lines(first: ChatEvent, events: AsyncIterator[ChatEvent]) -> AsyncGenerator[str, None]:
    try:
        yield first.model_dump_json() + "\n"
        async for event in events:
            yield event.model_dump_json() + "\n"
    except Exception as exc:
        yield error_event(exc).model_dump_json() + "\n"
    finally:
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()


def create_worker_app(
    worker: Worker, settings: Settings, *, metrics: Metrics | None = None
) -> FastAPI:
    """The internal API app. The caller owns `worker` and closes it."""
    metrics = metrics or Metrics()
    app = FastAPI(title="pandagpt-serve worker", docs_url=None, redoc_url=None)
    app.state.settings, app.state.worker, app.state.metrics = settings, worker, metrics

    async def _validation(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        first = exc.errors()[0] if exc.errors() else {}
        param = param_from_loc(first.get("loc", ()))
        return error_response(InvalidRequest(str(first.get("msg", "invalid job")), param=param))

    async def _service(_: Request, exc: Exception) -> Response:
        return error_response(exc)

    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(ServiceError, _service)
    app.add_exception_handler(Exception, _service)

    @app.post("/internal/chat", response_model=None)
    async def chat(job: ChatJob) -> Response:
        events = aiter(worker.chat(job))
        try:
            first = await anext(events)
        except StopAsyncIteration:
            return EventStreamResponse(_empty(), media_type=NDJSON)
        except BaseException as exc:
            aclose = getattr(events, "aclose", None)
            if aclose is not None:
                await aclose()
            if isinstance(exc, Exception):
                return error_response(exc)
            raise
        return EventStreamResponse(_lines(first, events), media_type=NDJSON)

    @app.post("/internal/embed")
    async def embed(job: EmbedJob) -> EmbedResult:
        return await worker.embed(job)

    @app.get("/internal/models")
    async def models() -> list[ServedModel]:
        return await worker.models()

    @app.get("/internal/ready")
    async def ready() -> Response:
        readiness: WorkerReadiness = await worker.readiness()
        return JSONResponse(readiness.model_dump(), status_code=200 if readiness.ready else 503)

    app.add_api_route("/health/ready", ready, methods=["GET"])

    @app.get("/health/live")
    async def live() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics", include_in_schema=False)
    async def metrics_route() -> Response:
        body, content_type = render_latest(metrics)
        return Response(body, media_type=content_type)

    if settings.worker_token:
        app.add_middleware(WorkerTokenMiddleware, token=settings.worker_token)
    else:
        _log.warning("worker_token is unset: /internal/* accepts any caller")
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_middleware(RequestIdMiddleware)
    return app


class WorkerTokenMiddleware:
    """401 for `/internal/*` requests without `Authorization: Bearer <worker_token>`."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self._expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/internal/"):
            given = dict(scope["headers"]).get(b"authorization", b"")
            if not hmac.compare_digest(given, self._expected):
                response = error_response(Unauthorized("Missing or wrong worker token."))
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


async def _empty() -> AsyncGenerator[str, None]:
    return
    yield
