"""The gateway's admission queue: priority order, FIFO within a priority, 429 when full."""

from __future__ import annotations

import asyncio

import pytest

from service.api.inflight import InflightLimit, Ticket
from service.errors import ServerBusy
from service.metrics import Metrics


async def queued(limit: InflightLimit, count: int) -> None:
    while limit.queued < count:
        await asyncio.sleep(0)


async def test_released_places_go_by_priority_then_arrival() -> None:
    metrics = Metrics()
    limit = InflightLimit(1, retry_after_s=1.0, metrics=metrics, max_waiting=8)
    holder = await limit.acquire()
    order: list[str] = []
    tickets: dict[str, Ticket] = {}

    async def request(name: str, priority: int) -> None:
        tickets[name] = await limit.acquire(priority)
        order.append(name)

    tasks = []
    for i, (name, priority) in enumerate(
        [("low-1", 5), ("low-2", 5), ("high", -1), ("mid", 0), ("low-3", 5)]
    ):
        tasks.append(asyncio.create_task(request(name, priority)))
        await queued(limit, i + 1)
    assert metrics.registry.get_sample_value("pandagpt_requests_queued") == 5
    holder.release()
    for served in range(1, 6):
        while len(order) < served:
            await asyncio.sleep(0)
        assert limit.in_flight == 1  # one place, handed on: nobody overtakes
        tickets[order[-1]].release()
    await asyncio.gather(*tasks)
    assert order == ["high", "mid", "low-1", "low-2", "low-3"]
    assert limit.in_flight == 0 and limit.queued == 0
    assert metrics.registry.get_sample_value("pandagpt_requests_queued") == 0


async def test_full_queue_answers_busy_and_a_cancelled_waiter_leaves() -> None:
    metrics = Metrics()
    limit = InflightLimit(1, retry_after_s=3.0, metrics=metrics, max_waiting=1)
    holder = await limit.acquire()
    waiter = asyncio.create_task(limit.acquire(0))
    await queued(limit, 1)
    with pytest.raises(ServerBusy) as info:
        await limit.acquire(-10)  # even a high priority cannot wait in a full queue
    assert info.value.retry_after == 3.0
    waiter.cancel()  # its client went away
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert limit.queued == 0
    holder.release()
    assert limit.in_flight == 0
    assert (await limit.acquire()) is not None  # the place is free again


async def test_no_queue_by_default() -> None:
    limit = InflightLimit(1, retry_after_s=1.0, metrics=Metrics())
    await limit.acquire()
    with pytest.raises(ServerBusy):
        await limit.acquire()
