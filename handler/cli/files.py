"""Batch segmentation of files for the CLI: one result per image, failures collected, never fatal."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from handler.engine import MaskFormat, SegmentOptions, render_png, segment_bytes
from handler.errors import ServiceError
from handler.model import get_segmenter
from handler.settings import get_settings


@dataclass
class BatchReport:
    written: list[Path] = field(default_factory=list)
    objects: int = 0
    succeeded: int = 0
    failed: dict[Path, str] = field(default_factory=dict)

    def summary(self) -> str:
        lines = [f"{self.succeeded} segmented ({self.objects} objects), {len(self.failed)} failed"]
        lines += [f"  FAILED {path}: {reason}" for path, reason in self.failed.items()]
        return "\n".join(lines)


def segment_files(
    paths: Sequence[Path],
    out_dir: Path,
    output_format: str = "both",
    masks: MaskFormat = "rle",
    options: SegmentOptions = SegmentOptions(),
) -> BatchReport:
    settings = get_settings()
    segmenter = get_segmenter()
    out_dir.mkdir(parents=True, exist_ok=True)
    report = BatchReport()
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
