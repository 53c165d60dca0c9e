"""What a clip is (frames, frame rate, displayed size, rotation, duration, codec), checked against the
video limits before any frame is segmented."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from handler.core.settings import Settings

VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".webm", ".mkv", ".avi"})


@dataclass(frozen=True)
class VideoInfo:
    """A clip as OpenCV's FFmpeg reads it. ``width``/``height`` are the displayed frame's (rotation applied);
    ``rotation`` is the container's display rotation in degrees (0, 90, 180, 270)."""

    frames: int
    fps: float
    width: int
    height: int
    rotation: int
    duration_s: float
    codec: str
    size_bytes: int | None = None

    def to_json(self) -> dict[str, object]:
        raise NotImplementedError


def is_video(path: Path) -> bool:
    """Whether ``path`` names a video by its suffix (what the CLI dispatches on)."""
    return path.suffix.lower() in VIDEO_SUFFIXES


def probe(source: str | Path, settings: Settings | None = None, size_bytes: int | None = None) -> VideoInfo:
    """Open ``source`` (a path or a URL), read its first frame and check the limits of ``settings`` (default:
    ``get_settings()``). ``size_bytes`` is the object's size for a URL (a path's is read from the file).
    Raises ``CorruptVideo``, ``EmptyVideo``, ``UnsupportedVideo`` or ``VideoTooLarge`` (which names the setting)."""
    raise NotImplementedError
