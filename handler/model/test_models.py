"""Test models: randomly initialised PointRend weights in the real file's format (``make-test-model``).

Shipped in the package so that ``python -m handler make-test-model`` works wherever the service does (the image
too); the service itself never loads it: only the command, the tests and the benches call it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from handler.core.settings import Backbone
from handler.model.files import save_weights

if TYPE_CHECKING:
    import torch

TEST_MODEL_AUTHOR = "pointrend-lambda make-test-model (random init, NOT trained weights)"


def make_test_model(
    dest: Path,
    seed: int = 0,
    *,
    dense: bool = False,
    worst: bool = False,
    backbone: Backbone = "resnet50",
    classes: Sequence[str] | None = None,
) -> Path:
    """A randomly initialised PointRend in exactly the real file's format.

    The real ``pointrend_resnet50.pkl`` is a plain pickle ``{"model": {name: ndarray}, "__author__": ...}``
    that PixelLib's (detectron2's) checkpointer reads; this writes the same structure with the same keys.
    Its frozen batch-norms carry trained-like statistics (``trained_like_batchnorms``).
    ``dense``: the crowded worst case, 100 objects (PixelLib's per-image cap) on any image (``dense_detector``).
    ``worst``: the memory worst case, boxes as large as the model can make them (``worst_detector``).
    ``backbone``: PixelLib's resnet50 (R50-FPN) or resnet101 (X-101-32x8d-FPN). ``classes``: a model with
    these classes instead of COCO's 80 (load it with ``SEG_CLASS_NAMES`` naming them in this order).
    """
    import torch

    from handler.model.pixellib import build_pointrend

    torch.manual_seed(seed)
    model = build_pointrend(backbone, len(classes) if classes else 80)
    trained_like_batchnorms(model, seed)
    if dense:
        dense_detector(model)
    if worst:
        worst_detector(model)
    weights = {name: tensor.detach().cpu().numpy() for name, tensor in model.state_dict().items()}
    return save_weights(dest, weights, TEST_MODEL_AUTHOR)


def trained_like_batchnorms(model: torch.nn.Module, seed: int = 0) -> int:
    """Give every frozen batch-norm per-channel statistics that are not the identity, as trained ones are.

    detectron2 initialises them to weight 1, bias 0, mean 0, variance 1: folding such a norm into its
    convolution changes nothing, so a test on it cannot tell a faithful fold from a wrong one. Here each
    channel gets a mean and a variance (0.5 to 2) and the affine part that turns them into a scale ``s`` of
    0.7 to 1.3 and a shift ``t`` of -0.1 to 0.1: ``y = s * x + t``, so activations keep their scale (a
    random network stays as lively as before) while weight, bias, mean and variance all differ from the
    identity, and the fold's ``weight * rsqrt(var + eps)`` and ``bias - mean * scale`` are real arithmetic.
    Returns how many norms were set.
    """
    import torch

    from handler.model.pixellib import FrozenBatchNorm2d

    generator = torch.Generator().manual_seed(seed + 1)
    count = 0
    for module in model.modules():
        if isinstance(module, FrozenBatchNorm2d):
            channels = module.weight.numel()

            def draw(low: float, high: float, n: int = channels) -> torch.Tensor:
                return low + (high - low) * torch.rand(n, generator=generator)

            mean, var, scale, shift = draw(-0.5, 0.5), draw(0.5, 2.0), draw(0.7, 1.3), draw(-0.1, 0.1)
            module.running_mean.copy_(mean)
            module.running_var.copy_(var)
            module.weight.copy_(scale * torch.sqrt(var + module.eps))
            module.bias.copy_(shift + mean * scale)
            count += 1
    return count


DENSE_CLASS = 0  # the first class ("person" in COCO): a crowd
DENSE_LOGIT = 30.0


def dense_detector(model: torch.nn.Module) -> None:
    """Make every RPN anchor a proposal and every proposal a certain ``person``: the crowded worst case.

    Random RPN and box regressions blow boxes up to the image's edges (a handful survive the NMS), and the
    random objectness ranks one FPN level first (all boxes one size). With zero deltas and zero objectness
    the proposals are the anchors themselves, all levels alike (32 to 512 px at three aspect ratios on the
    model input), and the boxes are the proposals. A zero-weight box classifier with a bias of +30 for one
    class gives that class a softmax score of exactly 1.0 in float32 for every proposal, on any image and at
    any confidence below 1; the NMS keeps hundreds and PixelLib's per-image cap keeps 100.
    """
    import torch

    box_predictor = _anchors_as_boxes(model)
    with torch.no_grad():
        box_predictor.cls_score.bias[DENSE_CLASS] = DENSE_LOGIT


WORST_SCORE_FLOOR = 0.01  # each class's score is 1/80: ask for confidence below this


def worst_detector(model: torch.nn.Module) -> None:
    """Make every proposal a box as large as the model can make it, for every class: the memory worst case.

    The proposals are the anchors (as ``dense_detector``). Each class's box regression is a zero-weight layer
    whose width and height deltas sit at detectron2's clamp (``scale_clamp``, log(1000/16)): every box is its
    anchor scaled up 62.5 times about the anchor's centre, then clipped to the image. Any anchor wider and taller
    than 1/31 of the model input (43 px at 1333) becomes a box covering the whole image. Equal logits for the 80
    classes (background far below) give each class a score of 1/80 on every proposal: at ``confidence`` below
    ``WORST_SCORE_FLOOR`` each class keeps its whole-image box through its NMS (every other box overlaps it by
    more than half): at the normal speed, 80 objects of the image's full size. At rapid speed the model input
    is small and proposals clipped to a few pixels at the image's border grow into narrower boxes, which the
    NMS keeps too: PixelLib's cap of 100 then keeps some of those in place of some classes' whole-image boxes.
    Masks stay random.
    """
    import torch

    box_predictor = _anchors_as_boxes(model)
    with torch.no_grad():
        weights = box_predictor.box2box_transform.weights  # deltas are divided by these
        clamp = box_predictor.box2box_transform.scale_clamp
        box_predictor.bbox_pred.bias[2::4] = 2 * clamp * weights[2]  # dw past the clamp
        box_predictor.bbox_pred.bias[3::4] = 2 * clamp * weights[3]  # dh past the clamp
        box_predictor.cls_score.bias[-1] = -DENSE_LOGIT  # background: never


def _anchors_as_boxes(model: torch.nn.Module) -> torch.nn.Module:
    """Zero the RPN's deltas and objectness and the box head's regression and classifier: the proposals are
    the anchors themselves, all levels alike, and the boxes the proposals. Returns the box predictor."""
    import torch

    rpn = model.proposal_generator.rpn_head
    box_predictor = model.roi_heads.box_predictor
    with torch.no_grad():
        for layer in (rpn.anchor_deltas, rpn.objectness_logits, box_predictor.bbox_pred, box_predictor.cls_score):
            layer.weight.zero_()
            layer.bias.zero_()
    return box_predictor
