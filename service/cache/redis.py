"""Redis embedding cache (shared by all workers in split mode).

Key: `<prefix><encoder fingerprint>:<modality>:<sha256>`; value: float32
little-endian bytes; every entry has a TTL. Timeouts are short because a slow
cache is worse than none: any error or timeout is logged, counted and answered
as a miss. After a failure the backend is skipped for `backoff_s` so a dead
Redis costs one timeout per backoff window, not one per request.
"""

from __future__ import annotations

import asyncio
import logging
import time

from redis.asyncio import Redis
from redis.exceptions import RedisError

from service import telemetry
from service.cache.base import CacheKey, EmbeddingCache
from service.metrics import Metrics

_log = logging.getLogger(__name__)

# What a failing Redis raises through redis.asyncio: its own errors, socket
# errors that escape them, and our own deadline.
_BACKEND_ERRORS = (RedisError, OSError, TimeoutError)


class RedisCache(EmbeddingCache):
    def __init__(
        self,
        url: str,
        *,
        prefix: str,
        ttl_s: int,
        timeout_s: float = 0.25,
        backoff_s: float = 2.0,
        metrics: Metrics | None = None,
    ) -> None:
        super().__init__(metrics)
        self._client: Redis = Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry_on_timeout=False,
        )
        self._prefix = prefix
        self._ttl_s = ttl_s
        self._timeout_s = timeout_s
        self._backoff_s = backoff_s
        self._skip_until = 0.0
        self._degraded = False

    @property
    def degraded(self) -> bool:
        return self._degraded

    async def _get(self, key: CacheKey) -> bytes | None:
        if self._skipping():
            return None
        try:
            async with asyncio.timeout(self._timeout_s * 2):
                value = await self._client.get(key.render(self._prefix))
        except _BACKEND_ERRORS as exc:
            self._failed("get", exc)
            return None
        self._degraded = False
        return value if isinstance(value, bytes) else None

    async def _set(self, key: CacheKey, value: bytes) -> None:
        if self._skipping():
            return
        try:
            async with asyncio.timeout(self._timeout_s * 2):
                await self._client.set(key.render(self._prefix), value, ex=self._ttl_s)
        except _BACKEND_ERRORS as exc:
            self._failed("set", exc)
            return
        self._degraded = False

    async def probe(self) -> bool:
        """One readiness probe; also clears the degraded flag when Redis is back."""
        try:
            # Readiness probes come every few seconds: no trace each.
            with telemetry.untraced():
                async with asyncio.timeout(self._timeout_s * 2):
                    await self._client.ping()
        except _BACKEND_ERRORS as exc:
            self._failed("ping", exc)
            return False
        self._degraded = False
        self._skip_until = 0.0
        return True

    async def aclose(self) -> None:
        await self._client.aclose()

    def _skipping(self) -> bool:
        return self._degraded and time.monotonic() < self._skip_until

    def _failed(self, operation: str, exc: BaseException) -> None:
        if not self._degraded:
            _log.warning("redis cache %s failed, serving uncached: %r", operation, exc)
        self._degraded = True
        self._skip_until = time.monotonic() + self._backoff_s
        self._count_error(operation)
