"""Retries: 429, 503 and connection errors only, with backoff, Retry-After, bounded attempts."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest

from service.batch.client import BatchClient, RetryPolicy, parse_retry_after

ANSWER = {"object": "chat.completion", "choices": []}


def client_for(
    answers: list[Callable[[httpx.Request], httpx.Response]], policy: RetryPolicy
) -> tuple[BatchClient, list[float], list[httpx.Request]]:
    """A client over a MockTransport that answers with `answers` in turn; the sleeps
    it asked for and the requests it sent are recorded."""
    sleeps: list[float] = []
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answers[min(len(seen), len(answers)) - 1](request)

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler), base_url="http://svc")
    return BatchClient(http, policy, sleep=sleep, rng=lambda: 1.0), sleeps, seen


def status(code: int, **headers: str) -> Callable[[httpx.Request], httpx.Response]:
    body = {"error": {"message": f"status {code}", "type": "x", "code": f"c{code}"}}
    if code == 200:
        body = ANSWER
    return lambda _: httpx.Response(code, json=body, headers={"x-request-id": "rid", **headers})


def refuse_connection(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


async def test_429_is_retried_no_sooner_than_retry_after() -> None:
    policy = RetryPolicy(backoff_s=0.1)
    client, sleeps, seen = client_for([status(429, **{"Retry-After": "2"}), status(200)], policy)
    outcome = await client.post("/v1/chat/completions", b"{}")
    assert outcome.ok and outcome.body == ANSWER and outcome.request_id == "rid"
    assert outcome.retries == 1 and len(seen) == 2
    assert sleeps == [2.0]  # the backoff step (0.1) is shorter than what the service asked


async def test_503_and_connection_errors_back_off_exponentially_then_give_up() -> None:
    policy = RetryPolicy(max_attempts=4, backoff_s=0.5, max_backoff_s=1.5)
    retried: list[int] = []
    client, sleeps, seen = client_for([refuse_connection, status(503)], policy)
    client._on_retry = lambda: retried.append(1)
    outcome = await client.post("/v1/embeddings", b"{}")
    assert len(seen) == 4 and len(retried) == 3
    assert sleeps == [0.5, 1.0, 1.5]  # doubled, capped (rng 1.0: the whole step)
    # The last answer is the outcome: the service's 503, as it answered.
    assert outcome.status_code == 503 and outcome.error_code == "c503"
    assert outcome.retries == 3


async def test_connection_errors_that_never_end_have_no_response() -> None:
    client, _, seen = client_for([refuse_connection], RetryPolicy(max_attempts=2))
    outcome = await client.get("/v1/models")
    assert len(seen) == 2
    assert outcome.status_code is None and outcome.error_code == "connection_error"
    assert "connection refused" in (outcome.error_message or "")


@pytest.mark.parametrize("code", [400, 401, 404, 413, 500])
async def test_other_answers_are_final(code: int) -> None:
    client, sleeps, seen = client_for([status(code), status(200)], RetryPolicy())
    outcome = await client.post("/v1/chat/completions", b"{}")
    assert len(seen) == 1 and sleeps == []
    assert outcome.status_code == code and outcome.error_code == f"c{code}"


async def test_a_request_over_its_timeout_is_given_up_without_retry() -> None:
    calls = 0

    async def slow(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        await asyncio.sleep(5)
        return httpx.Response(200, json=ANSWER)

    http = httpx.AsyncClient(transport=httpx.MockTransport(slow), base_url="http://svc")
    client = BatchClient(http, RetryPolicy(timeout_s=0.05))
    outcome = await client.post("/v1/chat/completions", b"{}")
    assert calls == 1
    assert outcome.error_code == "timeout" and outcome.status_code is None


def test_jitter_stays_between_half_and_the_whole_step() -> None:
    policy = RetryPolicy(backoff_s=1.0, max_backoff_s=8.0)
    assert policy.delay(1, None, lambda: 0.0) == 0.5
    assert policy.delay(3, None, lambda: 1.0) == 4.0
    assert policy.delay(10, None, lambda: 1.0) == 8.0
    assert policy.delay(1, 3.0, lambda: 0.0) == 3.0
    assert policy.delay(1, 1e9, lambda: 0.0) == 300.0  # an absurd Retry-After is capped


def test_retry_after_as_seconds_or_http_date() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
