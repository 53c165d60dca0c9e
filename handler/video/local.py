"""The local command's run on one clip: ``<name.ext>.jsonl`` and ``<name.ext>.webm`` under the output folder."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from handler.engine import SegmentOptions


@dataclass
class VideoReport:
    source: Path
    frames: int = 0  # processed frames (lines written)
    objects: int = 0
    tracks: int = 0
    written: list[Path] = field(default_factory=list)


def segment_video(
    path: Path,
    out_dir: Path,
    options: SegmentOptions = SegmentOptions(),
    every: int | None = None,
    fps: float | None = None,
    max_frames: int | None = None,
    overwrite: bool = False,
    target: Path | None = None,
) -> VideoReport:
    """Probe ``path`` (limits), then segment the sampled frames with a progress bar in frames, tracking objects,
    writing the JSON lines and the overlay to temporary names renamed when complete. ``target`` is the output
    path without its suffixes (default: ``out_dir / path.name``). Never overwrites unless ``overwrite``."""
    raise NotImplementedError
