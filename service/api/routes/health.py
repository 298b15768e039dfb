"""`/health/live` (the process answers) and `/health/ready` (a worker can serve).

Readiness asks the worker (or pool) and reports a degraded cache without
failing: the service still answers, only slower.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from service.api.deps import CacheDep, MetricsDep, WorkerDep
from service.errors import ServiceError
from service.gateway.pool import WorkerPool

router = APIRouter(prefix="/health", tags=["health"])
_log = logging.getLogger(__name__)
_READY_TIMEOUT_S = 5.0


@router.get("/live")
async def live() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/ready",
    responses={503: {"description": "Not ready: the same body with `status: not_ready`"}},
)
async def ready(worker: WorkerDep, cache: CacheDep, metrics: MetricsDep) -> JSONResponse:
    body: dict[str, Any]
    try:
        async with asyncio.timeout(_READY_TIMEOUT_S):
            readiness = await worker.readiness()
    except (ServiceError, TimeoutError) as exc:
        _log.warning("readiness check failed: %r", exc)
        if not isinstance(worker, WorkerPool):
            metrics.worker_healthy.labels(worker="in-process").set(0)
        body = {"status": "not_ready", "detail": "worker unreachable", "cache": "unknown"}
        return JSONResponse(body, status_code=503)
    if not isinstance(worker, WorkerPool):  # a pool publishes per-worker health itself
        metrics.worker_healthy.labels(worker="in-process").set(int(readiness.ready))
    cache_degraded = readiness.cache_degraded
    if cache is not None:
        cache_degraded = cache_degraded or not await cache.probe()
    body = {
        "status": "ready" if readiness.ready else "not_ready",
        "detail": readiness.detail,
        "cache": "degraded" if cache_degraded else "ok",
        "running": readiness.running,
        "waiting": readiness.waiting,
    }
    return JSONResponse(body, status_code=200 if readiness.ready else 503)
