"""A clip's frames, decoded by OpenCV's FFmpeg with the display rotation applied, by range and sampling."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np


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

    @classmethod
    def from_options(
        cls, source_fps: float, every: int | None = None, fps: float | None = None, max_frames: int | None = None
    ) -> Sampling:
        """``--every K`` as is; ``--fps F`` as every ``round(source_fps / F)``-th frame (at least 1)."""
        raise NotImplementedError

    def indices(self, frames: int) -> range:
        """The processed frame indices of a clip of ``frames`` frames."""
        raise NotImplementedError

    def output_fps(self, source_fps: float) -> float:
        """The overlay's frame rate: the source's divided by ``every`` (the same duration)."""
        raise NotImplementedError


def read_frames(source: str | Path, start: int = 0, stop: int | None = None, every: int = 1) -> Iterator[Frame]:
    """Frames ``start, start + every, ...`` below ``stop`` (None: to the end). Indices are exact: frames before
    ``start`` are skipped by decoding (no seek by position, which can be off on variable-frame-rate clips).
    Raises ``FrameSizeChanged`` when a frame's size differs from the first's."""
    raise NotImplementedError
