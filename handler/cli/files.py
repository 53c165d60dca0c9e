"""Batch segmentation of files for the CLI: one result per image, failures collected, never fatal."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from tqdm import tqdm

from handler.cli.naming import OutputPlan, OutputRefused
from handler.cli.report import FilesReport
from handler.core.errors import ServiceError
from handler.core.settings import DetectionSpeed, get_settings
from handler.engine import (
    OBJECTS_SUFFIX,
    CutoutSink,
    CutoutWriter,
    Outputs,
    RequestOptions,
    get_segmenter,
    segment_bytes,
)


def segment_files(
    paths: Sequence[Path],
    out_dir: Path,
    output_format: str = "both",
    options: RequestOptions = RequestOptions(),
    overwrite: bool = False,
    detection_speed: DetectionSpeed | None = None,
) -> FilesReport:
    """``<name>.json`` / ``<name>.png`` per input, named by ``OutputPlan`` (inputs named twice count once);
    with ``options.cutouts``, each object as ``<name>.objects/NN-<class>.png`` too, written while its mask is in
    hand (before the JSON, which lists them under ``cutouts``, ``prefix`` relative to the JSON)."""
    masks, cutouts = options.masks, options.cutouts
    settings = get_settings()
    segmenter = get_segmenter()
    unique = list(dict.fromkeys(path.resolve() for path in paths))
    plan = OutputPlan(unique, out_dir, overwrite)
    suffixes = {"json": [".json"], "png": [".png"], "both": [".json", ".png"]}[output_format]
    writes_json, writes_png = ".json" in suffixes, ".png" in suffixes
    if cutouts:
        suffixes = [OBJECTS_SUFFIX.rstrip("/"), *suffixes]
    outputs = Outputs(masks if writes_json else "none", overlay=writes_png, overlay_max_side=settings.overlay_max_side)
    report = FilesReport()
    for path in tqdm(unique, unit="image", desc="segment"):
        listed: dict[str, object] = {}
        try:
            targets = plan.targets(path, suffixes)  # before the model's work: a refusal costs nothing
            writer = CutoutWriter(_into(targets[0]), cutouts) if cutouts else None
            consumers = [writer] if writer else []
            segmented = segment_bytes(
                path.read_bytes(),
                segmenter,
                settings,
                options,
                outputs=replace(outputs, consumers=consumers),
                detection_speed=detection_speed,
            )
            targets[0].parent.mkdir(parents=True, exist_ok=True)
        except (ServiceError, OSError, OutputRefused) as exc:
            report.failed[path] = getattr(exc, "message", None) or str(exc)
            continue
        for target in targets:
            if writer and target is targets[0]:
                listed = {"cutouts": {"mode": writer.mode, "prefix": target.name + "/", "names": writer.names}}
            elif target.suffix == ".json":
                source = {"file": str(path)}  # what export-coco names the image by, as S3 results carry their key
                target.write_text(json.dumps({**segmented.result.to_json(), "source": source, **listed}))
            else:
                target.write_bytes(segmented.result.overlay_png or b"")
            report.written.append(target)
        report.succeeded += 1
        report.objects += len(segmented.result)
    return report


def _into(folder: Path) -> CutoutSink:
    """A cut-out sink writing each PNG into ``folder`` (made with the first: an image without objects or that
    fails leaves none)."""

    def write(name: str, png: bytes) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(png)

    return write
