"""Speed-ups that keep stock PixelLib's outputs, each a layer class of its own swapped into the model.

``optimise(model)`` is the one step that applies them: every swap puts a new module where the stock one was
(``swap.replace``), so ``repr(model)`` shows what runs, and no method of a live module is rebound.

========================  =======================================  =====================================
layer                     replaces                                 what it saves
========================  =======================================  =====================================
``FoldedConv2d``          ``Conv2d`` + ``FrozenBatchNorm2d``       one op per layer (fold.py)
``WinogradConv2d``        wide 3x3 convolutions (``reach()``)      3/4 of their products (winograd.py)
``ThreadedROIAlign``      the box head's ``ROIAlign``              one thread's wait (roi_align.py)
``PredictedClassMaskHead``  ``PointRendMaskHead``                  79/80 of the refinement (mask_head.py)
========================  =======================================  =====================================

What is identical and what is within tolerance, and the test that shows it: docs/models.md (equivalence).
"""

from __future__ import annotations

import torch

from handler.model.fold import FoldedConv2d
from handler.model.mask_head import PredictedClassMaskHead
from handler.model.pixellib import Conv2d, FrozenBatchNorm2d, PointRendMaskHead, ROIAlign
from handler.model.roi_align import ThreadedROIAlign
from handler.model.swap import UnsuitableModel, replace
from handler.model.winograd import Reach, WinogradConv2d, reach

MASK_HEAD = "roi_heads.mask_head"

__all__ = [
    "UnsuitableModel",
    "fold_batchnorms",
    "optimise",
    "predicted_class_mask_head",
    "thread_roi_aligns",
    "use_winograd",
]


def fold_batchnorms(model: torch.nn.Module) -> int:
    """Every ``Conv2d`` followed by a frozen batch norm becomes a ``FoldedConv2d``; how many."""
    found = [(name, layer) for name, layer in model.named_modules() if _has_frozen_norm(layer)]
    for name, layer in found:
        replace(model, name, FoldedConv2d.of(layer, name))
    return len(found)


def _has_frozen_norm(layer: torch.nn.Module) -> bool:
    return isinstance(layer, Conv2d) and isinstance(getattr(layer, "norm", None), FrozenBatchNorm2d)


def use_winograd(model: torch.nn.Module, where: Reach | None = None) -> int:
    """Every 3x3 convolution within ``where`` (default: this CPU's ``reach()``) becomes a ``WinogradConv2d``
    (its batch norm folded first, if it has one); how many."""
    where = where or reach()
    found = [(name, layer) for name, layer in model.named_modules() if WinogradConv2d.suits(layer, where)]
    for name, layer in found:
        replace(model, name, WinogradConv2d.of(layer, name, where))
    return len(found)


def thread_roi_aligns(model: torch.nn.Module) -> int:
    """Every ``ROIAlign`` becomes a ``ThreadedROIAlign``; how many."""
    found = [
        (name, layer)
        for name, layer in model.named_modules()
        if isinstance(layer, ROIAlign) and not isinstance(layer, ThreadedROIAlign)
    ]
    for name, layer in found:
        replace(model, name, ThreadedROIAlign.of(layer))
    return len(found)


def predicted_class_mask_head(model: torch.nn.Module) -> PredictedClassMaskHead:
    """PointRend's mask head becomes a ``PredictedClassMaskHead``; a model without PixelLib's PointRend mask
    head at ``roi_heads.mask_head`` is refused."""
    try:
        head = model.get_submodule(MASK_HEAD)
    except AttributeError:
        raise UnsuitableModel(f"{MASK_HEAD}: no such layer in {type(model).__name__}") from None
    if isinstance(head, PredictedClassMaskHead):
        return head
    if not isinstance(head, PointRendMaskHead):
        raise UnsuitableModel(f"{MASK_HEAD}: {type(head).__name__}, not PixelLib's PointRendMaskHead")
    optimised = PredictedClassMaskHead(head, MASK_HEAD)
    replace(model, MASK_HEAD, optimised)
    return optimised


def optimise(model: torch.nn.Module) -> torch.nn.Module:
    """The speed-ups that keep stock PixelLib's outputs (each pass may run alone, in any order, or again):
    frozen batch norms folded into the convolutions (identity statistics fold exactly; trained ones within
    float32 rounding), Winograd F(4x4, 3x3) for the 3x3 convolutions this CPU runs faster that way
    (``winograd.REACH``; within float32 rounding of the direct convolution), ROIAlign across torch's threads
    (the same bits), PointRend's refinement on the predicted class only, a batch of objects at a time, on
    channels-last features: on stable models the same classes, boxes and masks as stock, elsewhere each stage
    within the tolerances that tests/model/test_equivalence.py states.
    """
    predicted_class_mask_head(model)  # first: refuses a model without PointRend's head before any swap
    fold_batchnorms(model)
    use_winograd(model)
    thread_roi_aligns(model)
    return model
