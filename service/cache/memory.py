"""In-process LRU embedding cache with a TTL (the `serve` default without Redis)."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from service.cache.base import CacheKey, EmbeddingCache
from service.metrics import Metrics


class MemoryCache(EmbeddingCache):
    def __init__(
        self,
        *,
        max_entries: int,
        ttl_s: float,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(metrics)
        self._max_entries = max_entries
        self._ttl_s = ttl_s
        self._clock = clock
        # key -> (expiry time, value); order is recency, oldest first.
        self._entries: OrderedDict[CacheKey, tuple[float, bytes]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    async def _get(self, key: CacheKey) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, value = entry
        if expires <= self._clock():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return value

    async def _set(self, key: CacheKey, value: bytes) -> None:
        if self._max_entries <= 0:
            return
        self._entries[key] = (self._clock() + self._ttl_s, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)
