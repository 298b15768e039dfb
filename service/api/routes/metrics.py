"""`GET /metrics` in Prometheus text format (open, like health)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from service.api.deps import MetricsDep
from service.metrics import render_latest

router = APIRouter(tags=["metrics"])


@router.get("/metrics", include_in_schema=False)
async def metrics(metrics: MetricsDep) -> Response:
    body, content_type = render_latest(metrics)
    return Response(body, media_type=content_type)
