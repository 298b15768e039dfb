"""HTTP route of `POST /v1/embeddings`."""

from __future__ import annotations

from fastapi import APIRouter, Request

from service.api.deps import AuthDep, RequestIdDep
from service.api.embeddings.protocol import EmbeddingRequest, EmbeddingResponse
from service.api.embeddings.serving import EmbeddingServing
from service.api.openapi import POST_ERRORS, error_responses
from service.http.json_body import OffloopJSONRoute

router = APIRouter(prefix="/v1", tags=["embeddings"], route_class=OffloopJSONRoute)


@router.post(
    "/embeddings", response_model=EmbeddingResponse, responses=error_responses(*POST_ERRORS)
)
async def create_embeddings(
    body: EmbeddingRequest, raw: Request, request_id: RequestIdDep, _: AuthDep
) -> EmbeddingResponse:
    serving: EmbeddingServing = raw.app.state.embedding_serving
    return await serving.create(body, request_id)
