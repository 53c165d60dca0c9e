"""One processed frame as one JSON line: its index and time, the image result's fields, its track ids."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from handler.engine import Segmentation, Segmenter, SegmentOptions


def segment_frame(rgb: np.ndarray, segmenter: Segmenter, options: SegmentOptions = SegmentOptions()) -> Segmentation:
    """The same engine path as an image (``handler.engine.segment_rgb``), RLE masks made."""
    raise NotImplementedError


def frame_line(index: int, time_ms: float, result: Segmentation, track_ids: Sequence[int]) -> dict[str, Any]:
    """``{"frame", "time_ms", <the image result's fields>, "track_ids"}``."""
    raise NotImplementedError
