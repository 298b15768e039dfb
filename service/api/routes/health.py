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

from service.api.deps import CacheDep, WorkerDep
from service.errors import ServiceError

router = APIRouter(prefix="/health", tags=["health"])
_log = logging.getLogger(__name__)
# Above the worker's own engine-health timeout (5 s), so that it answers first.
_READY_TIMEOUT_S = 6.0


@router.get("/live")
async def live() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/ready",
    responses={503: {"description": "Not ready: the same body with `status: not_ready`"}},
)
async def ready(worker: WorkerDep, cache: CacheDep) -> JSONResponse:
    body: dict[str, Any]
    try:
        async with asyncio.timeout(_READY_TIMEOUT_S):
            readiness = await worker.readiness()
    except (ServiceError, TimeoutError) as exc:
        _log.warning("readiness check failed: %r", exc)
        body = {"status": "not_ready", "detail": "worker unreachable", "cache": "unknown"}
        return JSONResponse(body, status_code=503)
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
