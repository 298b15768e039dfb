"""Stored responses (`store: true`): a response, its input items and the whole
conversation it closes, keyed by the response id.

Redis (`PANDAGPT_REDIS_URL` set) is shared by every gateway, so a conversation
continues through any of them and outlives a restart; each record has a TTL
(`responses_ttl_s`). Without Redis, an in-process LRU bounded by
`responses_max_entries`: one gateway's, lost when it stops.

Unlike the embedding cache this is not an optimisation: a Redis failure is a
503 (`Unavailable`), never silently a missing response. Media are never stored:
the conversation keeps each media part as (modality, sha256), and the worker
takes the feature from its embedding cache.
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from typing import Any

from pydantic import BaseModel, Field
from redis.asyncio import Redis
from redis.exceptions import RedisError

from service.config import ResponseStoreSettings
from service.errors import Unavailable

_BACKEND_ERRORS = (RedisError, OSError, TimeoutError)


class StoredResponse(BaseModel):
    response: dict[str, Any]  # the `ResponseObject` as JSON
    owner: str = ""  # the API key's sha256 that created it; "" with auth off
    input_items: list[dict[str, Any]] = Field(default_factory=list)
    # Every item of the conversation through this response's output, for
    # `previous_response_id` (OpenAI does not carry `instructions` over).
    conversation: list[dict[str, Any]] = Field(default_factory=list)
    # Background runs: the running gateway's last sign of life (unix seconds).
    heartbeat: float | None = None

    @property
    def id(self) -> str:
        return str(self.response["id"])

    @property
    def status(self) -> str:
        return str(self.response.get("status", ""))


class ResponseStore(ABC):
    @abstractmethod
    async def get(self, response_id: str) -> StoredResponse | None: ...

    @abstractmethod
    async def put(self, record: StoredResponse) -> None: ...

    @abstractmethod
    async def delete(self, response_id: str) -> bool:
        """True if it was there."""

    @abstractmethod
    async def request_cancel(self, response_id: str) -> None:
        """Ask whichever gateway runs it (background) to stop it."""

    @abstractmethod
    async def cancel_requested(self, response_id: str) -> bool: ...

    async def aclose(self) -> None:
        return None


class MemoryResponseStore(ResponseStore):
    """LRU by last access, each entry expiring `ttl_s` after its last write."""

    def __init__(self, *, max_entries: int, ttl_s: float) -> None:
        self._max_entries = max_entries
        self._ttl_s = ttl_s
        self._records: OrderedDict[str, tuple[float, str]] = OrderedDict()
        self._cancelled: set[str] = set()

    async def get(self, response_id: str) -> StoredResponse | None:
        entry = self._records.get(response_id)
        if entry is None:
            return None
        expires, text = entry
        if time.monotonic() >= expires:
            del self._records[response_id]
            return None
        self._records.move_to_end(response_id)
        # Stored as JSON, as in Redis: a reader never shares objects with the writer.
        return StoredResponse.model_validate_json(text)

    async def put(self, record: StoredResponse) -> None:
        if self._max_entries <= 0:
            return
        self._records[record.id] = (time.monotonic() + self._ttl_s, record.model_dump_json())
        self._records.move_to_end(record.id)
        while len(self._records) > self._max_entries:
            evicted, _ = self._records.popitem(last=False)
            self._cancelled.discard(evicted)

    async def delete(self, response_id: str) -> bool:
        self._cancelled.discard(response_id)
        return self._records.pop(response_id, None) is not None

    async def request_cancel(self, response_id: str) -> None:
        self._cancelled.add(response_id)

    async def cancel_requested(self, response_id: str) -> bool:
        return response_id in self._cancelled


class RedisResponseStore(ResponseStore):
    """Key `<prefix><id>` holds the record as JSON; `<prefix><id>:cancel` a cancel request."""

    def __init__(self, url: str, *, prefix: str, ttl_s: int, timeout_s: float = 2.0) -> None:
        self._client: Redis = Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        )
        self._prefix = prefix
        self._ttl_s = ttl_s
        self._timeout_s = timeout_s

    async def get(self, response_id: str) -> StoredResponse | None:
        value = await self._call(self._client.get(self._prefix + response_id))
        if not isinstance(value, bytes):
            return None
        return StoredResponse.model_validate_json(value)

    async def put(self, record: StoredResponse) -> None:
        key = self._prefix + record.id
        await self._call(self._client.set(key, record.model_dump_json(), ex=self._ttl_s))

    async def delete(self, response_id: str) -> bool:
        key = self._prefix + response_id
        removed = await self._call(self._client.delete(key, f"{key}:cancel"))
        return bool(removed)

    async def request_cancel(self, response_id: str) -> None:
        key = f"{self._prefix}{response_id}:cancel"
        await self._call(self._client.set(key, b"1", ex=self._ttl_s))

    async def cancel_requested(self, response_id: str) -> bool:
        key = f"{self._prefix}{response_id}:cancel"
        return bool(await self._call(self._client.exists(key)))

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _call(self, operation: Any) -> Any:
        try:
            async with asyncio.timeout(self._timeout_s * 2):
                return await operation
        except _BACKEND_ERRORS as exc:
            raise Unavailable("The response store (Redis) is unavailable; retry later.") from exc


def create_store(settings: ResponseStoreSettings) -> ResponseStore:
    if settings.redis_url:
        return RedisResponseStore(
            settings.redis_url,
            prefix=settings.responses_prefix,
            ttl_s=settings.responses_ttl_s,
            timeout_s=settings.responses_socket_timeout_s,
        )
    return MemoryResponseStore(
        max_entries=settings.responses_max_entries, ttl_s=settings.responses_ttl_s
    )
