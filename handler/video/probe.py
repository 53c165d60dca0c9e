"""What a clip is (frames, frame rate, displayed size, rotation, duration, codec), checked against the
video limits before any frame is segmented."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2

from handler.core.errors import CorruptVideo, EmptyVideo, UnsupportedVideo, VideoTooLarge
from handler.core.settings import Settings, get_settings
from handler.video.sniff import declared_codec

VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".webm", ".mkv", ".avi"})


@dataclass(frozen=True)
class VideoInfo:
    """A clip as OpenCV's FFmpeg reads it. ``width``/``height`` are the displayed frame's (rotation applied);
    ``rotation`` is the container's display rotation in degrees (0, 90, 180, 270); ``frames`` is the
    container's count and ``fps`` its average rate (a variable-rate clip's lines carry each frame's own time)."""

    frames: int
    fps: float
    width: int
    height: int
    rotation: int
    duration_s: float
    codec: str
    size_bytes: int | None = None

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def is_video(path: Path) -> bool:
    """Whether ``path`` names a video by its suffix (what the CLI dispatches on)."""
    return path.suffix.lower() in VIDEO_SUFFIXES


def open_capture(source: str | Path) -> cv2.VideoCapture:
    """``source`` opened by OpenCV's FFmpeg, display rotation applied; ``CorruptVideo`` when it cannot be."""
    capture = cv2.VideoCapture(str(source), cv2.CAP_FFMPEG)
    if not capture.isOpened():
        capture.release()
        codec = None if _is_url(source) else declared_codec(source)
        if codec:
            raise UnsupportedVideo(
                f"{_name(source)}: its video codec {codec!r} is not one OpenCV's FFmpeg decodes "
                "(H.264, HEVC, VP8, VP9, MPEG-4 and MJPEG among others)"
            )
        raise CorruptVideo(
            f"{_name(source)}: not a video OpenCV's FFmpeg can open (damaged, truncated before its index, "
            "or not a video)"
        )
    capture.set(cv2.CAP_PROP_ORIENTATION_AUTO, 1)
    return capture


def probe(source: str | Path, settings: Settings | None = None, size_bytes: int | None = None) -> VideoInfo:
    """Open ``source`` (a path or a URL), read its first frame and check the limits of ``settings`` (default:
    ``get_settings()``). ``size_bytes`` is the object's size for a URL (a path's is read from the file).
    Raises ``CorruptVideo``, ``EmptyVideo``, ``UnsupportedVideo`` or ``VideoTooLarge`` (which names the setting)."""
    settings = settings or get_settings()
    if size_bytes is None and not _is_url(source):
        size_bytes = os.path.getsize(source)
    if size_bytes is not None:
        _check("SEG_VIDEO_MAX_BYTES", source, size_bytes, settings.video_max_bytes, "bytes")
    capture = open_capture(source)
    try:
        codec = _fourcc(capture)
        frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        fps = float(capture.get(cv2.CAP_PROP_FPS))
        rotation = int(capture.get(cv2.CAP_PROP_ORIENTATION_META)) % 360
        if frames <= 0:
            raise EmptyVideo(f"{_name(source)}: the container holds no video frames")
        ok, first = capture.read()
    finally:
        capture.release()
    if not ok or first is None:
        raise UnsupportedVideo(
            f"{_name(source)}: its first frame cannot be decoded (codec {codec or 'unknown'} unsupported by "
            "OpenCV's FFmpeg, or the stream is damaged)"
        )
    if not fps > 0:
        raise CorruptVideo(f"{_name(source)}: the container gives no frame rate")
    height, width = first.shape[:2]
    info = VideoInfo(frames, fps, width, height, rotation, frames / fps, codec, size_bytes)
    _check("SEG_VIDEO_MAX_FRAMES", source, frames, settings.video_max_frames, "frames")
    _check("SEG_VIDEO_MAX_SECONDS", source, round(info.duration_s, 3), settings.video_max_seconds, "seconds")
    _check("SEG_VIDEO_MAX_PIXELS", source, width * height, settings.video_max_pixels, "pixels a frame")
    return info


def _check(setting: str, source: str | Path, value: float, limit: float, unit: str) -> None:
    if value > limit:
        raise VideoTooLarge(f"{_name(source)}: {value:g} {unit}, over the limit of {limit:g} ({setting})")


def _fourcc(capture: cv2.VideoCapture) -> str:
    code = int(capture.get(cv2.CAP_PROP_FOURCC))
    return code.to_bytes(4, "little").decode("ascii", "replace").strip("\x00 ") if code > 0 else ""


def _is_url(source: str | Path) -> bool:
    return isinstance(source, str) and "://" in source


def _name(source: str | Path) -> str:
    """A source for messages: a file's name, a URL without its query (presigned URLs carry credentials)."""
    if _is_url(source):
        return str(source).split("?", 1)[0]
    return Path(source).name
