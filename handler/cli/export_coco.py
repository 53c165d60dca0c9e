"""``python -m handler export-coco SOURCE... --out instances.json``: result JSON files as one COCO file.

A source is a result file, a folder of them (searched recursively) or an ``s3://bucket/prefix``. The export
is a stream: each result is read, turned into its image entry and annotations, and written at once; the
annotations go to a spool file beside the output and are spliced in after the images, so memory holds one
result at a time whatever the number of results. Error records and other JSON that is not a result are
skipped and counted. ``--predictions`` writes the ``COCO.loadRes`` list instead (annotations only).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from tqdm import tqdm

from handler.core import storage
from handler.engine import (
    Categories,
    NotAResult,
    check_result,
    coco_annotations,
    coco_image,
    coco_source_name,
    model_classes,
)
from handler.core.errors import ServiceError

# A result JSON holds one image's masks as RLE: tens of KB, a few MB for a crowded 48 MP photo.
MAX_RESULT_BYTES = 64 * 1024 * 1024


class ExportError(Exception):
    """The export cannot go on (a source that does not exist, classes that do not match): exit code 1."""


@dataclass
class ExportReport:
    images: int = 0
    annotations: int = 0
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> how many documents
    failed: dict[str, str] = field(default_factory=dict)  # document -> why (the first 20 kept)
    failures: int = 0

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    def fail(self, name: str, reason: str) -> None:
        self.failures += 1
        if len(self.failed) < 20:
            self.failed[name] = reason

    def summary(self, out: Path) -> str:
        lines = [f"{out}: {self.images} images, {self.annotations} annotations"]
        lines += [f"skipped {count}: {reason}" for reason, count in sorted(self.skipped.items())]
        if self.failures:
            lines.append(f"FAILED {self.failures} (unreadable results), e.g.:")
            lines += [f"  {name}: {reason}" for name, reason in self.failed.items()]
        return "\n".join(lines)


def documents(sources: Sequence[str]) -> Iterator[tuple[str, bytes]]:
    """(name, bytes) of every ``.json`` under each source, read one at a time."""
    for source in sources:
        if source.startswith("s3://"):
            bucket, _, prefix = source.removeprefix("s3://").partition("/")
            if not bucket:
                raise ExportError(f"{source}: an S3 source looks like s3://bucket/prefix/")
            for stored in storage.list_objects(bucket, prefix):
                if stored.key.endswith(".json"):
                    yield stored.key, storage.read(stored, MAX_RESULT_BYTES)
            continue
        path = Path(source)
        if path.is_file():
            yield str(path), path.read_bytes()
        elif path.is_dir():
            for found in _json_files(path):
                yield str(found), found.read_bytes()
        else:
            raise ExportError(f"{source}: no such file or folder")


def _json_files(folder: Path) -> Iterator[Path]:
    """``*.json`` under ``folder``, in the file system's order (a scan, never a list of every name)."""
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                yield from _json_files(Path(entry.path))
            elif entry.name.endswith(".json") and entry.is_file():
                yield Path(entry.path)


def export_coco(
    sources: Sequence[str],
    out: Path,
    class_names: Sequence[str] | None = None,
    *,
    predictions: bool = False,
    progress: bool = True,
) -> ExportReport:
    """Write the COCO file (or the predictions list) to ``out``, atomically; the report says what went in.

    The categories are ``class_names``, else the first result's model's classes, else COCO's 80.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    report = ExportReport()
    categories = Categories.for_classes(class_names) if class_names else None
    with (
        tempfile.NamedTemporaryFile("w", dir=out.parent, prefix=f".{out.name}.", delete=False) as target,
        tempfile.TemporaryFile("w+", dir=out.parent, prefix=f".{out.name}.annotations.") as spool,
    ):
        try:
            target.write("[" if predictions else '{"info": {"description": "PointRend results"}, "images": [')
            annotation_stream = target if predictions else spool
            bar = tqdm(documents(sources), unit=" results", desc="export-coco", disable=not progress, file=sys.stderr)
            for name, data in bar:
                try:
                    result = check_result(json.loads(data))
                except (NotAResult, ValueError) as exc:
                    report.skip(exc.message if isinstance(exc, NotAResult) else "not JSON")
                    continue
                if categories is None:
                    categories = Categories.for_classes(model_classes(result))
                _check_classes(result, categories, name)
                image_id = report.images + 1
                try:
                    first = report.annotations + 1
                    found = list(coco_annotations(result, image_id, first, categories, predictions=predictions))
                    image = coco_image(image_id, coco_source_name(result, name), result)
                except (KeyError, TypeError, ValueError) as exc:
                    report.fail(name, f"{type(exc).__name__}: {exc}")
                    continue
                if not predictions:
                    target.write(("," if report.images else "") + json.dumps(image))
                _write_items(annotation_stream, found, first=report.annotations == 0)
                report.images += 1
                report.annotations += len(found)
            categories = categories or Categories.for_classes(None)
            if predictions:
                target.write("]\n")
            else:
                target.write('], "annotations": [')
                spool.seek(0)
                shutil.copyfileobj(spool, target)
                target.write(f'], "categories": {json.dumps(categories.to_coco())}}}\n')
            target.flush()
            os.fsync(target.fileno())
        except BaseException:
            os.unlink(target.name)
            raise
    os.replace(target.name, out)
    return report


def _check_classes(result: dict[str, Any], categories: Categories, name: str) -> None:
    """Results of another model (other classes) cannot share these categories: refuse rather than mislabel."""
    classes = model_classes(result)
    if classes is not None and classes != categories.names:
        raise ExportError(
            f"{name} comes from a model with other classes ({len(classes)}: {', '.join(classes[:5])}, ...) "
            f"than the export's ({len(categories.names)}: {', '.join(categories.names[:5])}, ...): "
            "export each model's results apart"
        )


def _write_items(stream: IO[str], items: list[dict[str, Any]], *, first: bool) -> None:
    for index, item in enumerate(items):
        stream.write(("" if first and index == 0 else ",") + json.dumps(item))


def read_class_names(value: str) -> list[str]:
    """``--classes``: a comma list, or a file with one name per line."""
    path = Path(value)
    text = path.read_text(encoding="utf-8") if path.is_file() else value.replace(",", "\n")
    names = [line.strip() for line in text.splitlines() if line.strip()]
    if not names:
        raise ExportError(f"--classes {value!r} names no classes")
    return names


def run(sources: Sequence[str], out: Path, classes: str | None, predictions: bool) -> int:
    try:
        names = read_class_names(classes) if classes else None
        report = export_coco(sources, out, names, predictions=predictions)
    except (ExportError, ServiceError) as exc:
        print(f"error: {getattr(exc, 'message', None) or exc}", file=sys.stderr)
        return 1
    print(report.summary(out))
    return 1 if report.failures else 0
