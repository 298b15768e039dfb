"""The stored-response backends: Redis (the machine's, on 127.0.0.1:6379, under a key
prefix of its own per test) and the in-process LRU; and how a reader sees a
background run whose gateway fell silent."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from service.api.responses.background import STALE_BEATS, observed
from service.api.responses.store import (
    MemoryResponseStore,
    RedisResponseStore,
    ResponseStore,
    StoredResponse,
)
from service.errors import Unavailable

REDIS_URL = "redis://127.0.0.1:6379/0"


def record(rid: str, status: str = "completed", **fields: object) -> StoredResponse:
    response = {"id": rid, "object": "response", "status": status, "output": []}
    return StoredResponse(response=response, owner="k", **fields)  # type: ignore[arg-type]


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[ResponseStore]:
    if request.param == "memory":
        yield MemoryResponseStore(max_entries=100, ttl_s=60)
        return
    prefix = f"pandagpt-test-resp-{uuid.uuid4().hex[:12]}:"
    redis_store = RedisResponseStore(REDIS_URL, prefix=prefix, ttl_s=60)
    try:
        yield redis_store
    finally:
        client = Redis.from_url(REDIS_URL)
        keys = [key async for key in client.scan_iter(f"{prefix}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()
        await redis_store.aclose()


async def test_put_get_delete(store: ResponseStore) -> None:
    items = [{"id": "msg_1", "type": "message", "role": "user", "content": "hi"}]
    await store.put(record("resp_a", conversation=items, input_items=items))
    got = await store.get("resp_a")
    assert got is not None and got.status == "completed" and got.owner == "k"
    assert got.conversation == items and got.input_items == items
    assert await store.get("resp_b") is None
    assert await store.delete("resp_a") is True
    assert await store.get("resp_a") is None
    assert await store.delete("resp_a") is False


async def test_cancel_requests_are_seen_by_any_reader(store: ResponseStore) -> None:
    await store.put(record("resp_c", "in_progress"))
    assert await store.cancel_requested("resp_c") is False
    await store.request_cancel("resp_c")
    assert await store.cancel_requested("resp_c") is True


async def test_redis_records_expire_after_their_ttl() -> None:
    prefix = f"pandagpt-test-resp-{uuid.uuid4().hex[:12]}:"
    store = RedisResponseStore(REDIS_URL, prefix=prefix, ttl_s=1)
    try:
        await store.put(record("resp_t"))
        assert await store.get("resp_t") is not None
        await asyncio.sleep(1.2)
        assert await store.get("resp_t") is None
    finally:
        await store.aclose()


async def test_a_dead_redis_is_a_503_not_a_missing_response() -> None:
    store = RedisResponseStore("redis://127.0.0.1:1/0", prefix="x:", ttl_s=60, timeout_s=0.2)
    try:
        with pytest.raises(Unavailable):
            await store.get("resp_x")
        with pytest.raises(Unavailable):
            await store.put(record("resp_x"))
    finally:
        await store.aclose()


async def test_memory_store_is_a_bounded_lru() -> None:
    store = MemoryResponseStore(max_entries=2, ttl_s=60)
    for rid in ("resp_1", "resp_2"):
        await store.put(record(rid))
    assert await store.get("resp_1") is not None  # now the most recently used
    await store.put(record("resp_3"))
    assert await store.get("resp_2") is None  # the least recently used went
    assert await store.get("resp_1") is not None and await store.get("resp_3") is not None
    off = MemoryResponseStore(max_entries=0, ttl_s=60)
    await off.put(record("resp_1"))
    assert await off.get("resp_1") is None


async def test_memory_store_entries_expire() -> None:
    store = MemoryResponseStore(max_entries=10, ttl_s=0.05)
    await store.put(record("resp_1"))
    await asyncio.sleep(0.1)
    assert await store.get("resp_1") is None


def test_a_silent_run_reads_as_failed_never_in_progress_forever() -> None:
    beat = 1.0
    alive = record("resp_l", "in_progress", heartbeat=time.time())
    assert observed(alive, beat).status == "in_progress"
    stale = record("resp_s", "in_progress", heartbeat=time.time() - STALE_BEATS * beat - 1)
    seen = observed(stale, beat)
    assert seen.status == "failed" and seen.response["error"]["code"] == "server_error"
    queued = record("resp_q", "queued", heartbeat=time.time() - 3600)
    assert observed(queued, beat).status == "failed"
    finished = record("resp_f", "completed", heartbeat=time.time() - 3600)
    assert observed(finished, beat).status == "completed"
