"""Cut-outs checked against the result they came with: names, order, sizes, alpha against the decoded RLE."""

from __future__ import annotations

import io
import re
from typing import Any

import numpy as np
from PIL import Image
from pycocotools import mask as coco_mask

NAME = re.compile(r"(\d{2,})-([A-Za-z0-9_-]+)\.png")


def rgba(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "PNG" and image.mode == "RGBA", (image.format, image.mode)
        return np.asarray(image)


def assert_cutouts(files: dict[str, bytes], result: dict[str, Any], rgb: np.ndarray, mode: str = "mask") -> None:
    """``files`` (name -> PNG, in the order given) are the result's objects: ``NN-<class>.png`` in result
    order, each its box (truncated to ints) of ``rgb``; mask mode: alpha 255 exactly where the decoded RLE mask
    is set and transparent black elsewhere; box mode: the box's pixels, opaque."""
    names = list(files)
    assert len(names) == len(result["class_names"])
    height, width = rgb.shape[:2]
    masks = coco_mask.decode(result["masks"]) if mode == "mask" else None
    seen = 0  # objects with pixels inside their (truncated) box: a sliver of one may have none
    for index, (name, class_name, box) in enumerate(zip(names, result["class_names"], result["boxes"], strict=True)):
        match = NAME.fullmatch(name)
        assert match, name
        assert int(match.group(1)) == index
        assert match.group(2) == class_name.replace(" ", "_")
        x1, y1, x2, y2 = box
        x1, y1 = min(max(x1, 0), width - 1), min(max(y1, 0), height - 1)
        x2, y2 = min(max(x2, x1 + 1), width), min(max(y2, y1 + 1), height)
        picture = rgba(files[name])
        assert picture.shape == (y2 - y1, x2 - x1, 4), (name, picture.shape, box)
        inside = rgb[y1:y2, x1:x2]
        if mode == "box":
            assert (picture[:, :, 3] == 255).all()
            np.testing.assert_array_equal(picture[:, :, :3], inside)
            continue
        mask = masks[y1:y2, x1:x2, index].astype(bool)
        seen += bool(mask.any())
        np.testing.assert_array_equal(picture[:, :, 3], np.where(mask, 255, 0))
        np.testing.assert_array_equal(picture[:, :, :3], np.where(mask[:, :, None], inside, 0))
    if mode == "mask" and names:
        assert seen > len(names) // 2, f"only {seen} of {len(names)} cut-outs show any pixel"
