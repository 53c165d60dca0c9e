"""``segment`` on videos: each clip (MP4, MOV, WebM, AVI, MKV) becomes ``<name.ext>.jsonl`` and
``<name.ext>.webm`` (``handler.video.segment_video``), named as image outputs are and never over a file."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from handler.cli.naming import OutputPlan, OutputRefused
from handler.cli.report import FilesReport

if TYPE_CHECKING:
    from handler.engine import RequestOptions

VIDEO_OUTPUTS = (".jsonl", ".webm")


def add_video_arguments(segment: argparse.ArgumentParser) -> None:
    """The video options of ``segment`` (images ignore them)."""
    group = segment.add_argument_group(
        "videos", "MP4, MOV, WebM, AVI, MKV inputs: one JSON line per processed frame and a WebM overlay"
    )
    sampling = group.add_mutually_exclusive_group()
    sampling.add_argument("--every", type=int, default=None, metavar="K", help="process every K-th frame")
    sampling.add_argument(
        "--fps", type=float, default=None, metavar="F", help="process about F frames a second (every round(fps/F))"
    )
    group.add_argument("--max-frames", type=int, default=None, metavar="N", help="process at most N frames")


def split_videos(paths: Sequence[Path]) -> tuple[list[Path], list[Path]]:
    """The inputs that are not videos (by suffix) and those that are, each in the order given."""
    from handler.video import is_video

    return [path for path in paths if not is_video(path)], [path for path in paths if is_video(path)]


def segment_videos(
    videos: Sequence[Path], args: argparse.Namespace, options: RequestOptions, report: FilesReport
) -> None:
    """Each clip through ``handler.video.segment_video``, its outputs and failures added to ``report``."""
    from handler.core.errors import ServiceError
    from handler.video import segment_video
    from handler.video.local import OutputExists

    unique = list(dict.fromkeys(path.resolve() for path in videos))
    if not unique:
        return
    plan = OutputPlan(unique, args.out, args.overwrite)
    for path in unique:
        try:
            plan.targets(path, VIDEO_OUTPUTS)  # refuses an input's or an existing file's name before any work
            done = segment_video(
                path,
                args.out,
                options,
                every=args.every,
                fps=args.fps,
                max_frames=args.max_frames,
                overwrite=args.overwrite,
                target=plan.base(path),
                detection_speed=args.speed,
            )
        except (ServiceError, OSError, OutputRefused, OutputExists, RuntimeError) as exc:
            report.failed[path] = getattr(exc, "message", None) or str(exc)
            continue
        sampled = done.sampling.every if done.sampling else 1
        print(f"{path.name}: {done.frames} frames processed (every {sampled}), {done.tracks} tracks")
        report.written.extend(done.written)
        report.succeeded += 1
        report.objects += done.objects
