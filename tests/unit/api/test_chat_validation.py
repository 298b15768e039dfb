"""Chat request validation without an app: the schema's own rules, then the
server's limits, each a 400 naming its parameter (the HTTP tests pin the bodies)."""

from __future__ import annotations

import httpx
import pytest

from service.api.chat_completion.protocol import ChatCompletionRequest
from service.api.chat_completion.validation import (
    check_context,
    check_media_count,
    check_request,
)
from service.config import RequestLimitSettings
from service.errors import ContextLengthExceeded, InvalidRequest
from tests.unit.api.conftest import Gateway
from tests.utils.fake_worker import MODEL

USER = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"stream_options": {"include_usage": True}}, "stream_options"),
        ({"top_logprobs": 2}, "top_logprobs"),
    ],
)
def test_an_option_without_its_partner_is_refused_by_the_schema(
    fields: dict[str, object], param: str
) -> None:
    with pytest.raises(InvalidRequest) as caught:
        ChatCompletionRequest.model_validate({"messages": USER, **fields})
    assert caught.value.param == param


def test_the_server_limits_come_from_their_settings_group() -> None:
    limits = RequestLimitSettings(max_n=2, max_total_tokens=100)
    check_request(ChatCompletionRequest(messages=USER, n=2, max_tokens=50), limits)
    with pytest.raises(InvalidRequest) as caught:
        check_request(ChatCompletionRequest(messages=USER, n=3), limits)
    assert (caught.value.param, caught.value.code) == ("n", "invalid_value")
    with pytest.raises(InvalidRequest) as caught:
        check_request(ChatCompletionRequest(messages=USER, n=2, max_completion_tokens=51), limits)
    assert (caught.value.param, caught.value.code) == ("max_completion_tokens", "limit_exceeded")


def test_max_tokens_must_leave_room_in_the_context() -> None:
    check_context(ChatCompletionRequest(messages=USER, max_tokens=99), 100)
    with pytest.raises(ContextLengthExceeded) as caught:
        check_context(ChatCompletionRequest(messages=USER, max_tokens=100), 100)
    assert caught.value.param == "max_tokens"


def test_media_count_names_the_item_past_the_limit() -> None:
    check_media_count(8, 8, "input")
    with pytest.raises(InvalidRequest, match="At most 8 media items") as caught:
        check_media_count(9, 8, "messages.0.content.8")
    assert caught.value.param == "messages.0.content.8"


@pytest.mark.parametrize(
    ("fields", "message", "param"),
    [
        (
            {"stream_options": {"include_usage": True}},
            "stream_options is only allowed with stream=true.",
            "stream_options",
        ),
        ({"top_logprobs": 2}, "top_logprobs needs logprobs=true.", "top_logprobs"),
    ],
)
def test_a_schema_rule_is_the_same_400_over_http(
    gateway: Gateway, fields: dict[str, object], message: str, param: str
) -> None:
    body = {"model": MODEL, "messages": USER, **fields}
    response = httpx.post(f"{gateway.url}/v1/chat/completions", json=body)
    assert response.status_code == 400
    assert response.json() == {
        "error": {
            "message": message,
            "type": "invalid_request_error",
            "param": param,
            "code": None,
        }
    }
