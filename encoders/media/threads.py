"""How many CPUs this process may use, and how a preprocessing thread runs torch.

Why: ``os.cpu_count()`` is the host's count. In a container the process may
be limited by a CFS quota (``cpu.max``) or a CPU affinity mask, and a pool
sized to the host's 64 cores on a 2-CPU pod only adds contention. The
preprocessing pool is sized to ``usable_cpus()``.

Each preprocessing thread works on one item and the pool supplies the
parallelism across items, so its torch ops run single-threaded
(``single_threaded_torch``): with OpenMP teams in every pool thread, two busy
cores spent most of their time spinning at barriers (the audio features of one
10 s clip took 900 ms instead of 45 ms beside other work on a 2-core machine).
No output depends on the thread count (tests/unit/encoders/media/test_media_threads.py).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def usable_cpus(cgroup_root: Path = CGROUP_ROOT, proc_cgroup: Path | None = None) -> int:
    """CPUs this process may use: its affinity mask, capped by any cgroup CPU quota
    on its cgroup or an ancestor (v2 ``cpu.max``, v1 ``cpu.cfs_quota_us``); at least 1."""
    try:
        count = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        count = os.cpu_count() or 1
    quota = _cgroup_quota(cgroup_root, proc_cgroup or Path("/proc/self/cgroup"))
    if quota is not None:
        count = min(count, max(1, math.ceil(quota)))
    return max(1, count)


def _cgroup_quota(root: Path, proc_cgroup: Path) -> float | None:
    """The smallest CPU quota (in CPUs) on this process's cgroup path, or None."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None
    quotas: list[float] = []
    for line in lines:
        _, controllers, path = ([*line.split(":", 2), "", ""])[:3]
        if controllers == "":  # cgroup v2: "0::/path"
            quotas += _walk(root, path, _v2_quota)
        elif "cpu" in controllers.split(","):  # cgroup v1: "4:cpu,cpuacct:/path"
            mount = next((root / n for n in ("cpu", "cpu,cpuacct") if (root / n).is_dir()), None)
            if mount is not None:
                quotas += _walk(mount, path, _v1_quota)
    return min(quotas) if quotas else None


def _walk(mount: Path, path: str, read: Callable[[Path], float | None]) -> list[float]:
    """Quotas from the cgroup directory of ``path`` up to the mount's root."""
    found = []
    parts = [p for p in path.strip("/").split("/") if p]
    for depth in range(len(parts), -1, -1):
        quota = read(mount.joinpath(*parts[:depth]))
        if quota is not None:
            found.append(quota)
    return found


def _v2_quota(directory: Path) -> float | None:
    try:
        quota, period = (directory / "cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        return None
    return None if quota == "max" else int(quota) / int(period)


def _v1_quota(directory: Path) -> float | None:
    try:
        quota = int((directory / "cpu.cfs_quota_us").read_text())
        period = int((directory / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return None if quota <= 0 or period <= 0 else quota / period


def single_threaded_torch() -> None:
    """Thread initializer for the preprocessing pool: this thread's torch ops use one
    intra-op thread. (torch also makes 1 the default for threads created later; the
    encoder's forward thread sets its own count explicitly, see micro_batcher.)"""
    import torch

    torch.set_num_threads(1)
