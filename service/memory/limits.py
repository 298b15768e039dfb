"""How much memory the process may use: the container's limit (cgroup v2 or v1),
else the machine's, and from it the default budget for request data."""

from __future__ import annotations

import os
from pathlib import Path

_CGROUP_V2 = Path("/sys/fs/cgroup/memory.max")
_CGROUP_V1 = Path("/sys/fs/cgroup/memory/memory.limit_in_bytes")
# v1 reports "no limit" as a huge page-aligned number rather than "max".
_UNLIMITED_V1 = 1 << 60
# Request data may use this share of what the process has left once loaded: the
# rest is headroom for the interpreter, the allocator's slack and short-lived copies.
BUDGET_SHARE = 0.5
MIN_BUDGET_BYTES = 32 * 2**20


def container_limit_bytes(root: Path = Path("/")) -> int | None:
    """The cgroup memory limit, or None when there is none."""
    for path in (_CGROUP_V2, _CGROUP_V1):
        try:
            text = (root / path.relative_to("/")).read_text().strip()
        except (OSError, ValueError):
            continue
        if text == "max":
            return None
        limit = int(text)
        return None if limit >= _UNLIMITED_V1 else limit
    return None


def machine_memory_bytes() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def resident_bytes() -> int:
    """This process's resident set now."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def auto_budget_bytes(limit_bytes: int | None = None, resident: int | None = None) -> int:
    """`BUDGET_SHARE` of what is left under the limit after what the process holds."""
    limit = limit_bytes or container_limit_bytes() or machine_memory_bytes()
    held = resident_bytes() if resident is None else resident
    return max(MIN_BUDGET_BYTES, int((limit - held) * BUDGET_SHARE))
