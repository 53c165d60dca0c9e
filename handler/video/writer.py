"""The overlay video: RGB frames encoded as WebM (VP8) by OpenCV's FFmpeg, a codec browsers play."""

from __future__ import annotations

from pathlib import Path
from types import TracebackType

import numpy as np

OVERLAY_SUFFIX = ".webm"


class OverlayWriter:
    """``with OverlayWriter(path, fps, width, height) as out: out.write(rgb)``; every frame must be
    ``width`` x ``height``. ``path`` should end in ``.webm``."""

    def __init__(self, path: Path, fps: float, width: int, height: int) -> None:
        self.path = path
        self.fps = fps
        self.width = width
        self.height = height
        self.frames = 0

    def write(self, rgb: np.ndarray) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> OverlayWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()
