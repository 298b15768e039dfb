"""OpenAPI documentation the routes share: the error responses each can give (all
OpenAI error bodies, see `service.errors`) and what a streamed chat answer looks like.
Auth is enforced by `AuthMiddleware`; `deps.AuthDep` declares the bearer scheme."""

from __future__ import annotations

from typing import Any

from service.api.protocol_base import ErrorResponse

_WHY: dict[int, str] = {
    400: "Invalid parameter or media (`param` and `code` say which)",
    401: "Missing or invalid API key",
    404: "Unknown model, or no such response",
    408: "Request body not received in time",
    413: "Request body over the size limit",
    429: "At capacity; retry after `Retry-After` seconds",
    500: "Internal error",
    503: "No worker is ready",
    504: "Timed out",
}

# Every /v1 POST can meet all of these (the body limit and auth run before the route).
POST_ERRORS = (400, 401, 404, 408, 413, 429, 500, 503, 504)
GET_ERRORS = (401, 500, 503, 504)


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": ErrorResponse, "description": _WHY[status]} for status in statuses}


# OpenAPI before 3.2 reads an event stream's `schema` as the schema of each event.
SSE_EVENT: dict[str, Any] = {
    "type": "object",
    "description": "One server-sent event. `data` is a `chat.completion.chunk` as JSON, an"
    ' OpenAI error body (`{"error": ...}`) if generation fails mid-stream, or the final'
    " `[DONE]`.",
    "properties": {
        "data": {"type": "string"},
        "event": {"type": "string"},
        "id": {"type": "string"},
        "retry": {"type": "integer"},
    },
    "required": ["data"],
}


def streamed_post_responses(model: type[Any], description: str) -> dict[int | str, dict[str, Any]]:
    """A POST's responses when it answers `model` as JSON, or an event stream with
    `stream: true` (a `text/event-stream` body beside the JSON one), or any POST error."""
    return {
        200: {
            "model": model,
            "description": description,
            "content": {"text/event-stream": {"schema": SSE_EVENT}},
        },
        **error_responses(*POST_ERRORS),
    }
