"""Segmenter: PixelLib's PointRend built once per process, run on in-memory RGB arrays.

``segmentFrame`` in PixelLib draws on the caller's array and returns scores as a torch tensor; here the array
is never touched (the model gets its own BGR copy) and everything is numpy. PixelLib returns N full-size
masks (H, W, N); here ``detect`` returns the boxes, scores and classes with the model's small ROI masks, and
``Detections.masks`` pastes one object's mask at a time, inside its box (``paste.MaskCrop``, the same
pixels), for the caller to use and drop before the next. Why it is faster: docs/performance.md.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from handler.allocator import tune_allocator
from handler.errors import InvalidRequest
from handler.model.checkpoint import load_weights, read_weights
from handler.model.optimise import optimise
from handler.model.paste import MaskCrop, paste_one, postprocess_boxes
from handler.model.pixellib import COCO_CLASS_NAMES, MODEL_NAME, SPEED_SIZES, T, build_pointrend
from handler.settings import DetectionSpeed, Settings, get_settings


@dataclass(frozen=True)
class Detections:
    """Raw model output for one image, in original image coordinates; masks pasted on demand (``masks``)."""

    height: int
    width: int
    boxes: np.ndarray  # (N, 4) float32, x1 y1 x2 y2
    scores: np.ndarray  # (N,) float32 in 0..1
    class_ids: np.ndarray  # (N,) int64, 0-based COCO index
    roi_masks: torch.Tensor  # (N, M, M) float, the mask head's output for each box
    forward_ms: float

    def __len__(self) -> int:
        return len(self.boxes)

    def masks(self, indices: Sequence[int] | None = None) -> Iterator[MaskCrop]:
        """Each object's full-resolution mask inside its box, pasted when asked for (in ``indices`` order, all
        by default): hold only the one in hand, so memory never holds more than one object's mask."""
        boxes = torch.from_numpy(self.boxes)
        for index in range(len(self)) if indices is None else indices:
            yield self._paste(boxes[index], int(index))  # no local name: the last crop is not kept meanwhile

    def _paste(self, box: torch.Tensor, index: int) -> MaskCrop:
        with torch.inference_mode():
            return paste_one(self.roi_masks[index], box, self.height, self.width)


class Segmenter:
    """PointRend R50-FPN (PixelLib), loaded once; ``detect`` is safe to call from many threads."""

    def __init__(self, settings: Settings, *, channels_last: bool | None = None) -> None:
        self.settings = settings
        if settings.torch_threads:
            torch.set_num_threads(settings.torch_threads)
        tune_allocator()
        started = time.perf_counter()
        self.model = build_pointrend(init_weights=False)
        load_weights(self.model, read_weights(settings.model_path, settings.model_sha256), settings.model_path)
        if channels_last is None:
            channels_last = settings.channels_last
        optimise(self.model, channels_last=channels_last)
        self.channels_last = channels_last
        self.load_ms = (time.perf_counter() - started) * 1000
        self.model_sha256 = settings.model_sha256
        self.class_names = COCO_CLASS_NAMES
        self._box_predictor = self.model.roi_heads.box_predictor
        self._lock = threading.Lock()

    def detect(
        self,
        rgb: np.ndarray,
        confidence: float | None = None,
        detection_speed: DetectionSpeed | None = None,
    ) -> Detections:
        """Run the model on an (H, W, 3) uint8 RGB array; the array is not modified."""
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"expected an (H, W, 3) uint8 RGB array, got {rgb.shape} {rgb.dtype}")
        height, width = rgb.shape[:2]
        min_size, max_size = SPEED_SIZES[detection_speed or self.settings.detection_speed]
        # PIL resizes each channel on its own: resizing RGB and then flipping to BGR (the model was trained on
        # BGR, detectron2's default) gives stock's input without a full-size BGR copy of the photo.
        resized = T.ResizeShortestEdge([min_size, min_size], max_size).get_transform(rgb).apply_image(rgb)
        image = torch.as_tensor(resized[:, :, ::-1].astype("float32").transpose(2, 0, 1))
        threshold = self.settings.confidence if confidence is None else confidence
        with self._lock, torch.inference_mode():
            started = time.perf_counter()
            self._box_predictor.test_score_thresh = threshold
            raw = self.model.inference([{"image": image}], do_postprocess=False)[0]
            forward_ms = (time.perf_counter() - started) * 1000
        with torch.inference_mode():
            instances, roi_masks = postprocess_boxes(raw, height, width)
        return Detections(
            height=height,
            width=width,
            boxes=instances.pred_boxes.tensor.numpy().astype(np.float32),
            scores=instances.scores.numpy().astype(np.float32),
            class_ids=instances.pred_classes.numpy().astype(np.int64),
            roi_masks=roi_masks,
            forward_ms=forward_ms,
        )

    @property
    def model_info(self) -> dict[str, str | None]:
        return {"name": MODEL_NAME, "sha256": self.model_sha256}

    def validate_classes(self, classes: Iterable[str] | None) -> frozenset[str] | None:
        if classes is None:
            return None
        wanted = frozenset(name.strip() for name in classes if name.strip())
        unknown = sorted(wanted - set(self.class_names))
        if unknown:
            raise InvalidRequest(f"unknown class names {unknown}; the model knows the 80 COCO classes")
        return wanted or None


@lru_cache(maxsize=1)
def get_segmenter() -> Segmenter:
    """The process-wide model, built on first use (in Lambda: during the init phase)."""
    return Segmenter(get_settings())
