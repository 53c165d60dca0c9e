"""glibc allocator tuning: process-wide, so it lives beside the settings rather than in the model."""

from __future__ import annotations

import ctypes
import ctypes.util

_MALLOC_TUNED = False


def tune_allocator(mmap_threshold: int = 256 << 20, trim_threshold: int = 1024 << 20) -> bool:
    """Keep freed activation buffers in the process instead of returning them to the kernel (glibc only).

    glibc serves every allocation above 32 MB with a fresh ``mmap`` and gives it back on ``free`` (and trims
    the heap above 128 kB), so each inference pages in 1-1.5 GB of new zeroed memory: ~360k page faults,
    ~1 s of system time per image at the default size on 2 vCPUs. With these thresholds the activation
    buffers are reused from the heap: the same numbers, ~1.25x faster end to end, for ~200 MB more peak
    resident memory (1.9 GB instead of 1.7 GB). Process-wide and idempotent.
    """
    global _MALLOC_TUNED
    if _MALLOC_TUNED:
        return True
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to tune
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
    _MALLOC_TUNED = bool(mallopt(m_mmap_threshold, mmap_threshold) and mallopt(m_trim_threshold, trim_threshold))
    return _MALLOC_TUNED
