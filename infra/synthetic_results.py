"""Synthetic result JSON as the S3 worker writes it (real COCO RLE from the engine's own encoder), for the
export-coco tests and bench/coco_export.py: many results without running the model.

Development tooling, not part of the service: the image never ships it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from handler.engine import MaskFormat, Outputs, Segmentation, encode_objects
from handler.model import COCO_CLASS_NAMES, MaskCrop

SIZES = ((640, 480), (480, 640), (1024, 768), (320, 240))


def synthetic_result(
    index: int,
    *,
    seed: int = 0,
    classes: Sequence[str] = COCO_CLASS_NAMES,
    max_objects: int = 8,
    masks: MaskFormat = "rle",
) -> dict[str, Any]:
    """One image's result: 0..max_objects ellipses (a few touching the border), ``source.key`` naming
    ``uploads/img<index>.jpg``, the model's ``classes`` listed in its ``model`` block."""
    rng = np.random.default_rng([seed, index])
    width, height = SIZES[index % len(SIZES)]
    boxes, crops = [], []
    for _ in range(int(rng.integers(0, max_objects + 1))):
        w, h = (int(v) for v in rng.integers(4, [width // 2, height // 2]))
        left, top = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
        mask = np.zeros((h, w), np.uint8)
        cv2.ellipse(mask, (w // 2, h // 2), (max(w // 2 - 1, 1), max(h // 2 - 1, 1)), 0, 0, 360, 1, -1)
        crops.append(MaskCrop(top, left, mask.astype(bool)))
        boxes.append([left, top, left + w, top + h])
    class_ids = rng.integers(0, len(classes), len(crops))
    segmentation = Segmentation(
        width=width,
        height=height,
        boxes=np.asarray(boxes, float).reshape(-1, 4),
        scores=rng.uniform(0.5, 1.0, len(crops)),
        class_ids=class_ids,
        class_names=[classes[i] for i in class_ids],
        model={"name": "pointrend_resnet50", "sha256": None, "classes": list(classes)},
    )
    encode_objects(np.zeros((height, width, 3), np.uint8), segmentation, crops, Outputs(masks))
    result = segmentation.to_json()
    key = f"uploads/img{index:07d}.jpg"
    result["source"] = {"bucket": "photos", "key": key, "etag": f"{index:032x}", "version_id": None}
    return result


def synthetic_results(count: int, **options: Any) -> Iterator[dict[str, Any]]:
    for index in range(count):
        yield synthetic_result(index, **options)


def write_results(folder: Path, count: int, **options: Any) -> Path:
    """``count`` results as ``<folder>/results/img<index>.jpg.json``, as the S3 side names them."""
    out = folder / "results"
    out.mkdir(parents=True, exist_ok=True)
    for index, result in enumerate(synthetic_results(count, **options)):
        (out / f"img{index:07d}.jpg.json").write_text(json.dumps(result))
    return out
