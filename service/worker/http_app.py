"""The worker's internal HTTP API, over any `Worker` (split mode).

    POST /internal/chat    ChatJob frame  → 200 + NDJSON, one ChatEvent per line
    POST /internal/embed   EmbedJob frame → EmbedResult JSON
    GET  /internal/models                → [ServedModel]
    GET  /internal/ready                 → WorkerReadiness (503 when not ready)
    GET  /health/live, /health/ready, /metrics  (probes and scraping)

Errors before the stream starts are an HTTP status (from `error_spec`) with a
`WorkerErrorEvent` JSON body (Retry-After kept for 429), so the gateway can
rebuild the same exception; errors after it are one `error` event line. When
the gateway hangs up, the worker stream is closed, aborting the generation.

Jobs arrive as job frames (`service.contract.job_frame`: the media as raw bytes,
not base64 in JSON), read within the worker's memory budget: a frame that does
not fit is refused with 429 unread, and the gateway tries another worker.

With `worker_token` set, `/internal/*` requires it as a bearer token (401
otherwise); probes and metrics stay open. Without it the API is open: keep it
off public networks (the Helm chart sets a token and a NetworkPolicy).
"""

from __future__ import annotations

import contextlib
import hmac
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Annotated, cast

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from service import telemetry
from service.config import Settings
from service.contract import (
    ChatEvent,
    ChatJob,
    EmbedJob,
    EmbedResult,
    JobT,
    ServedModel,
    Worker,
    WorkerErrorEvent,
    WorkerReadiness,
    close_events,
    read_job_frame,
)
from service.errors import InvalidRequest, ServiceError, Unauthorized, WorkerFailed, error_spec
from service.http.body_limit import add_body_limit
from service.http.bulk import BulkWorker
from service.http.errors import error_response, param_from_loc
from service.http.loop_lag import watch_loop_lag
from service.http.request_id import RequestIdMiddleware
from service.http.request_metrics import MetricsMiddleware
from service.http.streaming import EventStreamResponse
from service.memory import MemoryBudget
from service.metrics import Metrics, render_latest

_log = logging.getLogger(__name__)
NDJSON = "application/x-ndjson"
# Bytes reserved per frame byte: the frame as read, and the job's copies of its media.
WORKER_HOLD_FACTOR = 2


def error_event(exc: BaseException) -> WorkerErrorEvent:
    if not isinstance(exc, ServiceError):
        _log.error("worker request failed", exc_info=exc)
        exc = WorkerFailed("The worker failed.")
    spec = error_spec(exc)
    return WorkerErrorEvent(
        kind=type(exc).__name__, message=spec.message, param=spec.param, code=spec.code
    )


def job_error_response(exc: BaseException) -> JSONResponse:
    """The status and headers of `exc`, with a `WorkerErrorEvent` body."""
    return error_response(exc, body=error_event(exc).model_dump(mode="json"))


async def _lines(first: ChatEvent, events: AsyncIterator[ChatEvent]) -> AsyncGenerator[str, None]:
    try:
        yield first.model_dump_json() + "\n"
        async for event in events:
            yield event.model_dump_json() + "\n"
    except Exception as exc:
        yield error_event(exc).model_dump_json() + "\n"
    finally:
        await close_events(events)


def _worker(request: Request) -> Worker:
    return cast(Worker, request.app.state.worker)


def _metrics(request: Request) -> Metrics:
    return cast(Metrics, request.app.state.metrics)


WorkerDep = Annotated[Worker, Depends(_worker)]
MetricsDep = Annotated[Metrics, Depends(_metrics)]

internal = APIRouter(prefix="/internal")
probes = APIRouter()


async def _read_job(request: Request, kind: type[JobT]) -> JobT:
    """The job frame in the body, parsed off the event loop; `InvalidRequest` if malformed."""
    chunks = [chunk async for chunk in request.stream()]
    frame = b"".join(chunks)
    del chunks  # the frame's media are copied into the job: keep one copy, not two
    bulk: BulkWorker = request.app.state.bulk
    try:
        return await bulk.run(read_job_frame, frame, kind)
    except ValidationError as exc:
        first = exc.errors()[0] if exc.errors() else {}
        param = param_from_loc(first.get("loc", ()))
        raise InvalidRequest(str(first.get("msg", "invalid job")), param=param) from exc
    except ValueError as exc:
        raise InvalidRequest(f"Malformed job frame: {exc}") from exc


@internal.post("/chat", response_model=None)
async def chat(request: Request, worker: WorkerDep) -> Response:
    job = await _read_job(request, ChatJob)
    events = aiter(worker.chat(job))
    try:
        first = await anext(events)
    except StopAsyncIteration:
        return EventStreamResponse(_empty(), media_type=NDJSON)
    except BaseException as exc:
        await close_events(events)
        if isinstance(exc, Exception):
            return job_error_response(exc)
        raise
    return EventStreamResponse(_lines(first, events), media_type=NDJSON)


@internal.post("/embed")
async def embed(request: Request, worker: WorkerDep) -> EmbedResult:
    return await worker.embed(await _read_job(request, EmbedJob))


@internal.get("/models")
async def models(worker: WorkerDep) -> list[ServedModel]:
    return await worker.models()


@internal.get("/ready")
@probes.get("/health/ready")
async def ready(worker: WorkerDep) -> Response:
    readiness: WorkerReadiness = await worker.readiness()
    return JSONResponse(readiness.model_dump(), status_code=200 if readiness.ready else 503)


@probes.get("/health/live")
async def live() -> dict[str, str]:
    return {"status": "ok"}


@probes.get("/metrics", include_in_schema=False)
async def metrics_text(metrics: MetricsDep) -> Response:
    body, content_type = render_latest(metrics)
    return Response(body, media_type=content_type)


async def _invalid_job(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {}
    param = param_from_loc(first.get("loc", ()))
    return job_error_response(InvalidRequest(str(first.get("msg", "invalid job")), param=param))


async def _failed(_: Request, exc: Exception) -> Response:
    return job_error_response(exc)


def create_worker_app(
    worker: Worker,
    settings: Settings,
    *,
    metrics: Metrics | None = None,
    budget: MemoryBudget | None = None,
) -> FastAPI:
    """The internal API app. The caller owns `worker` and closes it."""
    metrics = metrics or Metrics()

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            async with watch_loop_lag(metrics):
                yield
        finally:
            app.state.bulk.close()

    app = FastAPI(title="pandagpt-serve worker", docs_url=None, redoc_url=None, lifespan=lifespan)
    app.state.settings, app.state.worker, app.state.metrics = settings, worker, metrics
    app.state.bulk = BulkWorker()  # job frames are parsed there
    app.add_exception_handler(RequestValidationError, _invalid_job)
    app.add_exception_handler(ServiceError, _failed)
    app.add_exception_handler(Exception, _failed)
    app.include_router(internal)
    app.include_router(probes)
    if settings.worker_token:
        app.add_middleware(WorkerTokenMiddleware, token=settings.worker_token)
    else:
        _log.warning("worker_token is unset: /internal/* accepts any caller")
    # A job is smaller than the request it came from (raw media, not base64).
    add_body_limit(app, settings, metrics, hold_factor=WORKER_HOLD_FACTOR, budget=budget)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_middleware(RequestIdMiddleware)
    telemetry.instrument_app(app)  # outermost: the request span holds every other
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
                response = job_error_response(Unauthorized("Missing or wrong worker token."))
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


async def _empty() -> AsyncGenerator[str, None]:
    return
    yield
