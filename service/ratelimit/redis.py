"""Limits shared by every gateway through Redis, and the fall back to per-process ones.

Each admission is one Lua script run atomically in Redis, on Redis's clock
(`TIME`), so gateways with skewed clocks still share one budget: it checks
every budget of the key, and charges all of them or none. Keys per API key
name: `<prefix><name>:rq` and `:tk` (GCRA tats in ms, expiring once the
budget is whole again) and `:cc` (a sorted set of leases scored by expiry).

Redis failing must never refuse a request: `FallbackBackend` answers from
this process's `MemoryBackend` while Redis errors or times out, flags it in
`pandagpt_ratelimit_degraded`, and tries Redis again after `backoff_s`, the
same policy as the embedding cache (`service.cache.redis`).
"""

from __future__ import annotations

import asyncio
import logging
import time

from redis.asyncio import Redis
from redis.exceptions import RedisError

from service.metrics import Metrics
from service.ratelimit.gcra import Budget, Decision, LimitBackend, MemoryBackend
from service.ratelimit.keys import KeyLimits

_log = logging.getLogger(__name__)
_BACKEND_ERRORS = (RedisError, OSError, TimeoutError)
_REASONS = ("", "concurrency", "requests", "tokens")

_ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local period = 60000
local rq_limit, tk_limit, cc_limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local cost, lease, ttl = tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6])
local reason, retry = 0, 0
-- returns (the tat now, the tat once charged, the wait before it may be charged)
local function check(key, limit, c)
  local tat = tonumber(redis.call('GET', key) or now)
  local new_tat = math.max(tat, now) + c * period / limit
  return tat, new_tat, math.max(new_tat - period - now, 0)
end
local function refuse(code, wait)
  if reason == 0 then reason = code end
  if wait > retry then retry = wait end
end
if cc_limit > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
  if redis.call('ZCARD', KEYS[3]) >= cc_limit then refuse(1, 0) end
end
local rq_tat, rq_new, tk_tat, tk_new = now, now, now, now
if rq_limit > 0 then
  local wait
  rq_tat, rq_new, wait = check(KEYS[1], rq_limit, 1)
  if wait > 0 then refuse(2, wait) end
end
if tk_limit > 0 then
  local wait
  tk_tat, tk_new, wait = check(KEYS[2], tk_limit, math.min(cost, tk_limit))
  if wait > 0 then refuse(3, wait) end
end
if reason == 0 then
  rq_tat, tk_tat = rq_new, tk_new
  if rq_limit > 0 then
    redis.call('SET', KEYS[1], tostring(rq_tat), 'PX', math.ceil(rq_tat - now) + 1000)
  end
  if tk_limit > 0 then
    redis.call('SET', KEYS[2], tostring(tk_tat), 'PX', math.ceil(tk_tat - now) + 1000)
  end
  if cc_limit > 0 then
    redis.call('ZADD', KEYS[3], now + ttl, lease)
    redis.call('PEXPIRE', KEYS[3], ttl)
  end
end
local function budget(tat, limit)
  if limit <= 0 then return {0, 0} end
  local used = math.max(tat - now, 0)
  return {math.floor((period - used) / (period / limit) + 1e-9), math.ceil(used)}
end
local rq, tk = budget(rq_tat, rq_limit), budget(tk_tat, tk_limit)
return {reason, math.ceil(retry), rq[1], rq[2], tk[1], tk[2]}
"""

_SETTLE = """
redis.call('ZREM', KEYS[2], ARGV[3])
local limit, delta = tonumber(ARGV[1]), tonumber(ARGV[2])
if limit > 0 and delta ~= 0 then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
  local tat = math.max(tonumber(redis.call('GET', KEYS[1]) or now), now)
  tat = math.max(tat + delta * 60000 / limit, now)
  if tat > now then
    redis.call('SET', KEYS[1], tostring(tat), 'PX', math.ceil(tat - now) + 1000)
  else
    redis.call('DEL', KEYS[1])
  end
end
return 1
"""


class RedisBackend(LimitBackend):
    def __init__(self, url: str, *, prefix: str, timeout_s: float) -> None:
        self._client: Redis = Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, retry_on_timeout=False
        )
        self._prefix = prefix
        self._timeout_s = timeout_s
        self._admit = self._client.register_script(_ADMIT)
        self._settle = self._client.register_script(_SETTLE)

    def _keys(self, name: str) -> list[str]:
        return [f"{self._prefix}{name}:{part}" for part in ("rq", "tk", "cc")]

    async def admit(
        self, name: str, limits: KeyLimits, tokens: int, lease: str, lease_ttl_s: float
    ) -> Decision:
        args = [
            limits.requests_per_minute or 0,
            limits.tokens_per_minute or 0,
            limits.max_concurrent or 0,
            tokens,
            lease,
            int(lease_ttl_s * 1000),
        ]
        async with asyncio.timeout(self._timeout_s * 2):
            reply = await self._admit(keys=self._keys(name), args=args)
        reason, retry_ms, rq_left, rq_reset, tk_left, tk_reset = (int(v) for v in reply)
        return Decision(
            allowed=reason == 0,
            reason=_REASONS[reason] or None,
            retry_after_s=retry_ms / 1000,
            requests=_budget(limits.requests_per_minute, rq_left, rq_reset),
            tokens=_budget(limits.tokens_per_minute, tk_left, tk_reset),
        )

    async def settle(self, name: str, limits: KeyLimits, token_delta: int, lease: str) -> None:
        _, tk, cc = self._keys(name)
        async with asyncio.timeout(self._timeout_s * 2):
            await self._settle(
                keys=[tk, cc], args=[limits.tokens_per_minute or 0, token_delta, lease]
            )

    async def aclose(self) -> None:
        await self._client.aclose()


def _budget(limit: int | None, remaining: int, reset_ms: int) -> Budget | None:
    if limit is None:
        return None
    return Budget(limit=limit, remaining=max(0, min(limit, remaining)), reset_s=reset_ms / 1000)


class FallbackBackend(LimitBackend):
    """Redis while it answers; this process's limits while it does not."""

    def __init__(self, primary: LimitBackend, *, metrics: Metrics, backoff_s: float = 2.0) -> None:
        self._primary = primary
        self._local = MemoryBackend()
        self._metrics = metrics
        self._backoff_s = backoff_s
        self._skip_until = 0.0
        self._degraded = False
        self._admitted_by: dict[str, LimitBackend] = {}  # lease -> who must settle it
        metrics.ratelimit_degraded.set(0)

    @property
    def degraded(self) -> bool:
        return self._degraded

    async def admit(
        self, name: str, limits: KeyLimits, tokens: int, lease: str, lease_ttl_s: float
    ) -> Decision:
        backend: LimitBackend = self._local
        decision: Decision | None = None
        if not (self._degraded and time.monotonic() < self._skip_until):
            try:
                decision = await self._primary.admit(name, limits, tokens, lease, lease_ttl_s)
                backend = self._primary
                self._recovered()
            except _BACKEND_ERRORS as exc:
                self._failed("admit", exc)
        if decision is None:
            decision = await self._local.admit(name, limits, tokens, lease, lease_ttl_s)
        if decision.allowed:
            self._admitted_by[lease] = backend
        return decision

    async def settle(self, name: str, limits: KeyLimits, token_delta: int, lease: str) -> None:
        backend = self._admitted_by.pop(lease, self._local)
        try:
            await backend.settle(name, limits, token_delta, lease)
        except _BACKEND_ERRORS as exc:
            # The lease expires on its own; a lost refund only errs on the strict side.
            self._failed("settle", exc)

    async def aclose(self) -> None:
        await self._primary.aclose()

    def _recovered(self) -> None:
        if self._degraded:
            _log.warning("redis is back: rate limits are shared again")
            self._degraded = False
            self._metrics.ratelimit_degraded.set(0)

    def _failed(self, operation: str, exc: BaseException) -> None:
        if not self._degraded:
            _log.warning("redis rate limiter %s failed, limits are per process: %r", operation, exc)
        self._degraded = True
        self._skip_until = time.monotonic() + self._backoff_s
        self._metrics.ratelimit_degraded.set(1)
        self._metrics.ratelimit_errors.labels(operation=operation).inc()
