"""Every error leaves the API as an OpenAI error body, through `error_response`.

Validation errors become 400 (as OpenAI answers bad parameters) naming the
parameter as a dotted path (`messages.0.content`); Starlette's HTTP errors (404
unknown route, 405) keep their status with an OpenAI body.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Match

from service.errors import InvalidRequest, NotFound, ServiceError
from service.http.errors import error_response, param_from_loc

_log = logging.getLogger(__name__)


async def _service_error(_: Request, exc: Exception) -> Response:
    if isinstance(exc, ServiceError) and exc.status >= 500:
        _log.warning("request failed: %s: %s", type(exc).__name__, exc.message)
    return error_response(exc)


async def _validation_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors: list[Any] = list(exc.errors())
    if not errors:
        return error_response(InvalidRequest("Invalid request."))
    # With unions (`str | list[part]`) every branch reports; the deepest location
    # names the field that is actually wrong.
    first = max(errors, key=lambda e: len(e.get("loc", ())))
    if first.get("type") == "json_invalid":
        return error_response(
            InvalidRequest("Request body is not valid JSON.", code="invalid_json")
        )
    param = param_from_loc(first.get("loc", ()))
    message = str(first.get("msg", "Invalid value"))
    if param:
        message = f"{message} (parameter '{param}')"
    if len(errors) > 1:
        message += f"; and {len(errors) - 1} more error(s)"
    return error_response(InvalidRequest(message, param=param, code="invalid_value"))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 405:
        exc.headers = {**(exc.headers or {}), "Allow": _allowed_methods(request)}
    if exc.status_code == 404:
        return error_response(
            NotFound(str(exc.detail) if exc.detail != "Not Found" else "Not found.")
        )
    error = ServiceError(str(exc.detail))
    error.status = exc.status_code
    error.type = "invalid_request_error" if exc.status_code < 500 else "internal_error"
    return error_response(error, headers=exc.headers)  # e.g. Allow on 405 (RFC 9110)


def _allowed_methods(request: Request) -> str:
    """Every method of every route on this path: Starlette's 405 names only the first
    route's (`/v1/responses/{id}` has GET and DELETE as two routes)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)  # PARTIAL: the path matches, not the method
        if match != Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return ", ".join(sorted(methods))


async def _unexpected(_: Request, exc: Exception) -> Response:
    _log.error("unhandled error", exc_info=exc)
    return error_response(exc)


def install_exception_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
