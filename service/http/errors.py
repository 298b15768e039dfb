"""Errors as HTTP responses, for both servers (the public API and the worker's).

`error_response` is the one place an exception becomes a JSON response: its
status and headers always come from `service.errors.error_spec`; the body is
the OpenAI error object unless the caller passes another shape (the worker
sends a `WorkerErrorEvent`). `param_from_loc` turns a pydantic error location
into the dotted parameter name that OpenAI errors carry.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from starlette.responses import JSONResponse

from service.errors import error_spec

# Discriminator tags pydantic puts in error locations right after a list index
# (`messages.0.user.content`); they are not parameter names.
_UNION_TAGS = frozenset(
    {"system", "developer", "user", "assistant", "tool", "function"}
    | {"text", "image_url", "input_audio", "audio_url", "video_url"}
    | {"thermal_url", "depth_url", "imu_url"}
    # /v1/responses: input items and their content parts
    | {"message", "function_call", "function_call_output"}
    | {"input_text", "input_image", "output_text", "refusal"}
)


def error_response(
    exc: BaseException,
    *,
    body: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """`exc` as a response: its status and headers (Retry-After on 429), the
    OpenAI error body unless `body` is given, and any extra `headers`."""
    spec = error_spec(exc)
    return JSONResponse(
        dict(body) if body is not None else spec.body(),
        status_code=spec.status,
        headers={**spec.headers, **(headers or {})},
    )


def param_from_loc(loc: Sequence[int | str]) -> str | None:
    parts: list[str] = []
    previous: int | str | None = None
    for i, item in enumerate(loc):
        skip = (
            (i == 0 and item in ("body", "query", "path", "header"))
            or (isinstance(item, str) and ("[" in item or item in ("str", "int", "float")))
            or (isinstance(previous, int) and item in _UNION_TAGS)
        )
        previous = item
        if not skip:
            parts.append(str(item))
    return ".".join(parts) or None
