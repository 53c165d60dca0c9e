"""The picture of a result: masks, outlines, boxes and labels drawn over the image, as PNG."""

from __future__ import annotations

import cv2
import numpy as np

from handler.engine.results import Segmentation

MASK_OPACITY = 0.45
FONT = cv2.FONT_HERSHEY_SIMPLEX


def class_colour(class_id: int) -> tuple[int, int, int]:
    """A stable, saturated RGB colour per class (golden-ratio hue steps)."""
    hue = int((class_id * 0.618033988749895 % 1.0) * 180)
    hsv = np.array([[[hue, 220, 255]]], dtype=np.uint8)
    r, g, b = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0]
    return int(r), int(g), int(b)


def render(rgb: np.ndarray, result: Segmentation) -> np.ndarray:
    """A new RGB array; ``rgb`` is not modified."""
    canvas = rgb.astype(np.float32)
    height, width = rgb.shape[:2]
    scale = max(height, width) / 640
    thickness = max(1, round(2 * scale))
    font_scale = max(0.4, 0.5 * scale)
    colours = [class_colour(int(class_id)) for class_id in result.class_ids]
    for mask, colour in zip(result.masks, colours, strict=True):
        canvas[mask] = canvas[mask] * (1 - MASK_OPACITY) + np.array(colour, np.float32) * MASK_OPACITY
    out = np.ascontiguousarray(canvas.round().astype(np.uint8))
    for mask, colour in zip(result.masks, colours, strict=True):
        contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(out, contours, -1, colour, thickness)
    for box, name, score, colour in zip(
        result.seed_boxes, result.class_names, result.seed_scores, colours, strict=True
    ):
        x1, y1, x2, y2 = box
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, thickness)
        _draw_label(out, f"{name} {score}%", (x1, y1), colour, font_scale, thickness)
    return out


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


def render_png(rgb: np.ndarray, result: Segmentation) -> bytes:
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(render(rgb, result), cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return encoded.tobytes()
