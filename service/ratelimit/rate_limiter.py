"""What the API calls: admit a request against its key's limits, then settle its usage.

Tokens: a chat request reserves an estimate at admission, `max_tokens × n`
plus its prompt estimated from the text (4 characters a token) and a fixed
share per media item, capped at the key's per-minute budget so that one large
request can still pass on a whole budget. When the reply ends the real usage
(prompt + completion tokens from the worker) replaces the reservation; a reply
cut short with no usage keeps the reservation. So a key may go over its token
budget by at most what its replies in flight under-estimated, and then waits
longer before the next request.

Every grant also carries the `x-ratelimit-*` headers (OpenAI's names), sent on
successful replies and on 429s alike, and records usage by key name in Prometheus.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from contextvars import ContextVar

from service.config import Settings
from service.errors import RateLimited
from service.metrics import Metrics
from service.ratelimit.gcra import Budget, Decision, LimitBackend, MemoryBackend
from service.ratelimit.keys import ANONYMOUS, ApiKey, KeyLimits

_log = logging.getLogger(__name__)

# Set by the auth middleware for the request being served: its key (None: auth off)
# and the headers the limiter wants on the response, whatever the response is.
current_key: ContextVar[ApiKey | None] = ContextVar("pandagpt_api_key", default=None)
response_headers: ContextVar[dict[str, str] | None] = ContextVar(
    "pandagpt_ratelimit_headers", default=None
)

RATELIMIT_HEADERS = [
    f"x-ratelimit-{what}-{kind}"
    for kind in ("requests", "tokens")
    for what in ("limit", "remaining", "reset")
]
CHARS_PER_TOKEN = 4
TOKENS_PER_MEDIA_ITEM = 8  # a generous share of the one soft token and its template


def estimate_tokens(prompt_chars: int, media_items: int, max_tokens: int, n: int) -> int:
    return (
        prompt_chars // CHARS_PER_TOKEN + 1 + media_items * TOKENS_PER_MEDIA_ITEM + max_tokens * n
    )


def duration(seconds: float) -> str:
    """OpenAI's reset format: `20ms`, `1.5s`, `6m0s`."""
    if seconds < 1:
        return f"{max(0, round(seconds * 1000))}ms"
    minutes, rest = divmod(seconds, 60)
    text = f"{rest:.3f}".rstrip("0").rstrip(".") + "s"
    return f"{int(minutes)}m{text}" if minutes else text


def ratelimit_headers(decision: Decision) -> dict[str, str]:
    headers: dict[str, str] = {}
    for kind, budget in (("requests", decision.requests), ("tokens", decision.tokens)):
        if budget is not None:
            headers.update(_budget_headers(kind, budget))
    return headers


def _budget_headers(kind: str, budget: Budget) -> dict[str, str]:
    return {
        f"x-ratelimit-limit-{kind}": str(budget.limit),
        f"x-ratelimit-remaining-{kind}": str(budget.remaining),
        f"x-ratelimit-reset-{kind}": duration(budget.reset_s),
    }


class Grant:
    """One admitted request: its reservation, lease and usage accounting."""

    def __init__(
        self,
        rate_limiter: RateLimiter,
        name: str,
        limits: KeyLimits,
        reserved: int,
        lease: str | None,
    ) -> None:
        self._rate_limiter = rate_limiter
        self.name = name
        self.limits = limits
        self.reserved = reserved
        self._lease = lease
        self._settled = False

    def count_media(self, modalities: Iterable[str]) -> None:
        for modality in modalities:
            self._rate_limiter.metrics.key_media_items.labels(
                key=self.name, modality=modality
            ).inc()

    @property
    def held(self) -> bool:
        """Whether the limiter holds something for this request (a lease, a reservation)."""
        return self._lease is not None and not self._settled

    def record(self, prompt_tokens: int | None, completion_tokens: int = 0) -> int:
        """Count the real usage in the metrics; returns the tokens to settle against the
        reservation (None: unknown, the reservation stands)."""
        if prompt_tokens is None:
            return self.reserved
        self._rate_limiter.metrics.key_prompt_tokens.labels(key=self.name).inc(prompt_tokens)
        self._rate_limiter.metrics.key_completion_tokens.labels(key=self.name).inc(
            completion_tokens
        )
        return prompt_tokens + completion_tokens

    async def settle(self, used: int) -> None:
        """Replace the reservation by `used` tokens and free the concurrency slot."""
        if not self.held or self._lease is None:
            return
        self._settled = True
        await self._rate_limiter.backend.settle(
            self.name, self.limits, used - self.reserved, self._lease
        )


class RateLimiter:
    def __init__(
        self, backend: LimitBackend, metrics: Metrics, *, retry_after_s: float, lease_ttl_s: float
    ) -> None:
        self.backend = backend
        self.metrics = metrics
        self.retry_after_s = retry_after_s
        self.lease_ttl_s = lease_ttl_s

    def priority(self, requested: int | None) -> int:
        """The request's priority: its own, never ahead of its key's default."""
        key = current_key.get()
        floor = key.limits.priority if key is not None else None
        if requested is None:
            return floor or 0
        return requested if floor is None else max(requested, floor)

    async def admit(self, endpoint: str, tokens: int) -> Grant:
        """Admit the current request or raise `RateLimited` (429, with its headers)."""
        key = current_key.get()
        name = key.name if key is not None else ANONYMOUS
        limits = key.limits if key is not None else KeyLimits()
        if limits.tokens_per_minute is not None:
            tokens = min(tokens, limits.tokens_per_minute)
        if not limits.limited:
            self.metrics.key_requests.labels(key=name, endpoint=endpoint).inc()
            return Grant(self, name, limits, tokens, None)
        lease = uuid.uuid4().hex
        decision = await self.backend.admit(name, limits, tokens, lease, self.lease_ttl_s)
        headers = response_headers.get()
        if headers is not None:
            headers.update(ratelimit_headers(decision))
        if not decision.allowed:
            reason = decision.reason or "requests"
            self.metrics.key_refusals.labels(key=name, reason=reason).inc()
            self.metrics.rejected_requests.labels(reason="rate_limited").inc()
            _log.info("rate limited", extra={"limit": reason})
            retry = decision.retry_after_s if reason != "concurrency" else self.retry_after_s
            raise RateLimited(_message(reason, limits), retry_after=retry)
        self.metrics.key_requests.labels(key=name, endpoint=endpoint).inc()
        return Grant(self, name, limits, tokens, lease)

    def refused(self, reason: str) -> None:
        """Count a refusal that happened after the key's limits passed (capacity)."""
        key = current_key.get()
        self.metrics.key_refusals.labels(key=key.name if key else ANONYMOUS, reason=reason).inc()

    async def aclose(self) -> None:
        await self.backend.aclose()


def _message(reason: str, limits: KeyLimits) -> str:
    if reason == "concurrency":
        return (
            f"Too many concurrent requests for this API key (limit {limits.max_concurrent});"
            " retry when one finishes."
        )
    per_minute = limits.requests_per_minute if reason == "requests" else limits.tokens_per_minute
    return f"Rate limit reached for {reason} per minute (limit {per_minute}); retry later."


def create_rate_limiter(settings: Settings, metrics: Metrics) -> RateLimiter:
    """Redis-shared limits when `redis_url` is set (falling back per process), else per process."""
    backend: LimitBackend
    if settings.redis_url:
        from service.ratelimit.redis import FallbackBackend, RedisBackend

        primary = RedisBackend(
            settings.redis_url,
            prefix=settings.ratelimit_prefix,
            timeout_s=settings.cache_socket_timeout_s,
        )
        backend = FallbackBackend(primary, metrics=metrics)
    else:
        backend = MemoryBackend()
    return RateLimiter(
        backend,
        metrics,
        retry_after_s=settings.retry_after_s,
        lease_ttl_s=settings.request_timeout_s + 60.0,
    )
