"""Settings of the gateway side: HTTP, admission, request limits, auth, workers."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings

from service.config.fields import GROUP_CONFIG, StrList

_log = logging.getLogger(__name__)

PLACEHOLDER_KEYS = frozenset({"changeme", "change-me", "secret", "password", "test", "apikey"})


class HTTPSettings(BaseSettings):
    """HTTP server: address, bodies, slow clients and shutdown."""

    model_config = GROUP_CONFIG

    host: str = Field("0.0.0.0", description="Bind address of the HTTP server.")
    port: int = Field(8000, ge=0, le=65535, description="Port of the HTTP server.")
    metrics_port: int | None = Field(
        None, ge=0, le=65535, description="Serve /metrics on its own port instead of the API port."
    )
    cors_origins: StrList = Field(
        default_factory=list, description="Origins allowed by CORS (comma-separated); none = off."
    )
    enable_playground: bool = Field(True, description="Serve the browser playground at `/`.")
    max_body_bytes: int = Field(
        64 * 1024 * 1024, ge=1024, description="Largest request body (413 beyond)."
    )
    body_read_timeout_s: float = Field(
        30.0,
        gt=0,
        description="The whole request body must arrive within this; slower uploads get 408.",
    )
    header_timeout_s: float = Field(
        10.0,
        gt=0,
        description="Each request's headers must arrive within this (from the connection's"
        " opening, or the next request's first byte); slower connections are closed"
        " (slow-loris).",
    )
    shutdown_grace_s: float = Field(
        30.0, ge=0, description="On SIGTERM, how long in-flight requests may finish."
    )


class ProcessSettings(BaseSettings):
    """Process: logging and the C allocator."""

    model_config = GROUP_CONFIG

    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Root log level."
    )
    log_json: bool = Field(True, description="One JSON object per log line (with request id).")
    malloc_arena_max: int = Field(
        0, ge=0, description="glibc malloc arenas (0 = glibc's default of 8 per core)."
    )
    malloc_mmap_threshold_bytes: int = Field(
        0,
        ge=0,
        description="glibc malloc: allocations above this get their own mapping, unmapped when"
        " freed; 0 = glibc's default. A fixed 1 MiB lowers a gateway's peak under large bodies,"
        " but costs media decoding 17-34% more CPU in page faults: leave workers at 0.",
    )


class AdmissionSettings(BaseSettings):
    """Admission: how much work is let in at once, how long it may wait and run."""

    model_config = GROUP_CONFIG

    max_concurrent_requests: int = Field(
        512, ge=1, description="Requests the gateway admits at once; beyond it answers 429."
    )
    max_queued_requests: int = Field(
        0,
        ge=0,
        description="Requests that may wait at the gateway for an admission place, in priority"
        " order (lower first, FIFO within one); 0 = answer 429 at once when full.",
    )
    max_queue_size: int = Field(
        256,
        ge=0,
        description="Jobs that may wait for a running slot; beyond it the worker is busy.",
    )
    request_timeout_s: float = Field(
        600.0, gt=0, description="Per-request limit, from admission to the last token."
    )
    retry_after_s: float = Field(1.0, gt=0, description="Retry-After sent with 429.")
    memory_budget_bytes: int | None = Field(
        None,
        ge=1024 * 1024,
        description="Bytes of request bodies and media a process (gateway or worker) holds at"
        " once; a request that does not fit gets 429. Unset: half of what the container's"
        " memory limit (cgroup; else the machine's memory) leaves once the process is loaded.",
    )


class RequestLimitSettings(BaseSettings):
    """Request limits: what one chat or embeddings request may ask for."""

    model_config = GROUP_CONFIG

    max_n: int = Field(16, ge=1, description="Largest `n` (choices) one chat request may ask for.")
    max_total_tokens: int = Field(
        32768,
        ge=1,
        description="Largest n × max_tokens of one chat request (the tokens it may make"
        " the engine generate); beyond it a 400 naming max_tokens.",
    )
    max_media_items: int = Field(8, ge=0, description="Media items allowed in one request.")


class SamplingDefaultSettings(BaseSettings):
    """Sampling defaults: applied by the gateway under what a request sets.

    In split mode the gateway's settings count, a worker's are not read. Unset here:
    PandaGPT's reference (top_p 0.01, temperature 1.0, 256 tokens), applied by the worker.
    """

    model_config = GROUP_CONFIG

    default_max_tokens: int | None = Field(
        None, ge=1, description="Server default for max_tokens (reference: 256)."
    )
    default_temperature: float | None = Field(
        None, ge=0.0, le=2.0, description="Server default temperature (reference: 1.0)."
    )
    default_top_p: float | None = Field(
        None, gt=0.0, le=1.0, description="Server default top_p (reference: 0.01)."
    )
    default_top_k: int | None = Field(
        None, ge=-1, description="Server default top_k (reference: off)."
    )


class AuthSettings(BaseSettings):
    """Auth and rate limits: the API keys, their limits, and where the limits are kept."""

    model_config = GROUP_CONFIG

    environment: Literal["dev", "staging", "production"] = Field(
        "dev", description="Outside dev, placeholder API keys are refused."
    )
    api_keys: StrList = Field(
        default_factory=list,
        description="Accepted bearer keys (comma-separated or JSON list); none = no auth.",
        repr=False,
    )
    api_key_file: Path | None = Field(
        None,
        description="Mounted secret: one key per line, or YAML with named keys and per-key"
        " limits and priority (README: Per-key limits); re-read when it changes.",
    )
    ratelimit_prefix: str = Field(
        "pandagpt:rl:", description="Key prefix of the per-key rate limits in Redis."
    )

    @model_validator(mode="after")
    def _refuse_placeholder_keys(self) -> AuthSettings:
        weak = [key for key in self.api_keys if key.lower() in PLACEHOLDER_KEYS or len(key) < 8]
        if weak and self.environment != "dev":
            raise ValueError(
                f"{len(weak)} placeholder or short API key(s) in api_keys; "
                "set real keys (>= 8 chars) or PANDAGPT_ENVIRONMENT=dev"
            )
        if weak:
            _log.warning("placeholder API key in use (allowed in dev only)")
        return self


class WorkerPoolSettings(BaseSettings):
    """Workers: where the gateway finds them, and the secret it shows them."""

    model_config = GROUP_CONFIG

    worker_urls: StrList = Field(
        default_factory=list,
        description="Worker base URLs (comma-separated): one Kubernetes Service or a list.",
    )
    worker_poll_interval_s: float = Field(5.0, gt=0, description="Worker readiness poll period.")
    worker_connect_timeout_s: float = Field(
        5.0, gt=0, description="Connect timeout from gateway to workers."
    )
    worker_token: str | None = Field(
        None,
        description="Shared secret between gateway and workers: the gateway sends it as a"
        " bearer token, workers refuse `/internal/*` without it. Unset: that API is open,"
        " so keep workers on a private network.",
        repr=False,
    )

    @field_validator("worker_urls")
    @classmethod
    def _strip_slash(cls, value: list[str]) -> list[str]:
        return [url.rstrip("/") for url in value]
