"""Stock PixelLib next to our Segmenter on one image: its own ``load_model`` + ``segmentFrame``, and the stage
tensors (backbone features, proposals, box scores, mask logits) of both models recorded by hooks."""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from masks import full_mask

from handler.model import Segmenter, pixellib_instance
from handler.model.pixellib import Instances

# By name: PixelLib's after handler.model (its Pillow shim first); each module's ``mask_rcnn_inference`` is
# where ``recording`` takes the mask logits.
stock_mask_head = importlib.import_module("pixellib.torchbackend.instance.point_rend.mask_head")
ours_mask_head = importlib.import_module("handler.model.mask_head")


def load_stock(path: Path, backbone: str, confidence: float, num_classes: int = 80):
    """``instanceSegmentation().load_model(path, confidence, detection_speed="rapid", network_backbone=...)``.

    PixelLib has no parameter for a class count: for a model with its own classes, its config gets the count
    before ``load_model`` merges the backbone's file (which does not set it), as detectron2's training config
    does, and stock builds and loads the model from there by itself.
    """
    stock = pixellib_instance.instanceSegmentation()
    stock.cfg.MODEL.ROI_HEADS.NUM_CLASSES = stock.cfg.MODEL.POINT_HEAD.NUM_CLASSES = num_classes
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stock.load_model(str(path), confidence=confidence, detection_speed="rapid", network_backbone=backbone)
    return stock


@dataclass
class Stages:
    """One forward's intermediate tensors."""

    features: dict[str, torch.Tensor] = field(default_factory=dict)
    proposals: torch.Tensor | None = None  # (P, 4) boxes, model input coordinates
    objectness: torch.Tensor | None = None  # (P,)
    box_scores: torch.Tensor | None = None  # (P, C + 1) class logits of every proposal
    mask_logits: torch.Tensor | None = None  # (R, 224, 224) the predicted class's final logits


@contextmanager
def recording(model: torch.nn.Module, mask_namespace: object) -> Iterator[Stages]:
    """Record ``model``'s stage tensors during the forwards inside the block."""
    stages = Stages()

    def on_backbone(_module, _args, output):
        stages.features = {name: value.detach().clone() for name, value in output.items()}

    def on_proposals(_module, _args, output):
        proposals = output[0][0]
        stages.proposals = proposals.proposal_boxes.tensor.detach().clone()
        stages.objectness = proposals.objectness_logits.detach().clone()

    def on_box_predictor(_module, _args, output):
        stages.box_scores = output[0].detach().clone()

    original = mask_namespace.mask_rcnn_inference

    def on_mask_logits(logits: torch.Tensor, instances: list[Instances]) -> None:
        classes = torch.cat([x.pred_classes for x in instances])
        rows = torch.arange(len(classes))
        channel = classes if logits.shape[1] > 1 else torch.zeros_like(classes)  # ours keeps one channel
        stages.mask_logits = logits[rows, channel].detach().clone()
        original(logits, instances)

    handles = [
        model.backbone.register_forward_hook(on_backbone),
        model.proposal_generator.register_forward_hook(on_proposals),
        model.roi_heads.box_predictor.register_forward_hook(on_box_predictor),
    ]
    mask_namespace.mask_rcnn_inference = on_mask_logits
    try:
        yield stages
    finally:
        mask_namespace.mask_rcnn_inference = original
        for handle in handles:
            handle.remove()


@dataclass
class Side:
    boxes: np.ndarray  # (N, 4) int64, truncated as segmentFrame does
    class_ids: np.ndarray
    masks: list[np.ndarray]  # N full-size (H, W) bool
    stages: Stages


def stock_side(stock, rgb: np.ndarray) -> Side:
    frame = np.ascontiguousarray(rgb[:, :, ::-1])
    with recording(stock.predictor.model, stock_mask_head) as stages:
        results, _ = stock.segmentFrame(frame.copy())
    masks = results["masks"]
    count = len(results["class_ids"])
    full = [masks[:, :, i].astype(bool) for i in range(count)] if count else []
    return Side(np.asarray(results["boxes"]), np.asarray(results["class_ids"]), full, stages)


def our_side(segmenter: Segmenter, rgb: np.ndarray, confidence: float) -> Side:
    height, width = rgb.shape[:2]
    with recording(segmenter.model, ours_mask_head) as stages:
        found = segmenter.detect(rgb, confidence=confidence, detection_speed="rapid")
    masks = [full_mask(crop, height, width) for crop in found.masks()]
    return Side(found.boxes.astype(np.int64), found.class_ids, masks, stages)


def relative_error(ours: torch.Tensor, stock: torch.Tensor) -> float:
    """``|ours - stock| / |stock|`` (Frobenius norms); infinite when the shapes differ (another count of
    proposals or objects)."""
    if ours.shape != stock.shape:
        return float("inf")
    return float(torch.linalg.vector_norm(ours - stock) / torch.linalg.vector_norm(stock).clamp_min(1e-30))


def stage_errors(ours: Stages, stock: Stages) -> dict[str, float]:
    """Each stage's relative error (mask logits only when there are objects)."""
    errors = {"features": max(relative_error(ours.features[k], v) for k, v in stock.features.items())}
    errors["proposals"] = relative_error(ours.proposals, stock.proposals)
    errors["objectness"] = relative_error(ours.objectness, stock.objectness)
    errors["box_scores"] = relative_error(ours.box_scores, stock.box_scores)
    if stock.mask_logits is not None and len(stock.mask_logits):
        errors["mask_logits"] = relative_error(ours.mask_logits, stock.mask_logits)
    return errors


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0
