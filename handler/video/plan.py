"""A distributed run's chunk plan: how many frames a chunk holds, and the frame ranges of the chunks.

A chunk's length comes from the measured seconds per frame at the clip's resolution and the detection speed
(the ``video`` section of ``handler/core/measured.json``, written by ``bench/video.py``), so that one chunk uses
at most a third of the worker's timeout; ``SEG_VIDEO_CHUNK_FRAMES`` caps it. Chunk k > 0 also reads the last
frame of chunk k - 1 (``read_from``): the one-frame overlap through which the assembler links the tracks.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from handler.core.measured import MissingMeasurement, measured

# A chunk may use this share of the worker's timeout (the rest: cold start, S3, retries of a slow read).
TIMEOUT_SHARE = 1 / 3


def seconds_per_frame(width: int, height: int, speed: str) -> float | None:
    """The measured seconds per frame at the nearest measured size at or above ``width`` x ``height`` (the
    largest one scaled by pixels when the clip is larger), or None when nothing was measured."""
    try:
        table: dict[str, dict[str, float]] = measured("video")["seconds_per_frame"]
    except (MissingMeasurement, KeyError):
        return None
    sizes = table.get(speed) or table.get("normal")
    if not sizes:
        return None
    pixels = width * height
    by_pixels = sorted((_pixels(size), value) for size, value in sizes.items())
    for measured_pixels, value in by_pixels:
        if measured_pixels >= pixels:
            return float(value)
    largest_pixels, value = by_pixels[-1]
    return float(value) * pixels / largest_pixels


def _pixels(size: str) -> int:
    width, height = size.lower().split("x")
    return int(width) * int(height)


def frames_within(timeout_s: float, pace: float | None, cap: int) -> int:
    """As many frames as fit in a third of ``timeout_s`` at ``pace`` seconds a frame (the overlap frame too), at
    most ``cap``; ``cap`` when nothing was measured."""
    if pace is None or pace <= 0:
        return cap
    return max(1, min(cap, int(timeout_s * TIMEOUT_SHARE / pace) - 1))


def chunk_length(width: int, height: int, speed: str, timeout_s: float, cap: int) -> int:
    """Frames per chunk at the measured pace for this size and speed (``frames_within``)."""
    return frames_within(timeout_s, seconds_per_frame(width, height, speed), cap)


@dataclass(frozen=True)
class Chunk:
    """Frames ``[start, stop)`` (``stop`` None: to the clip's end), read from ``read_from`` (``start - 1`` for
    every chunk but the first: the overlap frame, processed again only to link the tracks)."""

    index: int
    start: int
    stop: int | None
    read_from: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, item: dict[str, Any]) -> Chunk:
        stop = item.get("stop")
        return cls(int(item["index"]), int(item["start"]), None if stop is None else int(stop), int(item["read_from"]))


def plan_chunks(frames: int, length: int) -> list[Chunk]:
    """Chunks of ``length`` frames over a clip of ``frames`` frames (the container's count; the last chunk
    reads to the end, whatever the count said)."""
    if frames < 1 or length < 1:
        raise ValueError(f"cannot plan {frames} frames in chunks of {length}")
    starts = range(0, frames, length)
    return [
        Chunk(index, start, None if index == len(starts) - 1 else start + length, max(0, start - 1))
        for index, start in enumerate(starts)
    ]
