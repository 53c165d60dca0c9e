"""The local command's run on one clip: ``<name.ext>.jsonl`` and ``<name.ext>.webm`` under the output folder.

Both are written under temporary names beside their targets and renamed when the whole clip is done, so a
failed or interrupted run leaves nothing that looks finished. Memory holds one frame, its result and the
previous frame's masks (the tracker's), whatever the clip's length.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from handler.core.errors import CorruptVideo
from handler.core.settings import DetectionSpeed
from handler.engine import RequestOptions, get_segmenter
from handler.video.frames import Sampling, read_frames
from handler.video.lines import frame_line, segment_frame
from handler.video.overlay import draw_frame
from handler.video.probe import VideoInfo, probe
from handler.video.tracks import Tracker
from handler.video.writer import OVERLAY_SUFFIX, OverlayWriter

LINES_SUFFIX = ".jsonl"
PARTIAL = ".partial"


class OutputExists(Exception):
    """An output is already there (outputs are never overwritten unless asked)."""


@dataclass
class VideoReport:
    source: Path
    frames: int = 0  # processed frames (lines written)
    objects: int = 0
    tracks: int = 0
    written: list[Path] = field(default_factory=list)
    info: VideoInfo | None = None
    sampling: Sampling | None = None


def output_paths(target: Path) -> tuple[Path, Path]:
    """The JSON lines and the overlay of a clip whose outputs are named ``target`` plus a suffix."""
    return target.with_name(target.name + LINES_SUFFIX), target.with_name(target.name + OVERLAY_SUFFIX)


def segment_video(
    path: Path,
    out_dir: Path,
    options: RequestOptions = RequestOptions(),
    every: int | None = None,
    fps: float | None = None,
    max_frames: int | None = None,
    overwrite: bool = False,
    target: Path | None = None,
    detection_speed: DetectionSpeed | None = None,
) -> VideoReport:
    """Probe ``path`` (limits), then segment the sampled frames with a progress bar in frames, tracking objects,
    writing the JSON lines and the overlay to temporary names renamed when complete. ``target`` is the output
    path without its suffixes (default: ``out_dir / path.name``). Never overwrites unless ``overwrite``."""
    lines_path, video_path = output_paths(target or out_dir / path.name)
    for output in (lines_path, video_path):
        if output.exists() and not overwrite:
            raise OutputExists(f"{output} already exists; pass --overwrite to replace it")
    info = probe(path)
    sampling = Sampling.from_options(info.fps, every, fps, max_frames)
    chosen = sampling.indices(info.frames)
    segmenter = get_segmenter()
    options.wanted(segmenter)  # a bad --classes costs no frame
    report = VideoReport(path, info=info, sampling=sampling)
    lines_path.parent.mkdir(parents=True, exist_ok=True)
    partial_lines = lines_path.with_name(lines_path.name + PARTIAL)
    partial_video = video_path.with_name(video_path.name + PARTIAL + OVERLAY_SUFFIX)
    tracker = Tracker()
    stop = chosen[-1] + 1 if chosen else 0
    try:
        with (
            partial_lines.open("w", encoding="utf-8") as lines,
            OverlayWriter(partial_video, sampling.output_fps(info.fps), info.width, info.height) as overlay,
            tqdm(total=len(chosen), unit="frame", desc=path.name) as progress,
        ):
            for frame in read_frames(path, 0, stop, sampling.every):
                result = segment_frame(frame.rgb, segmenter, options, detection_speed)
                track_ids = tracker.update(result.masks or [], result.class_ids.tolist())
                line = frame_line(frame.index, frame.time_ms, result, track_ids)
                lines.write(json.dumps(line) + "\n")
                overlay.write(draw_frame(frame.rgb, line))
                report.frames += 1
                report.objects += len(result)
                progress.update(1)
        if report.frames < len(chosen) - 1:  # a container's count may be off by one; more is a damaged stream
            raise CorruptVideo(
                f"{path.name}: only {report.frames} of the {len(chosen)} frames to process could be decoded "
                "(truncated or damaged)"
            )
        partial_lines.replace(lines_path)
        partial_video.replace(video_path)
    finally:
        partial_lines.unlink(missing_ok=True)
        partial_video.unlink(missing_ok=True)
    report.tracks = tracker.next_id - 1
    report.written = [lines_path, video_path]
    return report
