"""bench/cpu.py: the CPU split of a process tree by role."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from bench.cpu import cores_used, process_tree_cpu

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc")

BUSY = "import time\nend = time.process_time() + 0.6\nwhile time.process_time() < end: pass\n"


def test_a_busy_child_counts_under_its_parent_tree() -> None:
    before = process_tree_cpu(os.getpid())
    assert set(before) == {"frontend", "engine_core", "model_runner", "other"}
    child = subprocess.Popen([sys.executable, "-c", BUSY + "time.sleep(30)"])
    try:
        deadline = time.monotonic() + 30
        while process_tree_cpu(os.getpid())["other"] - before["other"] < 0.5:
            assert time.monotonic() < deadline, "the child's CPU never showed up"
            time.sleep(0.05)
    finally:
        child.kill()
        child.wait()


def test_an_unknown_pid_has_an_empty_split() -> None:
    split = process_tree_cpu(2**22 + 12345)  # above pid_max's default
    assert split == {"frontend": 0.0, "engine_core": 0.0, "model_runner": 0.0, "other": 0.0}


def test_cores_used_divides_by_the_wall_time() -> None:
    assert cores_used({"frontend": 1.0}, {"frontend": 3.0}, 4.0) == {"frontend": 0.5}
