"""``python -m handler export-coco SOURCE... --out instances.json``: result JSON files as one COCO file.

A source is a result file, a folder of them (searched recursively) or an ``s3://bucket/prefix``. Results are
``.json`` (one image) and ``.jsonl`` (a video: one line per processed frame, each frame an image named
``<video>/frame_000123``, its objects' ``track_id`` kept on the annotations). The export is a stream: each
result (or video line) is read, turned into its image entry and annotations, and written at once; the
annotations go to a spool file beside the output and are spliced in after the images, so memory holds one
result at a time whatever the number of results or frames. Error records and other JSON that is not a result
are skipped and counted; objects whose mask is empty are left out and counted. ``--predictions`` writes the
``COCO.loadRes`` list instead (annotations only), with the model's float scores.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any

from tqdm import tqdm

from handler.core import storage
from handler.core.errors import InvalidRequest, ServiceError
from handler.engine import (
    Categories,
    NotAResult,
    check_frame,
    check_result,
    coco_annotations,
    coco_image,
    coco_source_name,
    frame_name,
    model_classes,
)

# A result JSON holds one image's masks as RLE: tens of KB, a few MB for a crowded 48 MP photo. A video's
# JSON Lines file is read line by line, each line (one frame) held to the same bound.
MAX_RESULT_BYTES = 64 * 1024 * 1024
VIDEO_SUFFIX = ".jsonl"


class ExportError(Exception):
    """The export cannot go on (a source that does not exist, classes that do not match): exit code 1."""


@dataclass
class ExportReport:
    images: int = 0
    frames: int = 0  # of the images, video frames
    annotations: int = 0
    empty_masks: int = 0  # objects left out: no pixel in their mask
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
        frames = f" ({self.frames} of them video frames)" if self.frames else ""
        lines = [f"{out}: {self.images} images{frames}, {self.annotations} annotations"]
        if self.empty_masks:
            lines.append(f"left out {self.empty_masks} objects with an empty mask (no pixels)")
        lines += [f"skipped {count}: {reason}" for reason, count in sorted(self.skipped.items())]
        if self.failures:
            lines.append(f"FAILED {self.failures} (unreadable results), e.g.:")
            lines += [f"  {name}: {reason}" for name, reason in self.failed.items()]
        return "\n".join(lines)


@dataclass(frozen=True)
class Document:
    """One result to export: ``data`` its JSON; ``video`` the video's name when it is one line of a video's
    JSON Lines (the frame's image is named from it), else None."""

    name: str
    data: bytes
    video: str | None = None


def documents(sources: Sequence[str]) -> Iterator[Document]:
    """Every result under each source, read one at a time: each ``.json`` whole, each ``.jsonl`` line by line."""
    for source in sources:
        if source.startswith("s3://"):
            try:
                place = storage.S3Location.parse(source, what="an S3 source", prefix=True)
            except InvalidRequest as exc:
                raise ExportError(exc.message) from None
            for stored in storage.list_objects(place.bucket, place.key):
                if stored.key.endswith(VIDEO_SUFFIX):
                    yield from _lines(stored.key, _s3_lines(stored))
                elif stored.key.endswith(".json"):
                    yield Document(stored.key, storage.read(stored, MAX_RESULT_BYTES))
            continue
        path = Path(source)
        if path.is_file() or path.is_dir():
            for found in [path] if path.is_file() else _result_files(path):
                if found.name.endswith(VIDEO_SUFFIX):
                    with found.open("rb") as lines:
                        yield from _lines(str(found), lines)
                else:
                    yield Document(str(found), found.read_bytes())
        else:
            raise ExportError(f"{source}: no such file or folder")


def _lines(name: str, lines: Iterable[bytes]) -> Iterator[Document]:
    """A video's JSON Lines as one document per non-blank line, named ``<file>:<line number>``."""
    video = PurePosixPath(name).name.removesuffix(VIDEO_SUFFIX)
    for number, line in enumerate(lines, start=1):
        if line.strip():
            yield Document(f"{name}:{number}", line, video)


def _s3_lines(stored: storage.StoredObject) -> Iterator[bytes]:
    """The object's lines, streamed (never the whole object in memory), each at most ``MAX_RESULT_BYTES``."""
    body = storage.s3_client().get_object(Bucket=stored.bucket, Key=stored.key, IfMatch=f'"{stored.etag}"')["Body"]
    with closing(body):
        for line in body.iter_lines(chunk_size=1 << 20, keepends=True):
            if len(line) > MAX_RESULT_BYTES:
                raise ExportError(f"s3://{stored.bucket}/{stored.key}: a line over {MAX_RESULT_BYTES} bytes")
            yield line


def _result_files(folder: Path) -> Iterator[Path]:
    """``*.json`` and ``*.jsonl`` under ``folder``, in the file system's order (a scan, never a list of every name)."""
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                yield from _result_files(Path(entry.path))
            elif entry.name.endswith((".json", VIDEO_SUFFIX)) and entry.is_file():
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
            for document in bar:
                name = document.name
                try:
                    result = (check_frame if document.video else check_result)(json.loads(document.data))
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
                    image = coco_image(image_id, _image_name(document, result), result)
                except (KeyError, TypeError, ValueError) as exc:
                    report.fail(name, f"{type(exc).__name__}: {exc}")
                    continue
                if not predictions:
                    target.write(("," if report.images else "") + json.dumps(image))
                _write_items(annotation_stream, found, first=report.annotations == 0)
                report.images += 1
                report.frames += document.video is not None
                report.annotations += len(found)
                report.empty_masks += len(result["class_names"]) - len(found)
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


def _image_name(document: Document, result: dict[str, Any]) -> str:
    """The source image's name; a video's frame: ``<video>/frame_000123``, the video named as an image is."""
    if document.video is None:
        return coco_source_name(result, document.name)
    return frame_name(coco_source_name(result, document.video), result["frame"])


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
