"""The overlay of one frame, drawn from the decoded frame and its JSON line: each object's mask, outline,
box and label in its track's colour (stable across frames, so nothing flickers)."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from handler.engine.overlay import MASK_OPACITY, class_colour

FONT = cv2.FONT_HERSHEY_SIMPLEX


def track_colour(track_id: int) -> tuple[int, int, int]:
    """A stable, saturated RGB colour per track id (the engine's golden-ratio hue steps)."""
    return class_colour(int(track_id))


def draw_frame(rgb: np.ndarray, line: dict[str, Any]) -> np.ndarray:
    """A new RGB array: ``rgb`` with ``line``'s objects drawn (masks decoded one at a time; ``rgb`` untouched).
    A line without masks gets boxes and labels only."""
    out = rgb.copy()
    height, width = out.shape[:2]
    masks = line.get("masks") or [None] * len(line["boxes"])
    labels = []
    for rle, box, name, track in zip(masks, line["boxes"], line["class_names"], line["track_ids"], strict=True):
        colour = track_colour(track)
        if rle is not None:
            _paint(out, rle, colour)
        labels.append((box, f"{name} #{track}", colour))
    for box, text, colour in labels:  # on top of every mask
        left, top, right, bottom = (int(value) for value in box)
        cv2.rectangle(out, (left, top), (right, bottom), colour, 1 + max(height, width) // 800)
        _label(out, text, left, top, colour)
    return out


def _paint(out: np.ndarray, rle: dict[str, Any], colour: tuple[int, int, int]) -> None:
    """Blend one object's mask in its box region and outline it; only the box's pixels are touched."""
    counts = rle["counts"]
    rle = {"size": rle["size"], "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
    left, top, box_w, box_h = (int(value) for value in mask_utils.toBbox(rle))
    if box_w <= 0 or box_h <= 0:
        return
    mask = mask_utils.decode(rle)[top : top + box_h, left : left + box_w]
    tile = out[top : top + box_h, left : left + box_w]
    chosen = mask.astype(bool)
    blended = tile[chosen].astype(np.float32) * (1 - MASK_OPACITY) + np.array(colour, np.float32) * MASK_OPACITY
    tile[chosen] = blended.round().astype(np.uint8)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE, offset=(left, top))
    cv2.drawContours(out, contours, -1, colour, 1)


def _label(out: np.ndarray, text: str, left: int, top: int, colour: tuple[int, int, int]) -> None:
    """``text`` on a filled tag of the track's colour above the box (inside it at the top edge)."""
    scale = max(0.4, min(out.shape[:2]) / 900)
    (text_w, text_h), base = cv2.getTextSize(text, FONT, scale, 1)
    top = max(top, text_h + base + 2)
    cv2.rectangle(out, (left, top - text_h - base - 2), (left + text_w + 2, top), colour, -1)
    ink = (0, 0, 0) if sum(colour) > 380 else (255, 255, 255)
    cv2.putText(out, text, (left + 1, top - base - 1), FONT, scale, ink, 1, cv2.LINE_AA)
