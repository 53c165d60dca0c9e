"""Lambda SnapStart: prime the model before the snapshot, renew what must not be shared after each restore.

``awslambdaric`` drives the lifecycle when ``AWS_LAMBDA_INITIALIZATION_TYPE=snap-start``: after the init (the
import of ``handler.lambda_function``) it runs the before-snapshot hooks, calls ``GET /runtime/restore/next``
(Lambda snapshots the environment there) and, once that call returns in a restored copy, runs the
after-restore hooks; an exception in either is posted to ``/runtime/init/error`` or ``/runtime/restore/error``
by the client. ``register`` adds the hooks only in that mode: an on-demand init is unchanged.

Before the snapshot: one full inference of a synthetic photo at every detection speed the function uses
(weights paged in, oneDNN kernels built, allocator arenas grown), then each side's own warm-up (``prime``),
then the garbage collector settled (``settle``).
After a restore (AWS's "Handling uniqueness with Lambda SnapStart"; what is renewed and why: docs/operations.md):
boto3's default session and every cached client (``storage.renew_clients``), the generators seeded in
user space (``random``, numpy, torch) from ``os.urandom``, the per-image time budget, and the metrics'
``Restores`` in place of ``ColdStart``. Job ids come from ``secrets`` (the OS's CSPRNG): nothing to renew.
"""

from __future__ import annotations

import gc
import io
import os
import random
import time
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from handler.core import metrics, storage
from handler.core.deadline import time_budget
from handler.core.logs import logger
from handler.core.settings import DetectionSpeed, get_settings

INIT_TYPE = "AWS_LAMBDA_INITIALIZATION_TYPE"
SNAP_START = "snap-start"
# Side length of the priming photo: larger than every speed's model input (800 px), so each resize path runs.
PRIME_SIDE = 1024


def enabled() -> bool:
    return os.environ.get(INIT_TYPE) == SNAP_START


def hooked(phase: str, hook: Callable[[], Any]) -> Callable[[], None]:
    """Logs the hook's duration, or its failure as a structured error before re-raising it (the runtime
    client then reports it through the Runtime API and the environment is discarded)."""

    def run() -> None:
        started = time.perf_counter()
        try:
            details = hook() or {}
        except Exception:
            logger.exception("snapstart hook failed", extra={"phase": phase, "hook": hook.__name__})
            raise
        elapsed_ms = round((time.perf_counter() - started) * 1000, 1)
        logger.info("snapstart hook done", extra={"phase": phase, "hook": hook.__name__, "ms": elapsed_ms, **details})

    run.__name__ = f"{phase}_{hook.__name__}"
    return run


def priming_speeds() -> tuple[DetectionSpeed, ...]:
    """The speeds this function runs the model at: its configured one (requests cannot choose another)."""
    return (get_settings().detection_speed,)


def synthetic_jpeg(side: int = PRIME_SIDE) -> bytes:
    """A photo-like JPEG (smooth gradients, some texture): decoded, resized and run like an upload."""
    from PIL import Image

    y, x = np.mgrid[0:side, 0:side].astype(np.float32) / side
    texture = np.random.default_rng(0).integers(0, 32, (side, side, 3))
    rgb = np.stack([x * 200, y * 200, (1 - x) * 150], axis=-1) + texture
    buffer = io.BytesIO()
    Image.fromarray(rgb.clip(0, 255).astype(np.uint8)).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def prime_model() -> dict[str, Any]:
    """The whole engine path at each speed, confidence 0 so that the mask and point heads run too (a
    synthetic photo rarely holds a confident object, and those heads only run on detections)."""
    from handler.engine import Outputs, RequestOptions, get_segmenter, segment_bytes

    segmenter, settings, image = get_segmenter(), get_settings(), synthetic_jpeg()
    outputs = Outputs(masks="rle", overlay=True, overlay_max_side=settings.overlay_max_side)
    timings: dict[str, float] = {}
    for speed in priming_speeds():
        started = time.perf_counter()
        segment_bytes(
            image, segmenter, settings, RequestOptions(confidence=0.0), outputs=outputs, detection_speed=speed
        )
        timings[speed] = round((time.perf_counter() - started) * 1000, 1)
    return {"prime_ms": timings}


def settle() -> dict[str, Any]:
    """Last before the snapshot: collect the init's garbage and freeze what survives (``gc.freeze``), so the
    snapshot carries no garbage and no request pays a full collection over the model and the modules."""
    collected = gc.collect()
    gc.freeze()
    return {"collected": collected, "frozen": gc.get_freeze_count()}


def reseed_generators() -> None:
    """Seeds drawn from the OS after the restore: each restored copy gets its own streams."""
    import torch

    random.seed(os.urandom(32))
    np.random.seed(int.from_bytes(os.urandom(4), "little"))
    torch.manual_seed(int.from_bytes(os.urandom(8), "little") & ((1 << 63) - 1))


def renew() -> dict[str, Any]:
    """After a restore: nothing made before the snapshot that must be unique, fresh or local is reused."""
    clients = storage.renew_clients()
    reseed_generators()
    time_budget.reset()  # timings from the snapshot's machine (and its first, slowest runs) are not this one's
    metrics.mark_restored()
    return {
        "renewed": ["boto3 session and clients", "random/numpy/torch seeds", "time budget", "cold-start flag"],
        **clients,
    }


def register(sources: Iterable[Any]) -> bool:
    """Registers the hooks when this environment will be snapshotted; ``sources`` may each offer ``prime()``."""
    if not enabled():
        return False
    from snapshot_restore_py import register_after_restore, register_before_snapshot

    primers = [prime_model, *(source.prime for source in sources if hasattr(source, "prime")), settle]
    # Before-snapshot hooks run in reverse order of registration: the model first, settle last.
    for primer in reversed(primers):
        register_before_snapshot(hooked("before_snapshot", primer))
    register_after_restore(hooked("after_restore", renew))
    return True
