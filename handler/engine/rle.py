"""COCO RLE of a full-image mask built from its crop: byte for byte ``pycocotools.mask.encode`` of the full mask.

COCO RLE runs down the columns (Fortran order: pixel (y, x) is number ``x * height + y``) and alternates
zeros and ones, starting with zeros. Outside the crop everything is zero, so the runs of ones are the crop's
own column runs moved to image positions; the zero runs between them follow. pycocotools then compresses
the uncompressed counts (``frPyObjects``), the same code path ``encode`` ends in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from pycocotools import mask as coco_mask

from handler.model.paste import MaskCrop

if TYPE_CHECKING:
    from handler.engine.results import Segmentation


class RleMasks:
    """``ObjectConsumer``: each object's COCO RLE (``crop_rle``), into ``result.masks``."""

    keeps_mask = False  # ``prepare`` gives a string, never the mask (``objects.SplitConsumer``)

    def start(self, rgb: np.ndarray, result: Segmentation) -> None:
        self._size = (result.height, result.width)
        self._masks: list[dict[str, Any]] = []

    def add(self, index: int, crop: MaskCrop) -> None:
        self.commit(index, self.prepare(index, crop))

    def prepare(self, index: int, crop: MaskCrop) -> dict[str, Any]:
        """Any thread (``objects.SplitConsumer``): the RLE, from the crop alone."""
        return crop_rle(crop, *self._size)

    def commit(self, index: int, prepared: dict[str, Any]) -> None:
        self._masks.append(prepared)

    def finish(self, result: Segmentation) -> None:
        result.masks = self._masks


def crop_rle(crop: MaskCrop, height: int, width: int) -> dict[str, Any]:
    """``{"size": [height, width], "counts": str}``, the compressed COCO RLE of the crop in a blank image."""
    starts, ends = _one_runs(crop, height)
    counts = np.empty(2 * len(starts) + 1, dtype=np.int64)
    counts[0::2] = np.concatenate((starts, [height * width])) - np.concatenate(([0], ends))  # zeros before, after
    counts[1::2] = ends - starts
    if len(starts) and counts[-1] == 0:
        counts = counts[:-1]  # pycocotools ends on the last run, with no empty run after it
    rle = coco_mask.frPyObjects({"size": [height, width], "counts": counts.tolist()}, height, width)
    return {"size": [height, width], "counts": rle["counts"].decode("ascii")}


def _one_runs(crop: MaskCrop, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Image positions (Fortran order) where each run of ones starts and ends (exclusive), in order."""
    columns = np.zeros((crop.mask.shape[1], crop.mask.shape[0] + 2), dtype=np.int8)
    columns[:, 1:-1] = crop.mask.T
    column, row = np.nonzero(np.diff(columns, axis=1))  # edges, column by column, top to bottom
    positions = (crop.left + column) * height + crop.top + row
    starts, ends = positions[0::2], positions[1::2]
    # A run reaching the image's last row continues at the top of the next column when the crop spans the
    # full height: in the image that is one run.
    joined = np.flatnonzero(starts[1:] == ends[:-1])
    return np.delete(starts, joined + 1), np.delete(ends, joined)
