"""Refuse work that cannot finish before the Lambda invocation's deadline.

Lambda kills an invocation that runs out of time mid-way: the client gets a bare 502/timeout and, for S3,
the whole event is retried. Checking the remaining time first turns that into a clear 503 (HTTP) or a
reported, retried record (S3), before the model starts.

The estimate knows the image: a cost model on the reference machine (2 vCPUs, as Lambda at its default
MemorySize) of a per-speed forward pass, the worst-case per-object cost of the mask head (for as many objects
as the model may return) and a per-megapixel cost (decode, resize, and the masks' paste, encoding and drawing
for boxes of ordinary sizes). The boxes are known only after the model: before each object's mask, its box's
size is checked against the time left as well, so a model whose boxes all cover the image ends with a clear
error instead of Lambda's kill. Images this process has timed scale it up when they ran slower than the model
predicts (a loaded or smaller machine), never down: one fast small image says nothing about a large one. The
costs are the "deadline" section of ``handler/core/measured.json`` (with the bench, machine, instruction set
and date that measured them; docs/performance.md explains them).
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Protocol

from handler.core.errors import OutOfTime
from handler.core.measured import measured
from handler.core.settings import DetectionSpeed

# The reference machine's measured costs.
_MEASURED = measured("deadline")
FORWARD_MS: dict[str, float] = {speed: float(ms) for speed, ms in _MEASURED["forward_ms"].items()}
PER_OBJECT_MS = float(_MEASURED["per_object_ms"])
PER_MEGAPIXEL_MS = float(_MEASURED["per_megapixel_ms"])
PER_OBJECT_MEGAPIXEL_MS = float(_MEASURED["per_object_megapixel_ms"])  # one object's paste, encoding, drawing
MAX_OBJECTS = 100  # the model's detections per image (detectron2's TEST.DETECTIONS_PER_IMAGE)


class LambdaContext(Protocol):
    def get_remaining_time_in_millis(self) -> int: ...


def reference_ms(speed: DetectionSpeed, megapixels: float, objects: int = MAX_OBJECTS) -> float:
    """One image's cost on the reference machine: forward at ``speed``, ``objects`` objects, its pixels."""
    return FORWARD_MS[speed] + PER_OBJECT_MS * objects + PER_MEGAPIXEL_MS * megapixels


class TimeBudget:
    """Estimates one image's processing time from its size and speed; checks it against the time left."""

    def __init__(self, margin_ms: float = 1500.0, window: int = 20) -> None:
        self.margin_ms = margin_ms
        self._slowdowns: deque[float] = deque(maxlen=window)
        self._lock = threading.Lock()

    def record(self, elapsed_ms: float, speed: DetectionSpeed, megapixels: float, objects: int) -> None:
        """An image this process segmented: how much slower than the reference it ran."""
        with self._lock:
            self._slowdowns.append(elapsed_ms / reference_ms(speed, megapixels, objects))

    def reset(self) -> None:
        """Forget the timings (after a SnapStart restore: they were measured before the snapshot)."""
        with self._lock:
            self._slowdowns.clear()

    def slowdown(self) -> float:
        with self._lock:
            # The slowest recent image, not the mean: a request cut off half-way is the failure to avoid.
            return max(1.0, *self._slowdowns) if self._slowdowns else 1.0

    def estimate_ms(self, speed: DetectionSpeed, megapixels: float) -> float:
        """The worst case for an image of this size at this speed: as many objects as the model returns."""
        return self.slowdown() * reference_ms(speed, megapixels)

    def ensure_time_for_one(self, context: LambdaContext | None, speed: DetectionSpeed, megapixels: float) -> None:
        if context is None or not hasattr(context, "get_remaining_time_in_millis"):
            return  # not running in Lambda (local server, CLI): no deadline
        remaining = context.get_remaining_time_in_millis()
        needed = self.estimate_ms(speed, megapixels) + self.margin_ms
        if remaining < needed:
            raise OutOfTime(
                f"not enough time left in this invocation: {remaining} ms remain, up to {needed:.0f} ms may be "
                f"needed for this image ({megapixels:.1f} MP at {speed} speed); retry, raise the function "
                "timeout, or send a smaller image"
            )

    def ensure_time_for_object(
        self,
        context: LambdaContext | None,
        box_megapixels: float,
        done: int,
        total: int,
        observed_ms_per_megapixel: float = 0.0,
    ) -> None:
        """Before each object's mask: the up-front estimate cannot know the boxes (a model can make every box
        as large as the image), so the masks stop with a clear error while there is still time to answer.
        The cost per box megapixel is the reference's (scaled by the slowdown) or, when slower, what this
        request's objects took so far."""
        if context is None or not hasattr(context, "get_remaining_time_in_millis"):
            return
        remaining = context.get_remaining_time_in_millis()
        per_megapixel = max(self.slowdown() * PER_OBJECT_MEGAPIXEL_MS, observed_ms_per_megapixel)
        needed = per_megapixel * box_megapixels + self.margin_ms
        if remaining < needed:
            raise OutOfTime(
                f"not enough time left in this invocation to finish the masks: {remaining} ms remain after "
                f"{done} of {total} objects (the next box is {box_megapixels:.1f} MP); retry with masks=none, "
                "a higher confidence or fewer classes, raise the function timeout, or send a smaller image"
            )


time_budget = TimeBudget()
