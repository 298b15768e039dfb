"""What a running process costs, read from /proc: resident memory (VmRSS), its peak
(VmHWM), open file descriptors, and the same over its children (vLLM's engine core)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

KIB = 1024


def proc_status_kib(pid: int, key: str) -> int:
    """A `/proc/<pid>/status` field in KiB (VmRSS, VmHWM); 0 if the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return 0
    return 0


def rss_bytes(pid: int) -> int:
    return proc_status_kib(pid, "VmRSS") * KIB


def peak_rss_bytes(pid: int) -> int:
    return proc_status_kib(pid, "VmHWM") * KIB


def fd_count(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def children(pid: int) -> list[int]:
    """Direct and indirect child pids (vLLM's engine core runs in a child)."""
    found: list[int] = []
    stack = [pid]
    while stack and len(found) < 256:
        parent = stack.pop()
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except OSError:
            continue
        for tid in tasks:
            with contextlib.suppress(OSError, ValueError):
                text = Path(f"/proc/{parent}/task/{tid}/children").read_text()
                kids = [int(x) for x in text.split()]
                found.extend(kids)
                stack.extend(kids)
    return found


def tree_rss_bytes(pid: int) -> int:
    return sum(rss_bytes(p) for p in [pid, *children(pid)])
