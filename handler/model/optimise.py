"""Speed-ups that keep stock PixelLib's outputs.

What is identical and what is within tolerance, and the test that shows it: docs/models.md (equivalence).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from handler.model.pixellib import (
    Conv2d,
    FrozenBatchNorm2d,
    PointRendMaskHead,
    generate_regular_grid_point_coords,
    get_uncertain_point_coords_on_grid,
    mask_rcnn_inference,
)
from handler.model.point_head import PredictedClassPointHead
from handler.model.roi_align import threaded_roi_align
from handler.model.winograd import use_winograd


def fold_frozen_batchnorms(model: torch.nn.Module) -> int:
    """Fold each frozen BN into the convolution before it (same maths, one op fewer per layer).

    The scale and shift are rounded once into the weights instead of once more per activation: exact for
    identity statistics, within float32 rounding of stock for trained ones (docs/models.md has the figures).
    """
    folded = 0
    for module in model.modules():
        if isinstance(module, Conv2d) and isinstance(module.norm, FrozenBatchNorm2d):
            norm = module.norm
            scale = norm.weight * (norm.running_var + norm.eps).rsqrt()
            shift = norm.bias - norm.running_mean * scale
            with torch.no_grad():
                module.weight.mul_(scale.reshape(-1, 1, 1, 1))
                bias = shift if module.bias is None else module.bias * scale + shift
                module.bias = torch.nn.Parameter(bias, requires_grad=False)
            module.norm = None
            folded += 1
    return folded


OBJECTS_PER_BATCH = 25


def predicted_class_subdivision(mask_head: PointRendMaskHead) -> None:
    """PointRend's mask refinement on the predicted class's channel only.

    PixelLib upsamples, scores and scatters the mask logits of all 80 classes at every subdivision step
    (up to 224x224 per box) and keeps one of them at the end. Bilinear upsampling, the uncertainty map and
    the scatter treat channels independently, so taking the predicted class's channel of each point
    prediction first gives the same masks at 1/80 of that work (the logits can differ in their last bits: one
    channel is upsampled in another vector order than 80).
    """

    head = PredictedClassPointHead(mask_head.point_head)

    def refine(features, boxes, classes, coarse):
        """The predicted class's mask logits for one image's objects ``boxes`` (a Boxes) from their coarse
        masks: PixelLib's subdivision steps on that channel alone."""
        terms = head.project(coarse, classes)
        resolution = mask_head.mask_point_subdivision_init_resolution
        mask_logits = None
        for _ in range(mask_head.mask_point_subdivision_steps + 1):
            if mask_logits is None:
                point_coords = generate_regular_grid_point_coords(classes.size(0), resolution, classes.device)
            else:
                mask_logits = F.interpolate(mask_logits, scale_factor=2, mode="bilinear", align_corners=False)
                point_indices, point_coords = get_uncertain_point_coords_on_grid(
                    -torch.abs(mask_logits), mask_head.mask_point_subdivision_num_points
                )
            fine_grained_features = mask_head._point_pooler(features, [boxes], point_coords)
            logits = head(fine_grained_features, point_coords, terms, classes)  # (R, 1, P)
            if mask_logits is None:
                mask_logits = logits.reshape(-1, 1, resolution, resolution)
            else:
                count, _, height, width = mask_logits.shape
                mask_logits = (
                    mask_logits.reshape(count, 1, height * width)
                    .scatter_(2, point_indices.unsqueeze(1), logits)
                    .view(count, 1, height, width)
                )
        return mask_logits

    def subdivision_inference(features, mask_representations, instances):  # PixelLib's signature
        # Objects are refined a batch at a time: each object's points are its own, so the batches give the
        # same logits, and the point head's activations (about 1 MB an object) stay bounded.
        logits, first = [], 0
        for image in instances:
            for start in range(0, len(image), OBJECTS_PER_BATCH):
                end = min(start + OBJECTS_PER_BATCH, len(image))
                coarse = mask_representations[first + start : first + end]
                logits.append(refine(features, image.pred_boxes[start:end], image.pred_classes[start:end], coarse))
            first += len(image)
        resolution = mask_head.mask_point_subdivision_init_resolution
        mask_logits = torch.cat(logits) if logits else mask_representations.new_empty(0, 1, resolution, resolution)
        mask_rcnn_inference(mask_logits, instances)  # one channel: sigmoid, as PixelLib does for the class
        return instances

    mask_head._subdivision_inference = subdivision_inference


def channels_last_point_features(mask_head: PointRendMaskHead) -> None:
    """PointRend samples the feature map (p2) at every point of every object (its ROI pooler and each
    subdivision step: about 80,000 points of 256 channels per step with 100 objects). PyTorch's bilinear
    ``grid_sample`` reads each point's 256 channels a whole plane apart in NCHW memory, but side by side in
    channels-last memory: the same values, bit for bit, about 7x faster there. So the mask head gets its
    features channels-last, one copy of p2 per image."""
    original = mask_head.forward

    def forward(features, instances):
        if isinstance(features, dict) and not mask_head.training:
            features = {name: value.contiguous(memory_format=torch.channels_last) for name, value in features.items()}
        return original(features, instances)

    mask_head.forward = forward


def optimise(model: torch.nn.Module) -> torch.nn.Module:
    """The speed-ups that keep stock PixelLib's outputs: frozen BNs folded into the convolutions (identity
    statistics fold exactly; trained ones within float32 rounding), Winograd F(4x4, 3x3) for the 3x3
    convolutions on 128 or more channels (within float32 rounding of the direct convolution), PointRend's
    refinement on the predicted class only, a batch of objects at a time, on channels-last features (the
    same bits): on stable models the same classes, boxes and masks as stock, elsewhere each stage within the
    tolerances that tests/model/test_equivalence.py states.
    """
    fold_frozen_batchnorms(model)
    use_winograd(model)  # after the fold: it takes the folded weights and biases
    predicted_class_subdivision(model.roi_heads.mask_head)
    channels_last_point_features(model.roi_heads.mask_head)
    threaded_roi_align(model)
    return model
