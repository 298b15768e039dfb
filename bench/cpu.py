"""Where the machine's CPU goes during a load level.

On the 2-core development machine the service's own Python (HTTP, SSE, JSON),
vLLM's engine-core process, its model-runner process (an OpenMP team of two
threads) and the load generator all share the cores. `process_tree_cpu` splits
the CPU seconds of a server's process tree by role, read from /proc (Linux; an
empty split elsewhere).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path

_PROC = Path("/proc")
# vLLM names its processes (setproctitle); everything else in the tree is the
# server's own process (or a helper such as multiprocessing's resource tracker).
_ROLES = {"VLLM::EngineCor": "engine_core", "VLLM::Worker": "model_runner"}


def _stat(pid: int) -> tuple[str, int, float] | None:
    """(comm, parent pid, CPU seconds of all its threads), or None when gone."""
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    comm = text[text.index("(") + 1 : text.rindex(")")]
    fields = text[text.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])
    return comm, int(fields[1]), (utime + stime) / os.sysconf("SC_CLK_TCK")


def process_tree_cpu(root_pid: int) -> dict[str, float]:
    """CPU seconds used so far by `root_pid` and its descendants, by role:
    frontend (the root), engine_core, model_runner, other."""
    if not _PROC.is_dir():
        return {}
    stats = {}
    for entry in _PROC.iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) is not None:
            stats[int(entry.name)] = stat
    children: dict[int, list[int]] = {}
    for pid, (_, parent, _) in stats.items():
        children.setdefault(parent, []).append(pid)
    split = {"frontend": 0.0, "engine_core": 0.0, "model_runner": 0.0, "other": 0.0}
    stack = [root_pid]
    while stack:
        pid = stack.pop()
        if pid not in stats:
            continue
        comm, _, seconds = stats[pid]
        role = "frontend" if pid == root_pid else _ROLES.get(comm, "other")
        split[role] += seconds
        stack.extend(children.get(pid, []))
    return split


def cores_used(
    before: dict[str, float], after: dict[str, float], wall_s: float
) -> dict[str, float]:
    """Average cores each role kept busy between two `process_tree_cpu` readings."""
    return {role: (after[role] - before.get(role, 0.0)) / wall_s for role in after}


class CpuTimeline:
    """Samples the CPU seconds of process trees in a thread, so that the CPU of a
    window known only afterwards (a child's run, timed by the child) can be read."""

    def __init__(self, root_pids: Sequence[int], interval_s: float = 0.2) -> None:
        self.root_pids = list(root_pids)
        self.interval_s = interval_s
        self.samples: list[tuple[float, float]] = []  # (time.time(), CPU seconds)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _read(self) -> float:
        return sum(sum(process_tree_cpu(pid).values()) for pid in self.root_pids)

    def _sample(self) -> None:
        while True:
            self.samples.append((time.time(), self._read()))
            if self._stop.wait(self.interval_s):
                return

    def __enter__(self) -> CpuTimeline:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def at(self, when: float) -> float:
        """CPU seconds at `when`, interpolated between the samples around it."""
        earlier = [s for s in self.samples if s[0] <= when] or self.samples[:1]
        later = [s for s in self.samples if s[0] >= when] or self.samples[-1:]
        (t0, c0), (t1, c1) = earlier[-1], later[0]
        return c0 if t1 == t0 else c0 + (c1 - c0) * (when - t0) / (t1 - t0)

    def cores(self, start: float, end: float) -> float:
        """Average cores the trees kept busy between `start` and `end`."""
        return (self.at(end) - self.at(start)) / (end - start)
