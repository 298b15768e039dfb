"""Embedding caches: memory LRU/TTL, real Redis, and Redis down (misses, no errors)."""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from service.cache import CacheKey, create_cache, pack_f32, unpack_f32
from service.cache.memory import MemoryCache
from service.cache.redis import RedisCache
from service.config import Settings
from service.metrics import Metrics

REDIS_URL = "redis://127.0.0.1:6379/0"
VEC = pack_f32([0.5, -1.0, 2.25])


def key(sha: str = "ab" * 32, modality: str = "image") -> CacheKey:
    return CacheKey(fingerprint="enc-1", modality=modality, sha256=sha)


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def test_pack_roundtrip_is_little_endian() -> None:
    assert VEC[:4] == bytes.fromhex("0000003f")  # 0.5 as float32 LE
    assert unpack_f32(VEC) == [0.5, -1.0, 2.25]


async def test_memory_lru_and_ttl() -> None:
    now = [0.0]
    metrics = Metrics()
    cache = MemoryCache(max_entries=2, ttl_s=10, metrics=metrics, clock=lambda: now[0])
    await cache.set(key("a"), b"A")
    await cache.set(key("b"), b"B")
    assert await cache.get(key("a")) == b"A"  # a is now most recent
    await cache.set(key("c"), b"C")  # evicts b, the least recently used
    assert await cache.get(key("b")) is None
    assert await cache.get(key("c")) == b"C"
    assert len(cache) == 2
    now[0] = 11.0
    assert await cache.get(key("a")) is None  # expired
    assert sample(metrics, "pandagpt_cache_hits_total", modality="image") == 2
    assert sample(metrics, "pandagpt_cache_misses_total", modality="image") == 2
    assert await MemoryCache(max_entries=0, ttl_s=1).get(key()) is None


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    prefix = f"pandagpt-test:{uuid.uuid4().hex}:"
    yield prefix
    client = Redis.from_url(REDIS_URL)
    keys = [k async for k in client.scan_iter(match=f"{prefix}*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


async def test_redis_roundtrip_with_ttl(redis_prefix: str) -> None:
    metrics = Metrics()
    cache = create_cache(
        Settings(redis_url=REDIS_URL, cache_prefix=redis_prefix, cache_ttl_s=60), metrics
    )
    assert isinstance(cache, RedisCache)
    assert await cache.get(key()) is None
    await cache.set(key(), VEC)
    assert await cache.get(key()) == VEC
    assert await cache.get(key(modality="audio")) is None  # modality is part of the key
    raw = Redis.from_url(REDIS_URL)
    name = f"{redis_prefix}enc-1:image:{'ab' * 32}"
    assert await raw.get(name) == VEC
    assert 0 < await raw.ttl(name) <= 60
    await raw.aclose()
    assert await cache.probe() and not cache.degraded
    assert sample(metrics, "pandagpt_cache_hits_total", modality="image") == 1
    await cache.aclose()


async def test_redis_down_is_a_miss_not_an_error() -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    metrics = Metrics()
    cache = RedisCache(f"redis://127.0.0.1:{port}/0", prefix="x:", ttl_s=5, metrics=metrics)
    assert await cache.get(key()) is None
    await cache.set(key(), VEC)  # skipped during backoff, still no exception
    assert cache.degraded
    assert not await cache.probe()
    assert sample(metrics, "pandagpt_cache_errors_total", operation="get") == 1
    assert sample(metrics, "pandagpt_cache_misses_total", modality="image") == 1
    await cache.aclose()


def test_factory_defaults_to_memory() -> None:
    cache = create_cache(Settings(cache_max_entries=3))
    assert isinstance(cache, MemoryCache)
