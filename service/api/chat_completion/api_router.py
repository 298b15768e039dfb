"""HTTP route of `POST /v1/chat/completions`."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from service.api.chat_completion.protocol import ChatCompletionRequest, ChatCompletionResponse
from service.api.chat_completion.serving import ChatServing
from service.api.deps import AuthDep, RequestIdDep
from service.api.openapi import streamed_post_responses
from service.http.disconnect import cancel_on_disconnect
from service.http.json_body import OffloopJSONRoute

router = APIRouter(prefix="/v1", tags=["chat"], route_class=OffloopJSONRoute)


@router.post(
    "/chat/completions",
    response_model=None,
    responses=streamed_post_responses(
        ChatCompletionResponse,
        "The completion (JSON), or server-sent chunks with `stream: true`",
    ),
)
async def create_chat_completion(
    body: ChatCompletionRequest, raw: Request, request_id: RequestIdDep, _: AuthDep
) -> Response:
    serving: ChatServing = raw.app.state.chat_serving
    if body.stream:  # the stream watches for the disconnect itself
        return await serving.create(body, request_id)
    return await cancel_on_disconnect(raw, serving.create(body, request_id))
