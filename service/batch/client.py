"""Sending one batch request, politely: bounded attempts, backoff, Retry-After.

A batch is thousands of requests against a service that others use too. The
service says "not now" with 429 (at capacity) and 503 (no ready worker), both
with `Retry-After`; a restarting service refuses connections. Those are retried
with exponential backoff and jitter (so a fleet of clients does not come back
in lockstep), never sooner than `Retry-After` asks, up to `max_attempts`
attempts in all. Anything else is the request's final answer: a 400 will not
turn into a 200 by asking again. A request that outlives `timeout_s` is given
up without a retry: it would likely time out again, and its work would be
done twice.

`BatchClient` works over any `httpx.AsyncClient`: a real one with `--url`, or
one over the app in process (`inprocess`); tests use httpx's `MockTransport`.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from service.batch.format import Outcome

RETRY_STATUSES = frozenset({429, 503})
# A Retry-After beyond this is capped: a batch should not sleep for hours on one header.
_MAX_RETRY_AFTER_S = 300.0


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 6
    timeout_s: float = 600.0  # one attempt, from sending to the last byte of the answer
    backoff_s: float = 0.5  # the first retry's delay; doubled each time
    max_backoff_s: float = 30.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.timeout_s <= 0 or self.backoff_s < 0:
            raise ValueError(
                f"max_attempts must be >= 1 (got {self.max_attempts}), timeout_s > 0"
                f" (got {self.timeout_s}) and backoff_s >= 0 (got {self.backoff_s})"
            )

    def delay(self, attempt: int, retry_after: float | None, rng: Callable[[], float]) -> float:
        """Seconds to wait after failed attempt `attempt` (1-based): an exponential
        step with "equal jitter" (between half and all of it), and never less than
        what the service asked for."""
        step = min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1))
        jittered = step / 2 + rng() * step / 2
        if retry_after is not None:
            return max(jittered, min(retry_after, _MAX_RETRY_AFTER_S))
        return jittered


def parse_retry_after(value: str | None) -> float | None:
    """`Retry-After` as seconds: delta-seconds or an HTTP date; None if absent or bad."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class BatchClient:
    """Sends requests with the retry policy; counts retries for the progress report."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        policy: RetryPolicy,
        *,
        on_retry: Callable[[], None] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.http = http
        self.policy = policy
        self._on_retry = on_retry
        self._sleep = sleep
        self._rng = rng

    async def post(self, url: str, content: bytes) -> Outcome:
        """POST a JSON body; the final outcome after any retries."""
        headers = {"Content-Type": "application/json"}
        return await self._with_retries(
            lambda: self.http.post(url, content=content, headers=headers)
        )

    async def get(self, url: str) -> Outcome:
        return await self._with_retries(lambda: self.http.get(url))

    async def _with_retries(self, send: Callable[[], Awaitable[httpx.Response]]) -> Outcome:
        policy = self.policy
        attempt = 0
        while True:
            attempt += 1
            retries = attempt - 1
            retry_after: float | None = None
            try:
                async with asyncio.timeout(policy.timeout_s):
                    response = await send()
            except (TimeoutError, httpx.TimeoutException) as exc:
                if not isinstance(exc, httpx.ConnectTimeout):
                    message = f"no answer within {policy.timeout_s:g}s"
                    return Outcome.local("timeout", message, retries=retries)
                outcome = Outcome.local("connection_error", _describe(exc), retries=retries)
            except httpx.TransportError as exc:
                outcome = Outcome.local("connection_error", _describe(exc), retries=retries)
            else:
                outcome = _outcome_of(response, retries)
                if response.status_code not in RETRY_STATUSES:
                    return outcome
                retry_after = parse_retry_after(response.headers.get("retry-after"))
            if attempt == policy.max_attempts:
                return outcome
            if self._on_retry is not None:
                self._on_retry()
            await self._sleep(policy.delay(attempt, retry_after, self._rng))


def _outcome_of(response: httpx.Response, retries: int) -> Outcome:
    body: Any
    try:
        body = response.json()
    except ValueError:  # not JSON (a proxy's HTML page): keep the text
        body = response.text
    request_id = response.headers.get("x-request-id")
    return Outcome.answered(response.status_code, request_id, body, retries=retries)


def _describe(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text != type(exc).__name__ else text


def service_client(url: str, *, api_key: str | None, concurrency: int) -> httpx.AsyncClient:
    """An `httpx.AsyncClient` for the service at `url` (its base URL, as `serve`
    prints it; a trailing `/v1` is accepted). The pool holds one connection per
    worker; timeouts are per attempt (`RetryPolicy.timeout_s`), so httpx's own are
    off but for connecting."""
    base = url.rstrip("/").removesuffix("/v1")
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    limits = httpx.Limits(max_connections=concurrency + 1, max_keepalive_connections=concurrency)
    timeout = httpx.Timeout(None, connect=10.0)
    return httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=timeout)
