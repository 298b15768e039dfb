"""One request's admission: its API key's grant (limits, usage) and its place in flight.

The key's limits are checked first (a 429 for the key costs no place), then
the request takes a place, queueing by priority if the gateway is full. The
`Admission` stands in for the inflight ticket through the request's life:
`started` at the first token, `record_usage` when the worker reports usage,
`release` at the end, which frees the place at once and settles the key's
tokens in the background (a Redis round trip must not hold the response).
"""

from __future__ import annotations

import asyncio
import logging

from service.api.inflight import InflightLimit, Ticket
from service.errors import ServerBusy
from service.ratelimit import Grant, RateLimiter

_log = logging.getLogger(__name__)


class Admission:
    def __init__(self, ticket: Ticket, grant: Grant, priority: int) -> None:
        self.ticket = ticket
        self.grant = grant
        self.priority = priority
        self._usage: tuple[int, int] | None = None
        self._released = False

    def started(self) -> None:
        self.ticket.started()

    def record_usage(self, prompt_tokens: int, completion_tokens: int) -> None:
        self._usage = (prompt_tokens, completion_tokens)

    def release(self) -> None:
        if self._released:
            return
        self._released = True
        self.ticket.release()
        prompt, completion = self._usage if self._usage is not None else (None, 0)
        used = self.grant.record(prompt, completion)
        if self.grant.held:
            task = asyncio.get_running_loop().create_task(self.grant.settle(used))
            _settling.add(task)
            task.add_done_callback(_settled)


_settling: set[asyncio.Task[None]] = set()  # strong references until each settle ends


def _settled(task: asyncio.Task[None]) -> None:
    _settling.discard(task)
    if not task.cancelled() and task.exception() is not None:
        _log.error("settling a request's usage failed", exc_info=task.exception())


async def admit(
    rate_limiter: RateLimiter,
    inflight: InflightLimit,
    *,
    endpoint: str,
    tokens: int,
    priority: int | None,
    queue_timeout_s: float,
) -> Admission:
    """Check the key's limits, then take a place (queueing up to `queue_timeout_s`)."""
    grant = await rate_limiter.admit(endpoint, tokens)
    effective = rate_limiter.priority(priority)
    try:
        async with asyncio.timeout(queue_timeout_s):
            ticket = await inflight.acquire(effective)
    except ServerBusy:
        rate_limiter.refused("busy")
        await grant.settle(0)
        raise
    except TimeoutError:
        rate_limiter.refused("queue_timeout")
        await grant.settle(0)
        raise ServerBusy(
            f"Waited {queue_timeout_s:g}s for a place without getting one; retry later.",
            retry_after=inflight.retry_after_s,
        ) from None
    except BaseException:
        await grant.settle(0)
        raise
    return Admission(ticket, grant, effective)
