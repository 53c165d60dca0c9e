"""PointRend's mask head refining the predicted class only, a batch of objects at a time, on channels-last
features: ``PredictedClassMaskHead``.

PixelLib upsamples, scores and scatters the mask logits of all 80 classes at every subdivision step (up to
224x224 per box) and keeps one of them at the end. Bilinear upsampling, the uncertainty map and the scatter
treat channels independently, so taking the predicted class's channel of each point prediction first gives
the same masks at 1/80 of that work (the logits can differ in their last bits: one channel is upsampled in
another vector order than 80). The point head runs as ``PredictedClassPointHead`` (its coarse inputs
projected once per object).

PointRend samples the feature map (p2) at every point of every object. PyTorch's bilinear ``grid_sample``
reads each point's 256 channels a whole plane apart in NCHW memory, but side by side in channels-last
memory: the same values, bit for bit, several times faster there; so the head takes its features
channels-last, one copy of p2 per image.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from handler.model.pixellib import (
    PointRendMaskHead,
    generate_regular_grid_point_coords,
    get_uncertain_point_coords_on_grid,
    mask_rcnn_inference,
)
from handler.model.point_head import PredictedClassPointHead
from handler.model.swap import UnsuitableModel

OBJECTS_PER_BATCH = 25  # bounds the point head's activations (about 1 MB an object)

# PixelLib's settings of the head, taken over as they are.
SETTINGS = (
    "_feature_scales",
    "roi_pooler_in_features",
    "roi_pooler_size",
    "mask_point_on",
    "mask_point_in_features",
    "mask_point_train_num_points",
    "mask_point_oversample_ratio",
    "mask_point_importance_sample_ratio",
    "mask_point_subdivision_init_resolution",
    "mask_point_subdivision_steps",
    "mask_point_subdivision_num_points",
)


class PredictedClassMaskHead(PointRendMaskHead):
    """PixelLib's ``PointRendMaskHead`` whose inference refines each object's predicted class only.

    It keeps stock's coarse head and point head (training, and ``PointRendMaskHead.forward`` called on it,
    run stock's maths) and adds the point head's predicted-class form, ``predicted_class``.
    """

    def __init__(self, stock: PointRendMaskHead, name: str = "roi_heads.mask_head") -> None:
        torch.nn.Module.__init__(self)  # PointRendMaskHead.__init__ builds from a config: its parts are taken
        if not isinstance(stock, PointRendMaskHead) or not getattr(stock, "mask_point_on", False):
            raise UnsuitableModel(
                f"{name}: {type(stock).__name__} is not PixelLib's PointRendMaskHead with a point head"
            )
        missing = [setting for setting in SETTINGS if not hasattr(stock, setting)]
        if missing:
            raise UnsuitableModel(f"{name}: PointRendMaskHead without {missing} (another PixelLib version?)")
        for setting in SETTINGS:
            setattr(self, setting, getattr(stock, setting))
        self.coarse_head = stock.coarse_head
        self.point_head = stock.point_head
        self.predicted_class = PredictedClassPointHead(stock.point_head, f"{name}.point_head")
        self.objects_per_batch = OBJECTS_PER_BATCH
        self.train(stock.training)

    def extra_repr(self) -> str:
        return f"objects_per_batch={self.objects_per_batch}, features=channels_last"

    def forward(self, features: dict[str, torch.Tensor], instances: list) -> object:
        if self.training:
            return super().forward(features, instances)
        used = {*self.roi_pooler_in_features, *self.mask_point_in_features}  # p2 (PixelLib's config)
        features = {name: features[name].contiguous(memory_format=torch.channels_last) for name in used}
        boxes = [image.pred_boxes for image in instances]
        coarse = self.coarse_head(self._roi_pooler(features, boxes))
        # Each object's points are its own, so batches give the same logits as one pass.
        logits, first = [], 0
        for image in instances:
            for start in range(0, len(image), self.objects_per_batch):
                end = min(start + self.objects_per_batch, len(image))
                batch = coarse[first + start : first + end]
                logits.append(self.refine(features, image.pred_boxes[start:end], image.pred_classes[start:end], batch))
            first += len(image)
        resolution = self.mask_point_subdivision_init_resolution
        mask_logits = torch.cat(logits) if logits else coarse.new_empty(0, 1, resolution, resolution)
        mask_rcnn_inference(mask_logits, instances)  # one channel: sigmoid, as PixelLib does for the class
        return instances

    def refine(self, features: dict[str, torch.Tensor], boxes, classes: torch.Tensor, coarse: torch.Tensor):
        """The predicted class's mask logits (R, 1, S, S) for one image's objects ``boxes`` (a Boxes) from their
        coarse masks: PixelLib's subdivision steps on that channel alone."""
        head = self.predicted_class
        terms = head.project(coarse, classes)
        resolution = self.mask_point_subdivision_init_resolution
        mask_logits = None
        for _ in range(self.mask_point_subdivision_steps + 1):
            if mask_logits is None:
                point_coords = generate_regular_grid_point_coords(classes.size(0), resolution, classes.device)
            else:
                mask_logits = F.interpolate(mask_logits, scale_factor=2, mode="bilinear", align_corners=False)
                point_indices, point_coords = get_uncertain_point_coords_on_grid(
                    -torch.abs(mask_logits), self.mask_point_subdivision_num_points
                )
            fine_grained_features = self._point_pooler(features, [boxes], point_coords)
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
