"""Settings of what is kept in Redis or in memory: embeddings and stored responses."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings

from service.config.fields import GROUP_CONFIG


class RedisSettings(BaseSettings):
    """Redis: the one server behind the cache, stored responses and shared rate limits."""

    model_config = GROUP_CONFIG

    redis_url: str | None = Field(
        None,
        description="Embedding cache and the gateways' shared per-key limits in Redis;"
        " in-memory LRU and per-process limits when unset.",
        repr=False,
    )


class CacheSettings(RedisSettings):
    """Embedding cache: media embeddings kept by content hash."""

    cache_ttl_s: int = Field(7 * 24 * 3600, ge=1, description="Embedding cache entry lifetime.")
    cache_prefix: str = Field("pandagpt:emb:", description="Key prefix in Redis.")
    cache_max_entries: int = Field(10_000, ge=0, description="In-memory cache bound; 0 = off.")
    cache_socket_timeout_s: float = Field(
        0.25, gt=0, description="Redis timeout; slower answers count as misses."
    )


class ResponseStoreSettings(RedisSettings):
    """Stored responses: `POST /v1/responses` with `store: true`."""

    responses_ttl_s: int = Field(
        30 * 24 * 3600, ge=1, description="Lifetime of a stored response (Redis or in memory)."
    )
    responses_prefix: str = Field("pandagpt:resp:", description="Key prefix of stored responses.")
    responses_max_entries: int = Field(
        10_000, ge=0, description="In-memory store bound (no Redis URL), LRU; 0 = store nothing."
    )
    responses_socket_timeout_s: float = Field(
        2.0, gt=0, description="Redis timeout for stored responses; slower is a 503."
    )
    responses_heartbeat_s: float = Field(
        2.0,
        gt=0,
        description="How often a gateway running a background response marks it alive; one"
        " silent for 5 periods is reported failed.",
    )
