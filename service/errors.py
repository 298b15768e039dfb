"""The service's one exception tree, and the one mapping to OpenAI error bodies.

```
ServiceError                      500 internal_error
├── ClientError                   400 invalid_request_error
│   ├── InvalidRequest(param)     400 invalid_request_error
│   ├── MediaInvalid(reason)      400 invalid_request_error   code media_<reason>
│   │   └── MediaTooLarge         400 invalid_request_error   code media_too_large
│   ├── ContextLengthExceeded     400 invalid_request_error   code context_length_exceeded
│   ├── Unauthorized              401 authentication_error    code invalid_api_key
│   ├── NotFound                  404 not_found_error         code model_not_found / not_found
│   ├── RequestTimeout            408 invalid_request_error   code request_timeout
│   └── PayloadTooLarge           413 invalid_request_error   code payload_too_large
├── ServerBusy(retry_after)       429 rate_limit_error        header Retry-After
│   └── RateLimited               429 rate_limit_error        code rate_limit_exceeded
├── Unavailable                   503 service_unavailable_error
├── WorkerFailed                  500 internal_error
└── DeadlineExceeded              504 timeout_error
```

Gateway and worker raise only these. Foreign errors (httpx, redis, vLLM) are
mapped once at the boundary that sees them, with `raise ... from exc`. Anything
else that escapes is reported as a 500 without its message (it may hold
internals). Across the internal HTTP API an error travels as its class name
(`WorkerErrorEvent.kind`) and is rebuilt with `error_from_kind`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


class ServiceError(Exception):
    status = 500
    type = "internal_error"
    default_code: str | None = None

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code if code is not None else self.default_code


class ClientError(ServiceError):
    status = 400
    type = "invalid_request_error"


class InvalidRequest(ClientError):
    """A parameter is wrong; `param` names it (dotted path, e.g. `messages.0.content`)."""


class MediaInvalid(ClientError):
    """A media item could not be fetched or decoded. `reason` is a short code
    (`empty`, `unsupported_format`, `corrupt`, `blocked_address`, ...)."""

    def __init__(
        self,
        message: str,
        *,
        reason: str = "invalid",
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message, param=param, code=code or f"media_{reason}")
        self.reason = reason


class MediaTooLarge(MediaInvalid):
    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message, reason="too_large", param=param)


class ContextLengthExceeded(ClientError):
    default_code = "context_length_exceeded"


class Unauthorized(ClientError):
    status = 401
    type = "authentication_error"
    default_code = "invalid_api_key"


class NotFound(ClientError):
    status = 404
    type = "not_found_error"
    default_code = "not_found"


class RequestTimeout(ClientError):
    """The request body did not arrive in time (a slow or stalled upload)."""

    status = 408
    default_code = "request_timeout"


class PayloadTooLarge(ClientError):
    status = 413
    default_code = "payload_too_large"


class ServerBusy(ServiceError):
    status = 429
    type = "rate_limit_error"
    default_code = "server_busy"

    def __init__(
        self, message: str = "Server is busy; retry later.", *, retry_after: float = 1.0
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RateLimited(ServerBusy):
    """The API key is over one of its limits (requests, tokens, concurrency)."""

    default_code = "rate_limit_exceeded"


class Unavailable(ServiceError):
    status = 503
    type = "service_unavailable_error"
    default_code = "unavailable"


class WorkerFailed(ServiceError):
    default_code = "worker_failed"


class DeadlineExceeded(ServiceError):
    """The work took longer than the request may (the per-request deadline)."""

    status = 504
    type = "timeout_error"
    default_code = "timeout"


@dataclass(frozen=True)
class ErrorSpec:
    """What a response for an exception looks like: status, OpenAI body, headers."""

    status: int
    type: str
    message: str
    param: str | None
    code: str | None
    headers: dict[str, str]

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


def error_spec(exc: BaseException) -> ErrorSpec:
    """The one mapping from an exception to its HTTP status and OpenAI error body."""
    if isinstance(exc, ServiceError):
        headers: dict[str, str] = {}
        if isinstance(exc, ServerBusy):
            # Retry-After takes whole seconds, rounded up (a rate limit's wait is exact:
            # sooner would be refused again); never advertise 0.
            headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
        return ErrorSpec(exc.status, exc.type, exc.message, exc.param, exc.code, headers)
    return ErrorSpec(500, "internal_error", "Internal server error.", None, "internal_error", {})


def error_body(exc: BaseException) -> dict[str, Any]:
    return error_spec(exc).body()


_BY_NAME: dict[str, type[ServiceError]] = {}


def _register(cls: type[ServiceError]) -> None:
    _BY_NAME[cls.__name__] = cls
    for sub in cls.__subclasses__():
        _register(sub)


_register(ServiceError)


def error_from_kind(
    kind: str, message: str, *, param: str | None = None, code: str | None = None
) -> ServiceError:
    """Rebuild an error that crossed the internal API (see `WorkerErrorEvent`)."""
    cls = _BY_NAME.get(kind, WorkerFailed)
    if issubclass(cls, ServerBusy):
        return cls(message)
    if cls is MediaTooLarge:
        return MediaTooLarge(message, param=param)
    if issubclass(cls, MediaInvalid):
        reason = code[len("media_") :] if code and code.startswith("media_") else "invalid"
        return cls(message, reason=reason, param=param, code=code)
    return cls(message, param=param, code=code)
