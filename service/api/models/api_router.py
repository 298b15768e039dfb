"""HTTP route of `GET /v1/models`."""

from __future__ import annotations

from fastapi import APIRouter

from service.api.deps import AuthDep, CatalogDep
from service.api.models.protocol import ModelList
from service.api.openapi import GET_ERRORS, error_responses

router = APIRouter(prefix="/v1", tags=["models"])


@router.get("/models", response_model=ModelList, responses=error_responses(*GET_ERRORS))
async def list_models(catalog: CatalogDep, _: AuthDep) -> ModelList:
    return await catalog.model_list()
