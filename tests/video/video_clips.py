"""Clips for the video tests: the copied sample clips, and clips made here with ``cv2.VideoWriter``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

VIDEOS = Path(__file__).resolve().parent.parent / "videos"
IMAGES = Path(__file__).resolve().parent.parent / "images"
H264 = VIDEOS / "coffee-h264-30fps.mp4"
HEVC_ROTATED = VIDEOS / "chelsea-hevc-rot90.mov"
VFR = VIDEOS / "coffee-h264-vfr.mp4"
TRUNCATED = VIDEOS / "coffee-h264-truncated.mp4"


def write_clip(path: Path, frames: Sequence[np.ndarray], fps: float = 10.0, fourcc: str = "MJPG") -> Path:
    """RGB ``frames`` (all one size) as a clip (MJPG in AVI by default: every frame a key frame)."""
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*fourcc), fps, (width, height))
    assert writer.isOpened(), f"OpenCV cannot write {fourcc} to {path}"
    for rgb in frames:
        writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def panned_photo(count: int, width: int = 160, height: int = 120, step: int = 6) -> list[np.ndarray]:
    """``count`` frames of the coffee photo, each moved ``step`` pixels on (a pan, as a phone makes)."""
    photo = cv2.cvtColor(cv2.imread(str(IMAGES / "coffee.png")), cv2.COLOR_BGR2RGB)
    photo = cv2.resize(photo, (width + step * count, height + step * count // 2), interpolation=cv2.INTER_AREA)
    return [
        np.ascontiguousarray(photo[i * step // 2 : i * step // 2 + height, i * step : i * step + width])
        for i in range(count)
    ]
