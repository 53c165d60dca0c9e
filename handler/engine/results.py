"""Segmentation: what the model found in one image, and every way it leaves the service."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import cv2
import numpy as np

from handler.engine.rle import crop_rle
from handler.model import MaskCrop

MaskFormat = Literal["rle", "polygons", "none"]

SEED_KEYS = ("boxes", "class_ids", "class_names", "mask_shape", "object_counts", "scores")

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
    """Objects found in one image. Each mask is kept inside its box only (``MaskCrop``), never as N x H x W;
    scores are kept as model floats."""

    width: int
    height: int
    boxes: np.ndarray  # (N, 4) float x1 y1 x2 y2
    scores: np.ndarray  # (N,) float 0..1
    class_ids: np.ndarray  # (N,) int, 0-based COCO index
    class_names: list[str]
    masks: list[MaskCrop]
    model: dict[str, Any] = field(default_factory=dict)
    timings_ms: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        count = len(self.class_names)
        if not (len(self.boxes) == len(self.scores) == len(self.class_ids) == len(self.masks) == count):
            raise ValueError("boxes, scores, class_ids, class_names and masks must have one entry per object")
        for crop in self.masks:
            if crop.top < 0 or crop.left < 0 or crop.bottom > self.height or crop.right > self.width:
                raise ValueError(
                    f"a mask at rows {crop.top}..{crop.bottom}, columns {crop.left}..{crop.right} is outside "
                    f"the {self.width}x{self.height} image"
                )

    def __len__(self) -> int:
        return len(self.class_names)

    def select(self, keep: np.ndarray) -> Segmentation:
        """The subset of objects where ``keep`` (bool, one per object) is true."""
        keep = np.asarray(keep, dtype=bool)
        return Segmentation(
            width=self.width,
            height=self.height,
            boxes=self.boxes[keep],
            scores=self.scores[keep],
            class_ids=self.class_ids[keep],
            class_names=[name for name, kept in zip(self.class_names, keep, strict=True) if kept],
            masks=[crop for crop, kept in zip(self.masks, keep, strict=True) if kept],
            model=self.model,
            timings_ms=self.timings_ms,
        )

    # The ancestor's (PixelLib's) conventions: integer boxes and 0-100 integer scores, both truncated.
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

    def rle_masks(self) -> list[dict[str, Any]]:
        """COCO compressed RLE, one per object, ``counts`` as str (``pycocotools.mask.decode``-able)."""
        return [crop_rle(crop, self.height, self.width) for crop in self.masks]

    def polygon_masks(self) -> list[list[list[float]]]:
        """COCO polygons: per object, a list of outer contours as flat [x1, y1, x2, y2, ...] lists."""
        return [
            [contour.reshape(-1).astype(float).tolist() for contour in outer_contours(crop) if len(contour) >= 3]
            for crop in self.masks
        ]

    def to_seed_json(self) -> dict[str, Any]:
        """Exactly the keys the ancestor PixelLibAPI returned from ``POST /segmentapi``."""
        return {
            "boxes": self.seed_boxes,
            "class_ids": self.class_ids.astype(np.int64).tolist(),
            "class_names": list(self.class_names),
            "mask_shape": self.mask_shape,
            "object_counts": self.object_counts,
            "scores": self.seed_scores,
        }

    def to_json(self, masks: MaskFormat = "rle") -> dict[str, Any]:
        body: dict[str, Any] = {"image": {"width": self.width, "height": self.height}}
        body.update(self.to_seed_json())
        if masks == "rle":
            body["masks"] = self.rle_masks()
        elif masks == "polygons":
            body["polygons"] = self.polygon_masks()
        body["model"] = dict(self.model)
        body["timings_ms"] = {name: round(value, 1) for name, value in self.timings_ms.items()}
        return body

    def to_coco_results(self, image_id: int) -> list[dict[str, Any]]:
        """Detections in the COCO results format (as read by ``COCO.loadRes`` / COCOeval)."""
        return [
            {
                "image_id": image_id,
                "category_id": COCO_CATEGORY_IDS[int(class_id)],
                "bbox": [float(x1), float(y1), float(x2 - x1), float(y2 - y1)],
                "score": float(score),
                "segmentation": rle,
            }
            for (x1, y1, x2, y2), score, class_id, rle in zip(
                self.boxes, self.scores, self.class_ids, self.rle_masks(), strict=True
            )
        ]


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
