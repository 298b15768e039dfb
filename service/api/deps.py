"""Dependency aliases for route functions, filled from `app.state` by `create_app`."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from service.api.models.catalog import ModelCatalog
from service.cache.base import EmbeddingCache
from service.contract import Worker
from service.metrics import Metrics


def get_worker(request: Request) -> Worker:
    return cast(Worker, request.app.state.worker)


def get_cache(request: Request) -> EmbeddingCache | None:
    return cast("EmbeddingCache | None", request.app.state.cache)


def get_metrics(request: Request) -> Metrics:
    return cast(Metrics, request.app.state.metrics)


def get_catalog(request: Request) -> ModelCatalog:
    return cast(ModelCatalog, request.app.state.catalog)


def get_request_id(request: Request) -> str:
    # Set by RequestIdMiddleware; a fallback keeps routes usable without it (tests).
    return str(request.scope.get("state", {}).get("request_id") or "no-request-id")


WorkerDep = Annotated[Worker, Depends(get_worker)]
CacheDep = Annotated[EmbeddingCache | None, Depends(get_cache)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
CatalogDep = Annotated[ModelCatalog, Depends(get_catalog)]
RequestIdDep = Annotated[str, Depends(get_request_id)]
# Auth is enforced by AuthMiddleware for every /v1/ path (so no route can forget
# it); AuthDep only documents that a route sits behind it (the bearer scheme in
# the OpenAPI schema). It never refuses: auto_error=False, and the middleware ran.
_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer KEY`.")
AuthDep = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
