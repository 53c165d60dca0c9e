"""Full-size masks <-> crops, and the stock full-mask references the crop code must equal."""

from __future__ import annotations

import cv2
import numpy as np
import torch
from pycocotools import mask as coco_mask

from handler.core.settings import DetectionSpeed
from handler.model import SPEED_SIZES, MaskCrop, Segmenter
from handler.model.pixellib import Instances, T


def crop_of(mask: np.ndarray, margin: int = 1) -> MaskCrop:
    """The smallest crop (plus ``margin`` blank pixels where the image allows) holding a full-size mask."""
    rows, columns = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if not len(rows):
        return MaskCrop(0, 0, np.zeros((1, 1), bool))
    top, left = max(rows[0] - margin, 0), max(columns[0] - margin, 0)
    bottom, right = min(rows[-1] + 1 + margin, mask.shape[0]), min(columns[-1] + 1 + margin, mask.shape[1])
    return MaskCrop(int(top), int(left), mask[top:bottom, left:right].copy())


def full_mask(crop: MaskCrop, height: int, width: int) -> np.ndarray:
    full = np.zeros((height, width), bool)
    full[crop.top : crop.bottom, crop.left : crop.right] = crop.mask
    return full


def full_polygons(mask: np.ndarray) -> list[list[float]]:
    """What polygons were before crops: OpenCV's outer contours of the full-size mask."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    return [c.reshape(-1).astype(float).tolist() for c in contours if len(c) >= 3]


def stock_detect(segmenter: Segmenter, rgb: np.ndarray, confidence: float, speed: DetectionSpeed) -> Instances:
    """PixelLib's own path on the same model: BGR copy, resize, ``model(...)`` with detectron2's postprocess,
    which pastes every mask into a full-size (N, H, W) tensor."""
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    min_size, max_size = SPEED_SIZES[speed]
    resized = T.ResizeShortestEdge([min_size, min_size], max_size).get_transform(bgr).apply_image(bgr)
    image = torch.as_tensor(resized.astype("float32").transpose(2, 0, 1))
    segmenter.model.roi_heads.box_predictor.test_score_thresh = confidence
    with torch.inference_mode():
        return segmenter.model([{"image": image, "height": rgb.shape[0], "width": rgb.shape[1]}])[0]["instances"]


def stock_rle(mask: np.ndarray) -> bytes:
    return coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))["counts"]
