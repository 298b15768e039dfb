"""The worker's slot queue: priority order (lower first, FIFO within one), busy when full."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from service.errors import ServerBusy
from service.worker.slots import SlotQueue


async def test_freed_slots_go_by_priority_then_arrival() -> None:
    slots = SlotQueue(max_running=1, max_waiting=4)
    order: list[str] = []
    release: dict[str, asyncio.Event] = {}

    async def job(name: str, priority: int) -> None:
        release[name] = asyncio.Event()
        async with slots.slot(priority):
            order.append(name)
            await release[name].wait()

    holder = asyncio.create_task(job("holder", 0))
    while not order:
        await asyncio.sleep(0)
    tasks = []
    for name, priority in (("low-1", 3), ("high", -2), ("low-2", 3), ("mid", 0)):
        tasks.append(asyncio.create_task(job(name, priority)))
        while slots.waiting < len(tasks):
            await asyncio.sleep(0)
    with pytest.raises(ServerBusy):  # four waiting: the queue is full
        async with slots.slot(-100):
            pass
    for admitted in range(2, 6):  # each finishing job hands its slot to the queue's head
        release[order[-1]].set()
        while len(order) < admitted:
            await asyncio.sleep(0)
        assert slots.running == 1
    release[order[-1]].set()
    await asyncio.gather(holder, *tasks)
    assert order == ["holder", "high", "mid", "low-1", "low-2"]
    assert slots.running == 0 and slots.waiting == 0


async def test_a_job_that_leaves_the_queue_frees_its_place() -> None:
    slots = SlotQueue(max_running=1, max_waiting=1)
    async with slots.slot():
        waiter = asyncio.create_task(slots.slot().__aenter__())
        while slots.waiting < 1:
            await asyncio.sleep(0)
        waiter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiter
        assert slots.waiting == 0
    assert slots.running == 0
