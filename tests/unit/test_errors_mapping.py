"""service.errors: the one mapping to OpenAI error bodies, and rebuilding errors."""

from __future__ import annotations

import pytest

from service import errors as e


@pytest.mark.parametrize(
    ("exc", "status", "type_"),
    [
        (e.InvalidRequest("x", param="n"), 400, "invalid_request_error"),
        (e.MediaInvalid("x", reason="corrupt"), 400, "invalid_request_error"),
        (e.MediaTooLarge("x"), 400, "invalid_request_error"),
        (e.ContextLengthExceeded("x"), 400, "invalid_request_error"),
        (e.Unauthorized("x"), 401, "authentication_error"),
        (e.NotFound("x"), 404, "not_found_error"),
        (e.PayloadTooLarge("x"), 413, "invalid_request_error"),
        (e.ServerBusy(retry_after=0.2), 429, "rate_limit_error"),
        (e.Unavailable("x"), 503, "service_unavailable_error"),
        (e.WorkerFailed("x"), 500, "internal_error"),
        (e.DeadlineExceeded("x"), 504, "timeout_error"),
        (KeyError("internal detail"), 500, "internal_error"),
    ],
)
def test_error_spec(exc: BaseException, status: int, type_: str) -> None:
    spec = e.error_spec(exc)
    assert (spec.status, spec.type) == (status, type_)
    assert set(spec.body()["error"]) == {"message", "type", "param", "code"}
    assert "internal detail" not in spec.message
    if status == 429:
        assert spec.headers == {"Retry-After": "1"}


def test_error_from_kind_rebuilds_the_class() -> None:
    rebuilt = e.error_from_kind("MediaInvalid", "bad", param="p", code="media_corrupt")
    assert isinstance(rebuilt, e.MediaInvalid) and rebuilt.reason == "corrupt"
    assert rebuilt.param == "p"
    assert isinstance(e.error_from_kind("ContextLengthExceeded", "long"), e.ContextLengthExceeded)
    assert isinstance(e.error_from_kind("MediaTooLarge", "big"), e.MediaTooLarge)
    assert isinstance(e.error_from_kind("SomethingNew", "?"), e.WorkerFailed)
