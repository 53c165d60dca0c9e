"""The overlay video: RGB frames encoded as WebM (VP8) by OpenCV's FFmpeg, a codec browsers play.

OpenCV's FFmpeg has no H.264 encoder (x264 is GPL, left out of its wheels); it has libvpx, and VP8 in WebM
plays in Chromium, Firefox and Safari. VP9 encodes slower here for no gain an overlay needs
(docs/video.md#codecs).
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType

import cv2
import numpy as np

OVERLAY_SUFFIX = ".webm"
FOURCC = "VP80"


class OverlayWriter:
    """``with OverlayWriter(path, fps, width, height) as out: out.write(rgb)``; every frame must be
    ``width`` x ``height``. ``path`` should end in ``.webm``."""

    def __init__(self, path: Path, fps: float, width: int, height: int) -> None:
        self.path = path
        self.fps = fps
        self.width = width
        self.height = height
        self.frames = 0
        self._writer = cv2.VideoWriter(str(path), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*FOURCC), fps, (width, height))
        if not self._writer.isOpened():
            self._writer.release()
            raise RuntimeError(f"OpenCV's FFmpeg cannot write {FOURCC} to {path}")

    def write(self, rgb: np.ndarray) -> None:
        if rgb.shape[:2] != (self.height, self.width):
            raise ValueError(f"a {rgb.shape[1]}x{rgb.shape[0]} frame in a {self.width}x{self.height} video")
        self._writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        self.frames += 1

    def close(self) -> None:
        self._writer.release()

    def __enter__(self) -> OverlayWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()
