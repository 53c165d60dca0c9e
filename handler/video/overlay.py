"""The overlay of one frame, drawn from the decoded frame and its JSON line: each object's mask, outline,
box and label in its track's colour (stable across frames, so nothing flickers)."""

from __future__ import annotations

from typing import Any

import numpy as np


def track_colour(track_id: int) -> tuple[int, int, int]:
    """A stable, saturated RGB colour per track id."""
    raise NotImplementedError


def draw_frame(rgb: np.ndarray, line: dict[str, Any]) -> np.ndarray:
    """A new RGB array: ``rgb`` with ``line``'s objects drawn (masks decoded one at a time; ``rgb`` untouched)."""
    raise NotImplementedError
