"""MemoryBudget and Reservation: what fits is held, what does not is ServerBusy."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from service.errors import ServerBusy, error_spec
from service.memory import MemoryBudget, charge, current_reservation
from service.memory.limits import MIN_BUDGET_BYTES, auto_budget_bytes, container_limit_bytes
from service.metrics import Metrics


def test_reservations_share_the_budget_and_give_back_everything() -> None:
    metrics = Metrics()
    budget = MemoryBudget(100, metrics=metrics, retry_after_s=2)
    first, second = budget.reservation(), budget.reservation()
    first.grow(60)
    second.grow(30)
    with pytest.raises(ServerBusy) as refused:
        second.grow(20, "media")
    assert "media" in refused.value.message
    assert error_spec(refused.value).headers["Retry-After"] == "2"
    assert (budget.in_use, second.nbytes) == (90, 30)  # the refused part is not held
    assert metrics.registry.get_sample_value("pandagpt_memory_in_use_bytes") == 90
    reason = {"reason": "memory"}
    assert metrics.registry.get_sample_value("pandagpt_rejected_requests_total", reason) == 1
    first.release()
    second.release()
    second.release()  # releasing twice gives back nothing more
    assert budget.in_use == 0


def test_charge_adds_to_the_current_request_only() -> None:
    budget = MemoryBudget(100)
    charge(1000, "outside any request")  # no reservation: nothing to count
    reservation = budget.reservation()
    token = current_reservation.set(reservation)
    try:
        charge(40, "media")
    finally:
        current_reservation.reset(token)
    assert (budget.in_use, reservation.nbytes) == (40, 40)


def test_container_limit_from_cgroup_v2_and_v1(tmp_path: Path) -> None:
    v2 = tmp_path / "sys/fs/cgroup/memory.max"
    v2.parent.mkdir(parents=True)
    v2.write_text("2147483648\n")
    assert container_limit_bytes(tmp_path) == 2 * 2**30
    v2.write_text("max\n")
    assert container_limit_bytes(tmp_path) is None
    v2.unlink()
    v1 = tmp_path / "sys/fs/cgroup/memory/memory.limit_in_bytes"
    v1.parent.mkdir(parents=True)
    v1.write_text(str(2**62))  # v1's "no limit"
    assert container_limit_bytes(tmp_path) is None
    v1.write_text(str(512 * 2**20))
    assert container_limit_bytes(tmp_path) == 512 * 2**20


def test_auto_budget_is_half_of_what_the_limit_leaves() -> None:
    assert auto_budget_bytes(2 * 2**30, resident=2**30) == 2**29
    assert auto_budget_bytes(2**30, resident=2**30) == MIN_BUDGET_BYTES


def test_a_decoding_thread_waits_for_room_then_holds_it() -> None:
    budget = MemoryBudget(100, retry_after_s=3.0)
    first = budget.hold(80, "one video")
    got: list[float] = []

    def second() -> None:
        start = time.monotonic()
        budget.hold(50, "another video", wait_s=5.0)
        got.append(time.monotonic() - start)

    thread = threading.Thread(target=second)
    thread.start()
    time.sleep(0.1)
    assert budget.in_use == 80 and not got  # still waiting for room
    first()
    first()  # giving back twice gives back once
    thread.join(5)
    assert got and budget.in_use == 50


def test_a_decoding_thread_that_finds_no_room_gets_server_busy() -> None:
    budget = MemoryBudget(100, retry_after_s=3.0)
    budget.hold(80, "one video")
    with pytest.raises(ServerBusy) as info:
        budget.hold(50, "another video", wait_s=0.05)
    assert info.value.retry_after == 3.0 and budget.in_use == 80
