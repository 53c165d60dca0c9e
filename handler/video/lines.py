"""One processed frame as one JSON line: its index and time, the image result's fields, its track ids."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from handler.core.settings import DetectionSpeed
from handler.engine import Outputs, RequestOptions, Segmentation, Segmenter, segment_rgb

FRAME_OUTPUTS = Outputs(masks="rle")  # tracks and the overlay are made from the lines' RLE masks


def segment_frame(
    rgb: np.ndarray,
    segmenter: Segmenter,
    options: RequestOptions = RequestOptions(),
    detection_speed: DetectionSpeed | None = None,
) -> Segmentation:
    """The same engine path as an image (``handler.engine.segment_rgb``), RLE masks made."""
    return segment_rgb(rgb, segmenter, options.confidence, options.class_list, detection_speed, outputs=FRAME_OUTPUTS)


def frame_line(index: int, time_ms: float, result: Segmentation, track_ids: Sequence[int]) -> dict[str, Any]:
    """``{"frame", "time_ms", <the image result's fields>, "track_ids"}``."""
    if len(track_ids) != len(result):
        raise ValueError(f"{len(track_ids)} track ids for {len(result)} objects")
    return {
        "frame": int(index),
        "time_ms": round(float(time_ms), 3),
        **result.to_json(),
        "track_ids": [int(track) for track in track_ids],
    }
