"""glibc allocator tuning: process-wide, so it lives beside the settings rather than in the model.

``handler/__init__.py`` applies it when the package is first imported, before any thread starts: every entry
point (``python -m handler``, ``awslambdaric`` loading ``handler.lambda_function``, uvicorn loading
``handler.api:app``) imports the package first. The image also sets ``MALLOC_ARENA_MAX=1``, which glibc reads
at start-up, so the one-arena rule holds even before Python runs.
"""

from __future__ import annotations

import ctypes
import ctypes.util

# <malloc.h>
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8

_MALLOC_TUNED = False


def _libc() -> ctypes.CDLL | None:
    for name in ("libc.so.6", ctypes.util.find_library("c")):
        if name:
            try:
                return ctypes.CDLL(name)
            except OSError:
                continue
    return None


def tune_allocator(mmap_threshold: int = 256 << 20, trim_threshold: int = 1024 << 20) -> bool:
    """Keep freed activation buffers in the process, for every thread (glibc only; idempotent).

    glibc serves every allocation above its mmap threshold with a fresh ``mmap`` and gives it back on
    ``free`` (and trims the heap above 128 kB), so each inference would page in its activations again as new
    zeroed memory. Raised thresholds keep them in the heap for the next image, but only in the main arena:
    a thread's own arena grows in heaps of at most 64 MB, so any larger buffer there is mmapped and unmapped
    per call whatever the threshold. The model runs on its own thread (``handler.model.torch_thread``) and
    the per-object work on a pool, so the process gets one arena (``M_ARENA_MAX=1``): every thread allocates
    from the tuned main arena. Set before the second arena exists, glibc never creates one; threads that
    already have their own arena keep it, hence tuning at import. Figures: docs/performance.md.
    """
    global _MALLOC_TUNED
    if _MALLOC_TUNED:
        return True
    libc = _libc()
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None:  # not glibc (musl, macOS): nothing to tune
        return False
    settings = ((M_ARENA_MAX, 1), (M_MMAP_THRESHOLD, mmap_threshold), (M_TRIM_THRESHOLD, trim_threshold))
    _MALLOC_TUNED = all(mallopt(option, value) == 1 for option, value in settings)
    return _MALLOC_TUNED
