"""Pick the embedding cache from settings: Redis when a URL is set, else memory."""

from __future__ import annotations

from service.cache.base import EmbeddingCache
from service.cache.memory import MemoryCache
from service.cache.redis import RedisCache
from service.config import CacheSettings
from service.metrics import Metrics


def create_cache(settings: CacheSettings, metrics: Metrics | None = None) -> EmbeddingCache:
    if settings.redis_url:
        return RedisCache(
            settings.redis_url,
            prefix=settings.cache_prefix,
            ttl_s=settings.cache_ttl_s,
            timeout_s=settings.cache_socket_timeout_s,
            metrics=metrics,
        )
    return MemoryCache(
        max_entries=settings.cache_max_entries, ttl_s=settings.cache_ttl_s, metrics=metrics
    )
