"""glibc malloc settings, and the trim that returns freed request buffers to the system.

glibc serves an allocation above its mmap threshold (128 KiB at start) with its
own mapping, unmapped on free. But the threshold is dynamic: each freed mapped
block raises it to that block's size (up to 32 MiB), so after the first large
body, buffers of a few MiB come from the heap arenas, and a burst of them leaves
the process holding gigabytes it no longer uses. Fixing the threshold keeps
large buffers mapped (returned at free); capping the arenas keeps threads from
spreading the rest over many heaps. The small pieces a body arrives in still
come from the heaps, and leave free holes there; `trim` hands those pages back
after a burst. Elsewhere than glibc this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

_log = logging.getLogger(__name__)

# mallopt parameter numbers from glibc's <malloc.h>.
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8


def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


def tune_allocator(mmap_threshold_bytes: int, arena_max: int) -> bool:
    """Apply the settings (0 leaves one at glibc's default); False when not glibc."""
    libc = _libc()
    if libc is None:
        return False
    mallopt = libc.mallopt
    applied = True
    if mmap_threshold_bytes > 0:
        applied &= mallopt(_M_MMAP_THRESHOLD, mmap_threshold_bytes) == 1
    if arena_max > 0:
        applied &= mallopt(_M_ARENA_MAX, arena_max) == 1
    if not applied:
        _log.warning("malloc settings were refused (mmap threshold %d)", mmap_threshold_bytes)
    return applied


def trim() -> None:
    """Return the free pages of every heap to the system (glibc's `malloc_trim(0)`)."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
