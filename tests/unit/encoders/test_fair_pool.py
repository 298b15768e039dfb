"""The preprocessing pool serves owners in turn and keeps a thread free of heavy items."""

from __future__ import annotations

import contextvars
import threading
import time

import pytest

from encoders.fair_pool import FairPool, current_owner


def submit_as(pool: FairPool, owner: str, fn, *args, heavy: bool = False):
    context = contextvars.copy_context()
    context.run(current_owner.set, owner)
    return context.run(pool.submit, fn, *args, heavy=heavy)


def test_a_cheap_item_is_not_queued_behind_heavy_ones():
    pool = FairPool(2)
    release = threading.Event()
    started: list[str] = []
    heavy = [
        submit_as(
            pool, "videos", lambda i=i: (started.append(f"v{i}"), release.wait(10)), heavy=True
        )
        for i in range(8)
    ]
    light = submit_as(pool, "image", lambda: started.append("image") or "done")
    assert light.result(timeout=5) == "done"  # while every heavy item still waits
    assert started.count("image") == 1 and len(started) == 2  # one heavy running, one free lane
    release.set()
    for future in heavy:
        future.result(timeout=10)
    pool.shutdown()


def test_owners_take_turns():
    pool = FairPool(1)
    gate = threading.Event()
    order: list[str] = []
    first = submit_as(pool, "a", gate.wait, 10)
    time.sleep(0.05)  # the one thread is busy with the gate
    futures = [submit_as(pool, "a", order.append, f"a{i}") for i in range(3)]
    futures += [submit_as(pool, "b", order.append, f"b{i}") for i in range(2)]
    gate.set()
    for future in [first, *futures]:
        future.result(timeout=5)
    assert order == ["a0", "b0", "a1", "b1", "a2"]
    pool.shutdown()


def test_errors_reach_the_waiter_and_shutdown_cancels_what_waits():
    pool = FairPool(1)
    with pytest.raises(ZeroDivisionError):
        pool.submit(lambda: 1 / 0).result(timeout=5)
    gate = threading.Event()
    running = pool.submit(gate.wait, 10)
    time.sleep(0.05)
    waiting = pool.submit(lambda: "never")
    pool.shutdown(cancel_futures=True)
    assert waiting.cancelled()
    gate.set()
    assert running.result(timeout=5) is True
    with pytest.raises(RuntimeError):
        pool.submit(lambda: None)
