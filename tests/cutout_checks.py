"""Cut-outs checked against the result they came with: names, order, sizes, alpha against the decoded RLE."""

from __future__ import annotations

import io
import math
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


def box_frame(box: list[float], height: int, width: int) -> tuple[int, int, int, int]:
    """(top, left, bottom, right): the float box rounded outwards, inside the image, at least one pixel."""
    x1, y1, x2, y2 = box
    left, top = min(max(math.floor(x1), 0), width - 1), min(max(math.floor(y1), 0), height - 1)
    right, bottom = min(max(math.ceil(x2), left + 1), width), min(max(math.ceil(y2), top + 1), height)
    return top, left, bottom, right


def mask_frame(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """(top, left, bottom, right) of the mask's set pixels; None when it has none."""
    rows, columns = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return (rows[0], columns[0], rows[-1] + 1, columns[-1] + 1) if len(rows) else None


def assert_cutouts(files: dict[str, bytes], result: dict[str, Any], rgb: np.ndarray, mode: str = "mask") -> None:
    """``files`` (name -> PNG, in the order given) are the result's objects: ``NN-<class>.png`` in result
    order; mask mode: framed by the decoded RLE mask's extent (its box rounded outwards when empty), alpha 255
    exactly where the mask is set (as many opaque pixels as the mask's area) and transparent black elsewhere;
    box mode: the float box rounded outwards, its pixels opaque."""
    names = list(files)
    assert len(names) == len(result["class_names"])
    height, width = rgb.shape[:2]
    masks = coco_mask.decode(result["masks"]) if mode == "mask" else None
    seen = 0  # objects with pixels: a faint one of the random model may have none
    for index, (name, class_name, box) in enumerate(zip(names, result["class_names"], result["boxes"], strict=True)):
        match = NAME.fullmatch(name)
        assert match, name
        assert int(match.group(1)) == index
        assert match.group(2) == class_name.replace(" ", "_")
        picture = rgba(files[name])
        if mode == "box":
            top, left, bottom, right = box_frame(box, height, width)
            assert picture.shape == (bottom - top, right - left, 4), (name, picture.shape, box)
            assert (picture[:, :, 3] == 255).all()
            np.testing.assert_array_equal(picture[:, :, :3], rgb[top:bottom, left:right])
            continue
        full = masks[:, :, index].astype(bool)
        top, left, bottom, right = mask_frame(full) or box_frame(box, height, width)
        assert picture.shape == (bottom - top, right - left, 4), (name, picture.shape, box)
        mask = full[top:bottom, left:right]
        seen += bool(mask.any())
        assert int((picture[:, :, 3] == 255).sum()) == int(full.sum())  # every pixel of the mask, nothing else
        np.testing.assert_array_equal(picture[:, :, 3], np.where(mask, 255, 0))
        np.testing.assert_array_equal(picture[:, :, :3], np.where(mask[:, :, None], rgb[top:bottom, left:right], 0))
    if mode == "mask" and names:
        assert seen > len(names) // 2, f"only {seen} of {len(names)} cut-outs show any pixel"
