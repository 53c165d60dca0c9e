"""Result JSON (what every entry point writes) to COCO: categories, image entries and annotations.

Pure functions over one result at a time, so that an export of any size is a stream (``handler.cli.export_coco``).
A video's result is JSON Lines, one image result per processed frame (plus ``frame``, ``time_ms`` and
``track_ids``): each frame is an image of its own, named ``<video>/frame_000123``.
COCO's 80 classes keep their real category ids (1..90 with gaps) and supercategories; a model with its
own classes (its result's ``model.classes``, or names given by the caller) gets ids 1..N in its order.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from itertools import repeat
from pathlib import PurePosixPath
from typing import Any

from pycocotools import mask as coco_mask

from handler.core.errors import InvalidRequest, NotAResult
from handler.engine.results import COCO_CATEGORY_IDS
from handler.model import COCO_CLASS_NAMES

# COCO's supercategories, as runs over the 80 classes in their order (instances_val2017.json's).
COCO_SUPERCATEGORY_RUNS = (
    ("person", 1),
    ("vehicle", 8),
    ("outdoor", 5),
    ("animal", 10),
    ("accessory", 5),
    ("sports", 10),
    ("kitchen", 7),
    ("food", 10),
    ("furniture", 6),
    ("electronic", 6),
    ("appliance", 5),
    ("indoor", 7),
)
COCO_SUPERCATEGORIES: tuple[str, ...] = tuple(
    name for name, count in COCO_SUPERCATEGORY_RUNS for name in repeat(name, count)
)


@dataclass(frozen=True)
class Categories:
    """The model's classes as COCO categories: ``id_of[name]`` is the category id."""

    names: tuple[str, ...]
    ids: tuple[int, ...]
    supercategories: tuple[str, ...]

    @classmethod
    def for_classes(cls, names: Sequence[str] | None) -> Categories:
        """COCO's own ids and supercategories for COCO's 80 classes (also when ``names`` is None), else 1..N."""
        if names is None or tuple(names) == COCO_CLASS_NAMES:
            return cls(COCO_CLASS_NAMES, COCO_CATEGORY_IDS, COCO_SUPERCATEGORIES)
        names = tuple(names)
        if not names or len(set(names)) != len(names) or not all(isinstance(n, str) and n for n in names):
            raise InvalidRequest(f"class names must be distinct non-empty strings, got {list(names)[:20]}")
        return cls(names, tuple(range(1, len(names) + 1)), names)

    @cached_property
    def id_of(self) -> dict[str, int]:
        return dict(zip(self.names, self.ids, strict=True))

    def to_coco(self) -> list[dict[str, Any]]:
        return [
            {"id": cid, "name": name, "supercategory": sup}
            for cid, name, sup in zip(self.ids, self.names, self.supercategories, strict=True)
        ]


def model_classes(result: dict[str, Any]) -> tuple[str, ...] | None:
    """The class names a result's ``model`` block lists (results of models with their own classes), or None."""
    classes = (result.get("model") or {}).get("classes")
    if isinstance(classes, list) and classes and all(isinstance(name, str) for name in classes):
        return tuple(classes)
    return None


def coco_source_name(result: dict[str, Any], fallback: str) -> str:
    """The source image's key (S3 results) or file (``segment`` results); else ``fallback`` (the result
    file's own name) without its ``.json``."""
    source = result.get("source") or {}
    for field in ("key", "file"):
        if isinstance(source.get(field), str) and source[field]:
            return source[field]
    return PurePosixPath(fallback).name.removesuffix(".json")


def check_result(result: Any) -> dict[str, Any]:
    """The result, or ``NotAResult`` saying what is missing."""
    if not isinstance(result, dict):
        raise NotAResult("not a JSON object")
    if "error" in result:
        raise NotAResult("an error record")
    image = result.get("image")
    if not (isinstance(image, dict) and isinstance(image.get("width"), int) and isinstance(image.get("height"), int)):
        raise NotAResult("no image width and height")
    if not all(isinstance(result.get(name), list) for name in ("boxes", "class_names", "scores")):
        raise NotAResult("no boxes, class_names and scores")
    if "masks" not in result and "polygons" not in result:
        raise NotAResult("no masks (segmented with masks=none)")
    return result


def check_frame(line: Any) -> dict[str, Any]:
    """A video's line (an image result with its ``frame`` index), or ``NotAResult``."""
    result = check_result(line)
    if not isinstance(result.get("frame"), int) or result["frame"] < 0:
        raise NotAResult("a video line without its frame index")
    return result


def frame_name(video: str, frame: int) -> str:
    """The image name of a video's processed frame: ``<video>/frame_000123``."""
    return f"{video}/frame_{frame:06d}"


def coco_image(image_id: int, file_name: str, result: dict[str, Any]) -> dict[str, Any]:
    image = result["image"]
    return {"id": image_id, "file_name": file_name, "width": image["width"], "height": image["height"]}


def coco_annotations(
    result: dict[str, Any], image_id: int, first_id: int, categories: Categories, *, predictions: bool = False
) -> Iterator[dict[str, Any]]:
    """One COCO annotation per object with pixels, in object order: RLE segmentation (polygons when the result
    has those), ``bbox`` as x, y, w, h and ``area`` from the mask, ``score`` the model's 0..1 (a result written
    before ``schema_version``, with the ancestor's 0-100 integers, is scaled), ``track_id`` when the result
    has ``track_ids`` (a video frame). An object whose mask is empty is left out (COCO tools reject a zero
    area and COCOeval counts it as a miss): the caller sees how many by counting. ``predictions``: the
    ``COCO.loadRes`` form (no id, area or iscrowd: loadRes derives them); ids run from ``first_id`` on."""
    height, width = result["image"]["height"], result["image"]["width"]
    id_of = categories.id_of
    shapes = result["masks"] if "masks" in result else result["polygons"]
    percent = "schema_version" not in result  # written before it: the ancestor's 0-100 integers
    tracks = result["track_ids"] if "track_ids" in result else [None] * len(result["class_names"])
    rows = zip(result["class_names"], result["scores"], shapes, tracks, strict=True)
    next_id = first_id
    for name, score, shape, track in rows:
        if name not in id_of:
            raise InvalidRequest(
                f"class {name!r} is not among the export's categories ({len(categories.names)} classes, "
                f"{', '.join(categories.names[:5])}, ...): give the model's names with --classes"
            )
        segmentation, rle = _segmentation(shape, height, width)
        area = int(coco_mask.area(rle)) if rle is not None else 0
        if area == 0:
            continue
        annotation: dict[str, Any] = {
            "image_id": image_id,
            "category_id": id_of[name],
            "segmentation": segmentation,
            "bbox": [float(v) for v in coco_mask.toBbox(rle)],
            "score": score / 100 if percent else float(score),
        }
        if track is not None:
            annotation["track_id"] = int(track)
        if not predictions:
            annotation |= {"id": next_id, "area": area, "iscrowd": 0}
        next_id += 1
        yield annotation


def _segmentation(shape: Any, height: int, width: int) -> tuple[Any, dict[str, Any] | None]:
    """The annotation's segmentation (the result's RLE or polygons as they are) and its RLE for pycocotools;
    no RLE for an object too thin to have a polygon (an empty mask)."""
    if isinstance(shape, dict):
        size, counts = shape["size"], shape["counts"]
        return {"size": size, "counts": counts}, {"size": size, "counts": counts.encode()}
    if not shape:
        return shape, None
    return shape, coco_mask.merge(coco_mask.frPyObjects(shape, height, width))
