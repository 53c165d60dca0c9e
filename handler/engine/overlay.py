"""The picture of a result: masks, outlines, boxes and labels drawn over the image, as PNG.

The long side is capped (``max_side``): the image is scaled down first and each object's mask is drawn from
its crop, scaled, one object at a time on the one canvas. Uncapped, the pixels are those of drawing the
full-size masks.
"""

from __future__ import annotations

import math

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


def render(rgb: np.ndarray, result: Segmentation, max_side: int | None = None) -> np.ndarray:
    """A new RGB array, its long side at most ``max_side`` (no cap when None); ``rgb`` is not modified."""
    height, width = rgb.shape[:2]
    factor = min(1.0, max_side / max(height, width)) if max_side else 1.0
    if factor < 1.0:
        size = (max(1, round(width * factor)), max(1, round(height * factor)))
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        height, width = rgb.shape[:2]
    canvas = rgb.astype(np.float32)
    scale = max(height, width) / 640
    thickness = max(1, round(2 * scale))
    font_scale = max(0.4, 0.5 * scale)
    colours = [class_colour(int(class_id)) for class_id in result.class_ids]
    crops = [_scaled(crop, factor, height, width) for crop in result.masks]
    for crop, colour in zip(crops, colours, strict=True):
        tile = canvas[crop.top : crop.bottom, crop.left : crop.right]
        tile[crop.mask] = tile[crop.mask] * (1 - MASK_OPACITY) + np.array(colour, np.float32) * MASK_OPACITY
    out = np.ascontiguousarray(canvas.round().astype(np.uint8))
    del canvas
    for crop, colour in zip(crops, colours, strict=True):
        cv2.drawContours(out, outer_contours(crop), -1, colour, thickness)
    boxes = result.seed_boxes if factor == 1.0 else (result.boxes * factor).astype(np.int64).tolist()
    for box, name, score, colour in zip(boxes, result.class_names, result.seed_scores, colours, strict=True):
        x1, y1, x2, y2 = box
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, thickness)
        _draw_label(out, f"{name} {score}%", (x1, y1), colour, font_scale, thickness)
    return out


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


def render_png(rgb: np.ndarray, result: Segmentation, max_side: int | None = None) -> bytes:
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(render(rgb, result, max_side), cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return encoded.tobytes()
