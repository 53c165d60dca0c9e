"""Segmentation: what the model found in one image, and every way it leaves the service."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import cv2
import numpy as np

from handler.model import MaskCrop

MaskFormat = Literal["rle", "polygons", "none"]

SEED_KEYS = ("boxes", "class_ids", "class_names", "mask_shape", "object_counts", "scores")
# The result's version: 2 carries the model's float boxes and 0-1 scores (the ancestor's, 1, had no version
# field, truncated integer boxes and 0-100 integer scores, which ``/segmentapi`` still answers).
SCHEMA_VERSION = 2

# COCO's 80 detection classes use category ids 1..90 with gaps; results files use these ids.
COCO_CATEGORY_IDS = (
    1,
    2,
    3,
    4,
    5,
    6,
    7,
    8,
    9,
    10,
    11,
    13,
    14,
    15,
    16,
    17,
    18,
    19,
    20,
    21,
    22,
    23,
    24,
    25,
    27,
    28,
    31,
    32,
    33,
    34,
    35,
    36,
    37,
    38,
    39,
    40,
    41,
    42,
    43,
    44,
    46,
    47,
    48,
    49,
    50,
    51,
    52,
    53,
    54,
    55,
    56,
    57,
    58,
    59,
    60,
    61,
    62,
    63,
    64,
    65,
    67,
    70,
    72,
    73,
    74,
    75,
    76,
    77,
    78,
    79,
    80,
    81,
    82,
    84,
    85,
    86,
    87,
    88,
    89,
    90,
)


@dataclass
class Segmentation:
    """Objects found in one image, with each mask already encoded the ways the request asked for (``masks``:
    COCO RLE, ``polygons``, ``overlay_png``; ``None`` when not asked). No pixels of any mask are kept: the
    engine encodes each object while it is in hand (``handler.engine.objects``). Scores are model floats."""

    width: int
    height: int
    boxes: np.ndarray  # (N, 4) float x1 y1 x2 y2
    scores: np.ndarray  # (N,) float 0..1
    class_ids: np.ndarray  # (N,) int, 0-based COCO index
    class_names: list[str]
    model: dict[str, Any] = field(default_factory=dict)
    timings_ms: dict[str, float] = field(default_factory=dict)
    masks: list[dict[str, Any]] | None = None  # COCO compressed RLE per object, counts as str
    polygons: list[list[list[float]]] | None = None  # per object, outer contours as flat [x1, y1, ...]
    overlay_png: bytes | None = None

    def __post_init__(self) -> None:
        count = len(self.class_names)
        if not (len(self.boxes) == len(self.scores) == len(self.class_ids) == count):
            raise ValueError("boxes, scores, class_ids and class_names must have one entry per object")

    def __len__(self) -> int:
        return len(self.class_names)

    # The ancestor's (PixelLib's) conventions, kept for ``/segmentapi`` only: integer boxes and 0-100 integer
    # scores, both truncated.
    @property
    def seed_boxes(self) -> list[list[int]]:
        return self.boxes.astype(np.int64).tolist()

    @property
    def seed_scores(self) -> list[int]:
        return (self.scores * 100).astype(np.int64).tolist()

    @property
    def object_counts(self) -> dict[str, int]:
        return dict(Counter(self.class_names))

    @property
    def mask_shape(self) -> list[int]:
        return [self.height, self.width, len(self)]

    def to_seed_json(self) -> dict[str, Any]:
        """Exactly the keys the ancestor PixelLibAPI returned from ``POST /segmentapi``, with its integers."""
        return {
            "boxes": self.seed_boxes,
            "class_ids": self.class_ids.astype(np.int64).tolist(),
            "class_names": list(self.class_names),
            "mask_shape": self.mask_shape,
            "object_counts": self.object_counts,
            "scores": self.seed_scores,
        }

    def to_json(self) -> dict[str, Any]:
        """The result schema (``SCHEMA_VERSION``): the model's float boxes and 0-1 scores, with the mask
        encodings made (``masks`` and/or ``polygons``)."""
        body: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "image": {"width": self.width, "height": self.height},
            "boxes": model_floats(self.boxes),
            "class_ids": self.class_ids.astype(np.int64).tolist(),
            "class_names": list(self.class_names),
            "mask_shape": self.mask_shape,
            "object_counts": self.object_counts,
            "scores": model_floats(self.scores),
        }
        if self.masks is not None:
            body["masks"] = self.masks
        if self.polygons is not None:
            body["polygons"] = self.polygons
        body["model"] = dict(self.model)
        body["timings_ms"] = {name: round(value, 1) for name, value in self.timings_ms.items()}
        return body


def model_floats(values: np.ndarray) -> Any:
    """The model's float32 numbers as JSON numbers, each the shortest decimal that reads back to the same
    float32 (``5.7``, not ``5.699999809265137``): full precision, no digits the model never had."""
    as_float32 = np.asarray(values, dtype=np.float32)
    if as_float32.ndim == 0:
        return float(str(as_float32[()]))  # numpy prints a float32 with the fewest digits that round-trip
    return [model_floats(value) for value in as_float32]


class PolygonMasks:
    """``ObjectConsumer``: each object's COCO polygons (its mask's outer contours), into ``result.polygons``."""

    def start(self, rgb: np.ndarray, result: Segmentation) -> None:
        self._polygons: list[list[list[float]]] = []

    def add(self, index: int, crop: MaskCrop) -> None:
        self._polygons.append(
            [contour.reshape(-1).astype(float).tolist() for contour in outer_contours(crop) if len(contour) >= 3]
        )

    def finish(self, result: Segmentation) -> None:
        result.polygons = self._polygons


def outer_contours(crop: MaskCrop) -> Sequence[np.ndarray]:
    """OpenCV's outer contours of the mask in image coordinates: those of the full-size mask, in the same order.

    A one-pixel blank border makes the crop's edge look like the blank image around it, and the contours
    come back in raster order, which moving the crop does not change.
    """
    framed = cv2.copyMakeBorder(crop.mask.view(np.uint8), 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    contours, _ = cv2.findContours(
        framed, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE, offset=(crop.left - 1, crop.top - 1)
    )
    return contours
