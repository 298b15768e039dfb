"""The limiter's budgets, the same in this process and in a real Redis, and Redis down.

Budgets are per minute, so one test can exhaust one without waiting: the
arithmetic, not the clock, decides (retry-after values are checked in ranges).
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator

import pytest

from service.metrics import Metrics
from service.ratelimit.gcra import LimitBackend, MemoryBackend
from service.ratelimit.keys import KeyLimits
from service.ratelimit.redis import FallbackBackend, RedisBackend

REDIS_URL = "redis://127.0.0.1:6379/0"
TTL = 600.0


@pytest.fixture(params=["memory", "redis"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[LimitBackend]:
    if request.param == "memory":
        yield MemoryBackend()
        return
    redis = RedisBackend(REDIS_URL, prefix=f"pandagpt-test-{uuid.uuid4().hex}:", timeout_s=1.0)
    yield redis
    await redis.aclose()


def lease() -> str:
    return uuid.uuid4().hex


async def test_requests_per_minute(backend: LimitBackend) -> None:
    limits = KeyLimits(requests_per_minute=3)
    seen = [await backend.admit("k", limits, 0, lease(), TTL) for _ in range(4)]
    assert [d.allowed for d in seen] == [True, True, True, False]
    assert [d.requests.remaining for d in seen if d.requests] == [2, 1, 0, 0]
    refused = seen[3]
    assert refused.reason == "requests" and refused.tokens is None
    assert 15.0 < refused.retry_after_s <= 20.0  # one request every 20 s refills
    assert 55.0 < refused.requests.reset_s <= 60.0  # the whole budget: a minute
    # Another key has its own budget.
    assert (await backend.admit("other", limits, 0, lease(), TTL)).allowed


async def test_tokens_reserved_then_settled(backend: LimitBackend) -> None:
    limits = KeyLimits(tokens_per_minute=1000)
    first = lease()
    assert (await backend.admit("k", limits, 800, first, TTL)).tokens.remaining == 200
    refused = await backend.admit("k", limits, 300, lease(), TTL)
    assert not refused.allowed and refused.reason == "tokens"
    await backend.settle("k", limits, -700, first)  # it used 100 of its 800
    again = await backend.admit("k", limits, 300, lease(), TTL)
    assert again.allowed and 590 <= again.tokens.remaining <= 600
    # Going over the estimate is charged too: the budget goes into debt.
    await backend.settle("k", limits, 900, lease())
    in_debt = await backend.admit("k", limits, 1, lease(), TTL)
    assert not in_debt.allowed and in_debt.tokens.remaining == 0
    assert in_debt.retry_after_s > 10


async def test_a_request_larger_than_the_budget_is_capped_by_the_caller(
    backend: LimitBackend,
) -> None:
    limits = KeyLimits(tokens_per_minute=100)
    assert (await backend.admit("k", limits, 100, lease(), TTL)).allowed
    assert not (await backend.admit("k", limits, 1, lease(), TTL)).allowed


async def test_max_concurrent_leases(backend: LimitBackend) -> None:
    limits = KeyLimits(max_concurrent=2, requests_per_minute=100)
    a, b = lease(), lease()
    assert (await backend.admit("k", limits, 0, a, TTL)).allowed
    assert (await backend.admit("k", limits, 0, b, TTL)).allowed
    third = await backend.admit("k", limits, 0, lease(), TTL)
    assert not third.allowed and third.reason == "concurrency"
    assert third.requests.remaining == 98  # a refusal charges no budget
    await backend.settle("k", limits, 0, a)
    assert (await backend.admit("k", limits, 0, lease(), TTL)).allowed


async def test_an_expired_lease_frees_its_slot(backend: LimitBackend) -> None:
    """A gateway that died mid-request cannot hold a slot past its lease."""
    limits = KeyLimits(max_concurrent=1)
    assert (await backend.admit("k", limits, 0, lease(), 0.0)).allowed
    assert (await backend.admit("k", limits, 0, lease(), TTL)).allowed


async def test_all_budgets_or_none() -> None:
    """Refused on tokens: the request budget is not charged either (memory and Redis)."""
    redis = RedisBackend(REDIS_URL, prefix=f"pandagpt-test-{uuid.uuid4().hex}:", timeout_s=1.0)
    try:
        for backend in (MemoryBackend(), redis):
            limits = KeyLimits(requests_per_minute=10, tokens_per_minute=50)
            for _ in range(3):
                decision = await backend.admit("k", limits, 60, lease(), TTL)
            assert decision.reason == "tokens"
            assert decision.requests.remaining == 9  # only the first was admitted
    finally:
        await redis.aclose()


async def test_redis_down_falls_back_per_process() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    metrics = Metrics()
    dead = RedisBackend(f"redis://127.0.0.1:{port}/0", prefix="x:", timeout_s=0.2)
    backend = FallbackBackend(dead, metrics=metrics)
    limits = KeyLimits(requests_per_minute=2, max_concurrent=5)
    leases = [lease() for _ in range(3)]
    seen = [await backend.admit("k", limits, 0, name, TTL) for name in leases]
    assert [d.allowed for d in seen] == [True, True, False]  # limits still hold, per process
    assert backend.degraded
    assert metrics.registry.get_sample_value("pandagpt_ratelimit_degraded") == 1
    errors = metrics.registry.get_sample_value(
        "pandagpt_ratelimit_redis_errors_total", {"operation": "admit"}
    )
    assert errors == 1  # then skipped for the backoff: one timeout per window, not per request
    for name in leases[:2]:
        await backend.settle("k", limits, 0, name)
    await backend.aclose()


async def test_fallback_recovers_when_redis_answers() -> None:
    metrics = Metrics()
    redis = RedisBackend(REDIS_URL, prefix=f"pandagpt-test-{uuid.uuid4().hex}:", timeout_s=1.0)
    backend = FallbackBackend(redis, metrics=metrics, backoff_s=0.0)
    backend._failed("admit", OSError("simulated"))  # as after an outage
    assert metrics.registry.get_sample_value("pandagpt_ratelimit_degraded") == 1
    assert (await backend.admit("k", KeyLimits(requests_per_minute=5), 0, lease(), TTL)).allowed
    assert not backend.degraded
    assert metrics.registry.get_sample_value("pandagpt_ratelimit_degraded") == 0
    await backend.aclose()
