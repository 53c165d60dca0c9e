"""Batch segmentation of files for the CLI: one result per image, failures collected, never fatal."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

from handler.cli.report import FilesReport
from handler.engine import MaskFormat, SegmentOptions, get_segmenter, render_png, segment_bytes
from handler.errors import ServiceError
from handler.settings import get_settings


def segment_files(
    paths: Sequence[Path],
    out_dir: Path,
    output_format: str = "both",
    masks: MaskFormat = "rle",
    options: SegmentOptions = SegmentOptions(),
) -> FilesReport:
    settings = get_settings()
    segmenter = get_segmenter()
    out_dir.mkdir(parents=True, exist_ok=True)
    report = FilesReport()
    for path in tqdm(paths, unit="image", desc="segment"):
        try:
            segmented = segment_bytes(path.read_bytes(), segmenter, settings, options)
        except (ServiceError, OSError) as exc:
            report.failed[path] = getattr(exc, "message", None) or str(exc)
            continue
        if output_format in ("json", "both"):
            target = out_dir / f"{path.stem}.json"
            target.write_text(json.dumps(segmented.result.to_json(masks)))
            report.written.append(target)
        if output_format in ("png", "both"):
            target = out_dir / f"{path.stem}.png"
            target.write_bytes(render_png(segmented.rgb, segmented.result, settings.overlay_max_side))
            report.written.append(target)
        report.succeeded += 1
        report.objects += len(segmented.result)
    return report
