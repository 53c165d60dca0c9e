"""The picture of a result: masks, outlines, boxes and labels drawn over the image, as PNG.

The long side is capped (``max_side``): the image is scaled down first and each object's mask is drawn from
its crop, scaled, one object at a time on the one canvas, as the engine hands it over (an ``ObjectConsumer``).
Uncapped, the pixels are those of drawing the full-size masks.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import cv2
import numpy as np

from handler.engine.results import Segmentation, outer_contours
from handler.model import MaskCrop

MASK_OPACITY = 0.45
FONT = cv2.FONT_HERSHEY_SIMPLEX


def class_colour(class_id: int) -> tuple[int, int, int]:
    """A stable, saturated RGB colour per class (golden-ratio hue steps)."""
    hue = int((class_id * 0.618033988749895 % 1.0) * 180)
    hsv = np.array([[[hue, 220, 255]]], dtype=np.uint8)
    r, g, b = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0]
    return int(r), int(g), int(b)


class OverlayDrawer:
    """``ObjectConsumer``: paints each object's mask on one canvas, scaled down to ``max_side`` first (no cap when
    None); ``finish`` draws outlines, boxes and labels and stores the PNG in ``result.overlay_png`` (or, with
    ``as_png=False``, the RGB array in ``self.image``). Keeps the canvas and each object's outline points."""

    def __init__(self, max_side: int | None = None, *, as_png: bool = True) -> None:
        self.max_side = max_side
        self.as_png = as_png
        self.image: np.ndarray | None = None

    def start(self, rgb: np.ndarray, result: Segmentation) -> None:
        height, width = rgb.shape[:2]
        self._factor = min(1.0, self.max_side / max(height, width)) if self.max_side else 1.0
        if self._factor < 1.0:
            size = (max(1, round(width * self._factor)), max(1, round(height * self._factor)))
            rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        self._canvas = rgb.astype(np.float32)
        self._colours = [class_colour(int(class_id)) for class_id in result.class_ids]
        self._outlines: list[Sequence[np.ndarray]] = []

    @property
    def keeps_mask(self) -> bool:
        """Uncapped, ``prepare`` gives the crop itself (``objects.SplitConsumer``); capped, one the canvas's size."""
        return getattr(self, "_factor", 1.0) == 1.0

    def add(self, index: int, crop: MaskCrop) -> None:
        self.commit(index, self.prepare(index, crop))

    def prepare(self, index: int, crop: MaskCrop) -> tuple[MaskCrop, Sequence[np.ndarray]]:
        """Any thread (``objects.SplitConsumer``): the crop scaled to the canvas and its outline; the
        painting, whose order shows where masks overlap, is ``commit``'s."""
        height, width = self._canvas.shape[:2]
        crop = _scaled(crop, self._factor, height, width)
        return crop, outer_contours(crop)

    def commit(self, index: int, prepared: tuple[MaskCrop, Sequence[np.ndarray]]) -> None:
        crop, outline = prepared
        tile = self._canvas[crop.top : crop.bottom, crop.left : crop.right]
        colour = np.array(self._colours[index], np.float32)
        tile[crop.mask] = tile[crop.mask] * (1 - MASK_OPACITY) + colour * MASK_OPACITY
        self._outlines.append(outline)

    def finish(self, result: Segmentation) -> None:
        out = np.ascontiguousarray(self._canvas.round().astype(np.uint8))
        del self._canvas
        scale = max(out.shape[:2]) / 640
        thickness = max(1, round(2 * scale))
        font_scale = max(0.4, 0.5 * scale)
        for outline, colour in zip(self._outlines, self._colours, strict=True):
            cv2.drawContours(out, outline, -1, colour, thickness)
        factor = self._factor
        boxes = result.seed_boxes if factor == 1.0 else (result.boxes * factor).astype(np.int64).tolist()
        for box, name, score, colour in zip(boxes, result.class_names, result.seed_scores, self._colours, strict=True):
            x1, y1, x2, y2 = box
            cv2.rectangle(out, (x1, y1), (x2, y2), colour, thickness)
            _draw_label(out, f"{name} {score}%", (x1, y1), colour, font_scale, thickness)
        self._outlines = []
        if self.as_png:
            result.overlay_png = encode_png(out)
        else:
            self.image = out


def render(rgb: np.ndarray, result: Segmentation, crops: Iterable[MaskCrop], max_side: int | None = None) -> np.ndarray:
    """The overlay of ``crops`` (one per object of ``result``) as a new RGB array, its long side at most
    ``max_side`` (no cap when None); ``rgb`` is not modified."""
    drawer = OverlayDrawer(max_side, as_png=False)
    drawer.start(rgb, result)
    for index, crop in enumerate(crops):
        drawer.add(index, crop)
    drawer.finish(result)
    assert drawer.image is not None
    return drawer.image


def encode_png(rgb: np.ndarray) -> bytes:
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return encoded.tobytes()


def _scaled(crop: MaskCrop, factor: float, height: int, width: int) -> MaskCrop:
    """The crop on the scaled-down canvas (nearest neighbour: a mask stays a mask)."""
    if factor == 1.0:
        return crop
    top, left = min(math.floor(crop.top * factor), height - 1), min(math.floor(crop.left * factor), width - 1)
    bottom = min(height, max(top + 1, math.ceil(crop.bottom * factor)))
    right = min(width, max(left + 1, math.ceil(crop.right * factor)))
    mask = cv2.resize(crop.mask.view(np.uint8), (right - left, bottom - top), interpolation=cv2.INTER_NEAREST)
    return MaskCrop(top=top, left=left, mask=mask.astype(bool))


def _draw_label(
    out: np.ndarray, text: str, corner: tuple[int, int], colour: tuple[int, int, int], font_scale: float, thickness: int
) -> None:
    """White-or-black text on a filled box of the class colour: readable on any background."""
    (text_w, text_h), baseline = cv2.getTextSize(text, FONT, font_scale, thickness)
    x, y = corner
    top = y - text_h - baseline - 4
    if top < 0:  # no room above the box: put the label inside it
        top = y
    x = min(max(x, 0), max(out.shape[1] - text_w - 4, 0))
    cv2.rectangle(out, (x, top), (x + text_w + 4, top + text_h + baseline + 4), colour, cv2.FILLED)
    luminance = 0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2]
    ink = (0, 0, 0) if luminance > 140 else (255, 255, 255)
    cv2.putText(out, text, (x + 2, top + text_h + 2), FONT, font_scale, ink, thickness, cv2.LINE_AA)
