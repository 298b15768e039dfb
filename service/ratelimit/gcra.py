"""GCRA per key for requests and tokens, leases for concurrency.

GCRA (the generic cell rate algorithm) keeps one number per budget, the
theoretical arrival time `tat`: a budget of L per minute lets a unit in every
T = 60/L s and tolerates a burst of L units, so a request of cost c is
allowed when `max(tat, now) + c·T - 60 s <= now`. It never drifts the way a
counter with a separate expiry does, and a reservation can be paid back or
topped up later by moving `tat` (tokens are reserved at admission and settled
when the reply ends). Concurrency is a set of leases, each with an expiry, so
a gateway that dies mid-request cannot hold a slot forever.

`MemoryBackend` is the per-process implementation; `service.ratelimit.redis`
runs the same arithmetic in a Lua script, shared by every gateway.
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from service.ratelimit.keys import KeyLimits

PERIOD_S = 60.0  # every budget is per minute


@dataclass(frozen=True)
class Budget:
    """One budget's state for the x-ratelimit-* headers."""

    limit: int
    remaining: int
    reset_s: float  # until the budget is whole again


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str | None = None  # "requests", "tokens" or "concurrency" when refused
    retry_after_s: float = 0.0
    requests: Budget | None = None
    tokens: Budget | None = None


class LimitBackend(ABC):
    """Admission and settlement for one key; `lease` names one request's slot."""

    @abstractmethod
    async def admit(
        self, name: str, limits: KeyLimits, tokens: int, lease: str, lease_ttl_s: float
    ) -> Decision: ...

    @abstractmethod
    async def settle(self, name: str, limits: KeyLimits, token_delta: int, lease: str) -> None:
        """Move the token budget by `token_delta` (negative: a refund) and free the lease."""

    async def aclose(self) -> None:
        return None


def emission_s(limit: int) -> float:
    return PERIOD_S / limit


def gcra_check(tat: float, now: float, limit: int, cost: int) -> tuple[bool, float, float]:
    """(allowed, the new tat if allowed else the old one, retry-after seconds)."""
    base = max(tat, now)
    new_tat = base + cost * emission_s(limit)
    allow_at = new_tat - PERIOD_S
    if allow_at > now:
        return False, tat, allow_at - now
    return True, new_tat, 0.0


def gcra_budget(tat: float, now: float, limit: int) -> Budget:
    used = max(tat - now, 0.0)
    remaining = math.floor((PERIOD_S - used) / emission_s(limit) + 1e-9)
    return Budget(limit=limit, remaining=max(0, min(limit, remaining)), reset_s=used)


def gcra_move(tat: float, now: float, limit: int, delta: int) -> float:
    """`tat` after charging `delta` units (negative: paid back, never below now)."""
    return max(max(tat, now) + delta * emission_s(limit), now)


@dataclass
class _KeyState:
    requests_tat: float = 0.0
    tokens_tat: float = 0.0
    leases: dict[str, float] = field(default_factory=dict)  # lease -> expiry


class MemoryBackend(LimitBackend):
    """This process's own limits (no Redis, or while Redis is down)."""

    def __init__(self) -> None:
        self._state: dict[str, _KeyState] = {}

    async def admit(
        self, name: str, limits: KeyLimits, tokens: int, lease: str, lease_ttl_s: float
    ) -> Decision:
        now = time.monotonic()
        state = self._state.setdefault(name, _KeyState(now, now))
        refused: list[tuple[str, float]] = []
        if limits.max_concurrent is not None:
            state.leases = {k: exp for k, exp in state.leases.items() if exp > now}
            if len(state.leases) >= limits.max_concurrent:
                refused.append(("concurrency", 0.0))
        new_rq, new_tk = state.requests_tat, state.tokens_tat
        if limits.requests_per_minute is not None:
            ok, new_rq, wait = gcra_check(state.requests_tat, now, limits.requests_per_minute, 1)
            if not ok:
                refused.append(("requests", wait))
        if limits.tokens_per_minute is not None:
            cost = min(tokens, limits.tokens_per_minute)
            ok, new_tk, wait = gcra_check(state.tokens_tat, now, limits.tokens_per_minute, cost)
            if not ok:
                refused.append(("tokens", wait))
        if not refused:
            # All budgets pass, so all are charged; a refusal charges none.
            state.requests_tat, state.tokens_tat = new_rq, new_tk
            if limits.max_concurrent is not None:
                state.leases[lease] = now + lease_ttl_s
        return Decision(
            allowed=not refused,
            reason=refused[0][0] if refused else None,
            retry_after_s=max((wait for _, wait in refused), default=0.0),
            requests=_budget(state.requests_tat, now, limits.requests_per_minute),
            tokens=_budget(state.tokens_tat, now, limits.tokens_per_minute),
        )

    async def settle(self, name: str, limits: KeyLimits, token_delta: int, lease: str) -> None:
        state = self._state.get(name)
        if state is None:
            return
        state.leases.pop(lease, None)
        if limits.tokens_per_minute is not None and token_delta:
            now = time.monotonic()
            state.tokens_tat = gcra_move(
                state.tokens_tat, now, limits.tokens_per_minute, token_delta
            )


def _budget(tat: float, now: float, limit: int | None) -> Budget | None:
    return None if limit is None else gcra_budget(tat, now, limit)
