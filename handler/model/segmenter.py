"""Segmenter: PixelLib's PointRend built once per process, run on in-memory RGB arrays.

``segmentFrame`` in PixelLib draws on the caller's array and returns scores as a torch tensor; here the array
is never touched (the model gets its own BGR copy) and everything is numpy. PixelLib returns N full-size
masks (H, W, N); here ``detect`` returns the boxes, scores and classes with the model's small ROI masks, and
``Detections.masks`` pastes one object's mask at a time, inside its box (``paste.MaskCrop``, the same
pixels), for the caller to use and drop before the next. Why it is faster: docs/performance.md.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from handler.core.allocator import tune_allocator
from handler.core.errors import InvalidRequest, ModelFileError
from handler.core.settings import DetectionSpeed, Settings, get_settings
from handler.model.checkpoint import Checkpoint, load_weights, read_checkpoint
from handler.model.optimise import optimise
from handler.model.paste import MaskCrop, paste_one, postprocess_boxes
from handler.model.pixellib import COCO_CLASS_NAMES, SPEED_SIZES, T, build_pointrend, model_name
from handler.model.torch_thread import torch_thread


@dataclass(frozen=True)
class Detections:
    """Raw model output for one image, in original image coordinates; masks pasted on demand (``masks``)."""

    height: int
    width: int
    boxes: np.ndarray  # (N, 4) float32, x1 y1 x2 y2
    scores: np.ndarray  # (N,) float32 in 0..1
    class_ids: np.ndarray  # (N,) int64, 0-based index into the model's class names
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


def class_names_for(checkpoint: Checkpoint, names: tuple[str, ...] | None, source: Path) -> tuple[str, ...]:
    """The model's class names: ``SEG_CLASS_NAMES`` when set, else COCO's 80; their count must be the
    checkpoint's (its box classifier's rows, less detectron2's background row)."""
    count = checkpoint.num_classes
    if names is None:
        if count == len(COCO_CLASS_NAMES):
            return COCO_CLASS_NAMES
        raise ModelFileError(
            f"{source} has {count} classes, not COCO's 80: name them in order with SEG_CLASS_NAMES "
            "(a comma-separated list or a file with one name per line)"
        )
    if len(names) != count:
        raise ModelFileError(f"{source} has {count} classes but SEG_CLASS_NAMES names {len(names)}: {list(names)[:5]}")
    if len(set(names)) != len(names):
        twice = sorted(name for name in set(names) if names.count(name) > 1)
        raise ModelFileError(f"SEG_CLASS_NAMES names a class twice: {twice}")
    return names


class Segmenter:
    """PixelLib's PointRend (R50 or X-101 FPN, COCO's or its own classes), loaded once; ``detect`` is safe to
    call from many threads. The load and every forward pass run on the process's one model thread
    (``torch_thread``), one image at a time."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        torch_thread().run(self._load, settings)

    def _load(self, settings: Settings) -> None:
        if settings.torch_threads:
            torch.set_num_threads(settings.torch_threads)
        tune_allocator()
        started = time.perf_counter()
        checkpoint = read_checkpoint(settings.model_path, settings.model_sha256)
        self.backbone = settings.model_backbone
        if checkpoint.backbone != self.backbone:
            raise ModelFileError(
                f"{settings.model_path} holds {checkpoint.backbone} weights but SEG_MODEL_BACKBONE is "
                f"{self.backbone}: set SEG_MODEL_BACKBONE={checkpoint.backbone}"
            )
        self.class_names = class_names_for(checkpoint, settings.class_name_list, settings.model_path)
        self.model = build_pointrend(self.backbone, len(self.class_names), init_weights=False)
        architecture = f"PointRend {self.backbone} with {len(self.class_names)} classes"
        load_weights(self.model, checkpoint.weights, settings.model_path, architecture)
        optimise(self.model)
        self.load_ms = (time.perf_counter() - started) * 1000
        self.model_sha256 = checkpoint.sha256  # of the file read, pinned or not
        self._box_predictor = self.model.roi_heads.box_predictor

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
        return torch_thread().run(self._forward, image, threshold, height, width)

    def _forward(self, image: torch.Tensor, threshold: float, height: int, width: int) -> Detections:
        with torch.inference_mode():
            started = time.perf_counter()
            self._box_predictor.test_score_thresh = threshold  # the one thread runs one image at a time
            raw = self.model.inference([{"image": image}], do_postprocess=False)[0]
            forward_ms = (time.perf_counter() - started) * 1000
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
    def model_name(self) -> str:
        return model_name(self.backbone)

    @property
    def model_info(self) -> dict[str, object]:
        """What every result says of the model: its name, backbone, the weights file's sha256, its classes."""
        return {
            "name": self.model_name,
            "sha256": self.model_sha256,
            "backbone": self.backbone,
            "classes": list(self.class_names),
        }

    def validate_classes(self, classes: Iterable[str] | None) -> frozenset[str] | None:
        if classes is None:
            return None
        wanted = frozenset(name.strip() for name in classes if name.strip())
        unknown = sorted(wanted - set(self.class_names))
        if unknown:
            known = "the 80 COCO classes" if self.class_names == COCO_CLASS_NAMES else f"{list(self.class_names)}"
            raise InvalidRequest(f"unknown class names {unknown}; the model knows {known}")
        return wanted or None


@lru_cache(maxsize=1)
def get_segmenter() -> Segmenter:
    """The process-wide model, built on first use (in Lambda: during the init phase)."""
    return Segmenter(get_settings())
