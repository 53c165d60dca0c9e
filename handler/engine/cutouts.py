"""Cut-outs: each object as its own picture, PixelLib's ``extract_segmented_objects`` / ``extract_from_box``.

Each is an RGBA PNG. ``mask`` mode: framed by the mask's own extent (so every pixel of the mask is in it,
also those the paste sets just outside the box), the pixels inside the mask with alpha 255 and the rest
transparent (alpha 0 and black, so no hidden background travels in the file); an empty mask gives its box,
all transparent. ``box`` mode: the object's box rounded outwards (every pixel the float box touches),
opaque. PixelLib cropped at the box truncated to ints and lost the mask's last row and column.
Named ``NN-<class>.png`` in result order (``NN`` the object's index in the result, zero-based). One object at
a time: ``CutoutWriter`` is one of the engine's per-object consumers (``handler.engine.objects``), so only one
object's mask and one cut-out's pixels exist at once, whether they go into a zip (``CutoutZip``) or one file
or S3 object each.
"""

from __future__ import annotations

import io
import json
import math
import re
import time
import zipfile
from collections.abc import Callable, Sequence
from typing import Any, Literal

import cv2
import numpy as np

from handler.engine.results import Segmentation
from handler.model import MaskCrop

CutoutMode = Literal["mask", "box"]

# An S3 or local output ``<output>.json`` has its cut-outs under ``<output>.objects/``.
OBJECTS_SUFFIX = ".objects/"
RESULT_NAME = "result.json"
MAX_CLASS_CHARS = 48
# The longest name ``cutout_name`` makes for up to 1000 objects: for key-length checks.
LONGEST_NAME = "999-" + "x" * MAX_CLASS_CHARS + ".png"


class ZipTooLarge(Exception):
    """The zip would pass its ``max_bytes`` (``size``) with ``objects`` cut-outs in it; no more are made."""

    def __init__(self, size: int, objects: int) -> None:
        super().__init__(f"{size} bytes with {objects} cut-outs in it")
        self.size, self.objects = size, objects


def cutout_name(index: int, class_name: str, count: int = 100) -> str:
    """``NN-<class>.png``: the index zero-padded to sort in result order, the class in file-name-safe letters."""
    digits = max(2, len(str(max(count - 1, 0))))
    safe = re.sub(r"[^A-Za-z0-9_-]+", "_", class_name).strip("_")[:MAX_CLASS_CHARS] or "object"
    return f"{index:0{digits}d}-{safe}.png"


Region = tuple[int, int, int, int]  # top, left, bottom, right (exclusive), in image pixels


def box_region(box: Sequence[float], height: int, width: int) -> Region:
    """The box (x1, y1, x2, y2, floats) rounded outwards, inside the image, at least one pixel each way."""
    x1, y1, x2, y2 = (float(value) for value in box)
    left, top = min(max(math.floor(x1), 0), width - 1), min(max(math.floor(y1), 0), height - 1)
    right, bottom = min(max(math.ceil(x2), left + 1), width), min(max(math.ceil(y2), top + 1), height)
    return top, left, bottom, right


def mask_region(crop: MaskCrop) -> Region | None:
    """The smallest region holding every pixel of the mask; None when the mask is empty."""
    rows, columns = np.flatnonzero(crop.mask.any(axis=1)), np.flatnonzero(crop.mask.any(axis=0))
    if not len(rows):
        return None
    top, left = crop.top + int(rows[0]), crop.left + int(columns[0])
    return top, left, crop.top + int(rows[-1]) + 1, crop.left + int(columns[-1]) + 1


def cutout_png(rgb: np.ndarray, crop: MaskCrop, box: Sequence[float], mode: CutoutMode = "mask") -> bytes:
    """One object's cut-out as PNG bytes: its mask's extent, RGBA with the mask as alpha (``mask``), or its box
    rounded outwards, opaque (``box``)."""
    boxed = box_region(box, rgb.shape[0], rgb.shape[1])
    top, left, bottom, right = boxed if mode == "box" else (mask_region(crop) or boxed)
    pixels = rgb[top:bottom, left:right]
    if mode == "box":
        return _png(cv2.cvtColor(pixels, cv2.COLOR_RGB2BGRA))
    alpha = _alpha(crop, top, left, bottom, right)
    bgra = cv2.cvtColor(pixels, cv2.COLOR_RGB2BGRA)
    bgra[alpha == 0] = 0
    bgra[:, :, 3] = alpha
    return _png(bgra)


def _alpha(crop: MaskCrop, top: int, left: int, bottom: int, right: int) -> np.ndarray:
    """The mask inside the region (top, left, bottom, right) as 0/255: where the crop and the region overlap."""
    alpha = np.zeros((bottom - top, right - left), dtype=np.uint8)
    y0, x0, y1, x1 = max(top, crop.top), max(left, crop.left), min(bottom, crop.bottom), min(right, crop.right)
    if y0 < y1 and x0 < x1:
        inside = crop.mask[y0 - crop.top : y1 - crop.top, x0 - crop.left : x1 - crop.left]
        alpha[y0 - top : y1 - top, x0 - left : x1 - left] = inside.view(np.uint8) * np.uint8(255)
    return alpha


def _png(bgra: np.ndarray) -> bytes:
    ok, encoded = cv2.imencode(".png", bgra)
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return encoded.tobytes()


CutoutSink = Callable[[str, bytes], None]


class CutoutWriter:
    """``ObjectConsumer`` (``Outputs.consumers``): each object's cut-out made while its mask is in hand and
    handed to ``sink(name, png)`` (a zip, S3, a folder) before the next is pasted. ``names`` lists what was
    made, in result order; ``result.timings_ms["cutouts"]`` the time spent making and sinking them."""

    def __init__(self, sink: CutoutSink, mode: CutoutMode = "mask") -> None:
        self.sink, self.mode = sink, mode
        self.names: list[str] = []

    def start(self, rgb: np.ndarray, result: Segmentation) -> None:
        self._rgb, self._boxes, self._classes = rgb, result.boxes, result.class_names
        self.names, self._seconds = [], 0.0

    def add(self, index: int, crop: MaskCrop) -> None:
        started = time.perf_counter()
        name = cutout_name(index, self._classes[index], len(self._classes))
        self.sink(name, cutout_png(self._rgb, crop, self._boxes[index], self.mode))
        self.names.append(name)
        self._seconds += time.perf_counter() - started

    def finish(self, result: Segmentation) -> None:
        result.timings_ms["cutouts"] = self._seconds * 1000
        del self._rgb


class CutoutZip:
    """A zip streamed one cut-out at a time (``add`` is a ``CutoutWriter`` sink; PNGs stored as they are,
    being compressed already), then ``result.json`` (deflated) last, once the result is known. Past
    ``max_bytes`` it stops at once with ``ZipTooLarge``: the other cut-outs are never made."""

    def __init__(self, max_bytes: int | None = None) -> None:
        self.max_bytes = max_bytes
        self._buffer = io.BytesIO()
        self._archive = zipfile.ZipFile(self._buffer, "w")
        self._entries = 0

    def add(self, name: str, data: bytes) -> None:
        self._check(self._buffer.getbuffer().nbytes + len(data))
        self._archive.writestr(name, data, compress_type=zipfile.ZIP_STORED)
        self._entries += 1

    def finish(self, result_json: dict[str, Any]) -> bytes:
        """The whole zip, ``result.json`` last."""
        self._archive.writestr(RESULT_NAME, json.dumps(result_json), compress_type=zipfile.ZIP_DEFLATED)
        self._archive.close()
        self._check(self._buffer.getbuffer().nbytes)
        return self._buffer.getvalue()

    def _check(self, size: int) -> None:
        if self.max_bytes is not None and size > self.max_bytes:
            raise ZipTooLarge(size, self._entries)
