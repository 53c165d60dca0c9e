"""Video: probe a clip, read its frames, segment each through the engine, link objects into tracks, draw
and encode the overlay.

A clip is read with OpenCV's FFmpeg (a path or a URL, display rotation applied) by frame range with
sampling (``frames``); each processed frame goes through the same engine path as an image
(``lines.segment_frame``: ``handler.engine.segment_rgb``) and becomes one JSON line (``lines.frame_line``:
frame index, container time, the image result's fields, ``track_ids``). ``tracks`` links objects from one
processed frame to the next (mask IoU, optimal assignment) and links chunks of a distributed run through
their one-frame overlap. ``overlay`` draws a frame from its line (colour by track); ``writer`` encodes the
overlay video (WebM). ``local.segment_video`` is the local command's whole run.
Knows no transport: may import ``handler.engine`` and ``handler.core``, never ``api``, ``s3``, ``cli`` or
``handler.model``.
"""

from handler.video.frames import Frame, Sampling, read_frames
from handler.video.lines import frame_line, segment_frame
from handler.video.local import VideoReport, segment_video
from handler.video.overlay import draw_frame, track_colour
from handler.video.probe import VIDEO_SUFFIXES, VideoInfo, is_video, probe
from handler.video.tracks import ChunkLinker, Tracker, link_chunks
from handler.video.writer import OVERLAY_SUFFIX, OverlayWriter

__all__ = [
    "OVERLAY_SUFFIX",
    "VIDEO_SUFFIXES",
    "ChunkLinker",
    "Frame",
    "OverlayWriter",
    "Sampling",
    "Tracker",
    "VideoInfo",
    "VideoReport",
    "draw_frame",
    "frame_line",
    "is_video",
    "link_chunks",
    "probe",
    "read_frames",
    "segment_frame",
    "segment_video",
    "track_colour",
]
