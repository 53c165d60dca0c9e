"""Refuse work that cannot finish before the Lambda invocation's deadline.

Lambda kills an invocation that runs out of time mid-way: the client gets a bare 502/timeout and, for S3,
the whole event is retried. Checking the remaining time first turns that into a clear 503 (HTTP) or a
reported, retried record (S3), before the model starts.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Protocol

from handler.errors import OutOfTime
from handler.settings import DetectionSpeed

# Before any image has been timed: measured per-image times on 2 vCPUs (docs/performance.md), rounded up.
FIRST_ESTIMATE_MS: dict[str, float] = {"normal": 3500.0, "fast": 1200.0, "rapid": 700.0}


class LambdaContext(Protocol):
    def get_remaining_time_in_millis(self) -> int: ...


class TimeBudget:
    """Estimates one image's processing time from recent ones; checks it against the time left."""

    def __init__(self, margin_ms: float = 1500.0, window: int = 20) -> None:
        self.margin_ms = margin_ms
        self._recent: deque[float] = deque(maxlen=window)
        self._lock = threading.Lock()

    def record(self, elapsed_ms: float) -> None:
        with self._lock:
            self._recent.append(elapsed_ms)

    def estimate_ms(self, speed: DetectionSpeed) -> float:
        with self._lock:
            # The slowest recent image, not the mean: a request cut off half-way is the failure to avoid.
            return max(self._recent) if self._recent else FIRST_ESTIMATE_MS[speed]

    def ensure_time_for_one(self, context: LambdaContext | None, speed: DetectionSpeed) -> None:
        if context is None or not hasattr(context, "get_remaining_time_in_millis"):
            return  # not running in Lambda (local server, CLI): no deadline
        remaining = context.get_remaining_time_in_millis()
        needed = self.estimate_ms(speed) + self.margin_ms
        if remaining < needed:
            raise OutOfTime(
                f"not enough time left in this invocation: {remaining} ms remain, about {needed:.0f} ms are "
                "needed for one image; retry, or raise the function timeout"
            )


time_budget = TimeBudget()
