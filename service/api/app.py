"""The gateway's FastAPI app: `create_app(settings, worker, ...)`.

Everything the routes need is built here once and put on `app.state` (read
through `deps.py`); nothing is a module-level singleton, so tests can build
many apps side by side. The caller owns `worker` and `cache` and closes them
after the server stops (in `serve` the worker outlives the app's lifespan);
the app closes what it made (the media fetcher, the metrics server).

Middleware, outermost first: request id → metrics/access log → CORS → auth →
body limit → routes.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Protocol, TypeVar

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from service import telemetry
from service.api.chat_completion import api_router as chat_router
from service.api.chat_completion.serving import ChatServing
from service.api.embeddings import api_router as embeddings_router
from service.api.embeddings.serving import EmbeddingServing
from service.api.exception_handlers import install_exception_handlers
from service.api.inflight import InflightLimit
from service.api.media.fetch import MediaFetcher
from service.api.middleware.auth import AuthMiddleware, KeyStore
from service.api.models import api_router as models_router
from service.api.models.catalog import ModelCatalog
from service.api.responses import api_router as responses_router
from service.api.responses.background import BackgroundRuns
from service.api.responses.serving import ResponsesServing
from service.api.responses.store import create_store
from service.api.routes import health
from service.api.routes import metrics as metrics_route
from service.api.serving import OpenAIServing
from service.cache.base import EmbeddingCache
from service.config import Settings
from service.contract import Worker
from service.http.body_limit import add_body_limit
from service.http.bulk import BulkWorker
from service.http.loop_lag import watch_loop_lag
from service.http.request_id import RequestIdMiddleware
from service.http.request_metrics import MetricsMiddleware
from service.memory import MemoryBudget
from service.metrics import Metrics
from service.ratelimit import create_rate_limiter
from service.ratelimit.rate_limiter import RATELIMIT_HEADERS

ServingT = TypeVar("ServingT", bound=OpenAIServing)
# Bytes reserved per body byte, before the body is read: the body as received and
# joined, the text parsed from it, and the media decoded from that text (base64 is
# 4/3 of its bytes). So a request with inline media cannot be refused half-way;
# media fetched from URLs are charged as they download (service.api.media.fetch).
GATEWAY_HOLD_FACTOR = 3

_log = logging.getLogger(__name__)


def create_app(
    settings: Settings,
    worker: Worker,
    *,
    cache: EmbeddingCache | None = None,
    metrics: Metrics | None = None,
    budget: MemoryBudget | None = None,
    fetcher: MediaFetcher | None = None,
) -> FastAPI:
    """The public API over `worker` (in-process `ModelWorker`, or a `WorkerPool`).

    `cache` is only reported by /health/ready (the worker uses its own reference);
    `fetcher` may be injected by tests (custom resolver or transport).
    """
    metrics = metrics or Metrics()
    bulk = BulkWorker()  # JSON bodies and inline media of large requests
    fetcher = fetcher or MediaFetcher(settings, metrics, bulk=bulk)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await worker.start()  # a pool's readiness polling lives with the app
        metrics_server = _start_metrics_server(settings, metrics)
        try:
            async with watch_loop_lag(metrics):
                yield
        finally:
            await state.background_runs.aclose()  # stored as failed while the store is up
            await worker.stop()
            if metrics_server is not None:
                metrics_server.shutdown()
            await fetcher.aclose()
            await response_store.aclose()
            await rate_limiter.aclose()
            bulk.close()

    app = FastAPI(
        title="pandagpt-serve",
        version="0.1.0",
        description="PandaGPT behind an OpenAI-compatible API.",
        lifespan=lifespan,
    )
    catalog = ModelCatalog(worker)
    inflight = InflightLimit(
        settings.max_concurrent_requests,
        retry_after_s=settings.retry_after_s,
        metrics=metrics,
        max_waiting=settings.max_queued_requests,
    )
    rate_limiter = create_rate_limiter(settings, metrics)  # per-key limits (service.ratelimit)
    state = app.state
    state.settings, state.worker, state.cache, state.metrics = settings, worker, cache, metrics
    state.fetcher, state.catalog, state.inflight = fetcher, catalog, inflight
    state.bulk, state.rate_limiter = bulk, rate_limiter

    def serving(cls: type[ServingT]) -> ServingT:
        return cls(
            worker=worker,
            catalog=catalog,
            fetcher=fetcher,
            inflight=inflight,
            rate_limiter=rate_limiter,
            settings=settings,
            metrics=metrics,
        )

    state.chat_serving = serving(ChatServing)
    state.embedding_serving = serving(EmbeddingServing)
    response_store = create_store(settings)  # Redis when configured, else in-process
    state.responses_serving = ResponsesServing(state.chat_serving, response_store)
    state.background_runs = BackgroundRuns(state.responses_serving, settings.responses_heartbeat_s)

    install_exception_handlers(app)
    app.include_router(chat_router.router)
    app.include_router(responses_router.router)
    app.include_router(embeddings_router.router)
    app.include_router(models_router.router)
    app.include_router(health.router)
    if settings.metrics_port is None:
        app.include_router(metrics_route.router)
    if settings.enable_playground:
        from service.playground.router import router as playground_router

        app.include_router(playground_router)

    # add_middleware wraps: the last added runs first. Auth runs before the body is
    # read, so an unauthenticated client cannot make us buffer a large body.
    add_body_limit(app, settings, metrics, hold_factor=GATEWAY_HOLD_FACTOR, budget=budget)
    app.add_middleware(
        AuthMiddleware, store=KeyStore(settings.api_keys, settings.api_key_file), metrics=metrics
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
            allow_headers=[
                "Authorization",
                "Content-Type",
                "X-Request-ID",
                "traceparent",
                "tracestate",
            ],
            expose_headers=["X-Request-ID", "Retry-After", *RATELIMIT_HEADERS],
        )
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_middleware(RequestIdMiddleware)
    telemetry.instrument_app(app)  # outermost: the request span holds every other
    return app


def _start_metrics_server(settings: Settings, metrics: Metrics) -> _Stoppable | None:
    if settings.metrics_port is None:
        return None
    from prometheus_client import start_http_server

    # prometheus-client serves from its own daemon thread: no event-loop work.
    server, _thread = start_http_server(
        settings.metrics_port, addr=settings.host, registry=metrics.registry
    )
    _log.info("metrics on http://%s:%d/metrics", settings.host, settings.metrics_port)
    return server


class _Stoppable(Protocol):  # what start_http_server returns (a WSGIServer)
    def shutdown(self) -> None: ...
