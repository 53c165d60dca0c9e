"""A clip's frames, decoded by OpenCV's FFmpeg with the display rotation applied, by range and sampling."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from handler.core.errors import FrameSizeChanged, InvalidRequest
from handler.video.probe import open_capture


@dataclass(frozen=True)
class Frame:
    index: int  # in the container, counted from 0
    time_ms: float  # presentation time from the container
    rgb: np.ndarray  # (H, W, 3) uint8, displayed orientation


@dataclass(frozen=True)
class Sampling:
    """Which frames are processed: every ``every``-th frame from 0, at most ``max_frames`` of them."""

    every: int = 1
    max_frames: int | None = None

    def __post_init__(self) -> None:
        if self.every < 1:
            raise InvalidRequest(f"every must be 1 or more, not {self.every}")
        if self.max_frames is not None and self.max_frames < 1:
            raise InvalidRequest(f"max_frames must be 1 or more, not {self.max_frames}")

    @classmethod
    def from_options(
        cls, source_fps: float, every: int | None = None, fps: float | None = None, max_frames: int | None = None
    ) -> Sampling:
        """``--every K`` as is; ``--fps F`` as every ``round(source_fps / F)``-th frame (at least 1)."""
        if every is not None and fps is not None:
            raise InvalidRequest("give every or fps, not both")
        if fps is not None:
            if not fps > 0:
                raise InvalidRequest(f"fps must be above 0, not {fps}")
            every = max(1, round(source_fps / fps))
        return cls(every or 1, max_frames)

    def indices(self, frames: int) -> range:
        """The processed frame indices of a clip of ``frames`` frames."""
        chosen = range(0, max(frames, 0), self.every)
        return chosen if self.max_frames is None else chosen[: self.max_frames]

    def output_fps(self, source_fps: float) -> float:
        """The overlay's frame rate: the source's divided by ``every`` (the same duration)."""
        return source_fps / self.every


def read_frames(source: str | Path, start: int = 0, stop: int | None = None, every: int = 1) -> Iterator[Frame]:
    """Frames ``start, start + every, ...`` below ``stop`` (None: to the end). Indices are exact: frames before
    ``start`` are skipped by decoding (no seek by position, which can be off on variable-frame-rate clips).
    Raises ``FrameSizeChanged`` when a frame's size differs from the first's."""
    if start < 0 or every < 1:
        raise InvalidRequest(f"frame range start {start} / every {every}: start must be >= 0 and every >= 1")
    capture = open_capture(source)
    size: tuple[int, ...] | None = None
    try:
        index = 0
        while stop is None or index < stop:
            if not capture.grab():
                return
            if index >= start and (index - start) % every == 0:
                time_ms = float(capture.get(cv2.CAP_PROP_POS_MSEC))
                ok, bgr = capture.retrieve()
                if not ok or bgr is None:
                    return
                size = _checked_size(size, bgr.shape, index)
                yield Frame(index, time_ms, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            index += 1
    finally:
        capture.release()


def _checked_size(size: tuple[int, ...] | None, shape: tuple[int, ...], index: int) -> tuple[int, ...]:
    """The clip's frame shape (the first frame's); ``FrameSizeChanged`` for frame ``index`` of another shape."""
    if size is not None and shape != size:
        raise FrameSizeChanged(
            f"frame {index} is {shape[1]}x{shape[0]}, the first was {size[1]}x{size[0]}: videos whose frames change "
            "size are refused (one overlay video has one frame size)"
        )
    return size or tuple(shape)
