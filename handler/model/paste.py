"""Each object's mask pasted inside its box only: PixelLib's (detectron2's) own paste, never N x H x W.

Stock ``detector_postprocess`` scales and clips the boxes to the original image, then pastes every object's
224 x 224 PointRend mask into a full-size (N, H, W) tensor: 4.8 GB for 100 objects on a 48 MP photo. On the
CPU that paste already works one object at a time on the region around its box (``_do_paste_mask`` with
``skip_empty=True``: the box rounded out by one pixel) and leaves the rest zero. Here the same calls run
and the region is kept instead of the full array, so every pixel equals stock's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from handler.model.pixellib import Instances, _do_paste_mask, detector_postprocess

MASK_THRESHOLD = 0.5  # detector_postprocess's default


@dataclass(frozen=True)
class MaskCrop:
    """One object's mask: ``mask`` (h, w) bool with its top-left pixel at (``top``, ``left``); zeros elsewhere."""

    top: int
    left: int
    mask: np.ndarray

    @property
    def bottom(self) -> int:
        return self.top + self.mask.shape[0]

    @property
    def right(self) -> int:
        return self.left + self.mask.shape[1]


def postprocess_boxes(instances: Instances, height: int, width: int) -> tuple[Instances, torch.Tensor]:
    """Stock ``detector_postprocess`` without its paste: boxes scaled to ``height`` x ``width`` and clipped,
    empty boxes dropped; also returns the ROI masks (N, M, M) of the objects kept, in the same order."""
    roi_masks = instances.pred_masks[:, 0]
    fields = {name: value for name, value in instances.get_fields().items() if name != "pred_masks"}
    fields["roi_index"] = torch.arange(len(instances))
    resized = detector_postprocess(Instances(instances.image_size, **fields), height, width)
    return resized, roi_masks[resized.roi_index]


def paste_in_boxes(roi_masks: torch.Tensor, boxes: torch.Tensor, height: int, width: int) -> list[MaskCrop]:
    """``paste_masks_in_image(roi_masks, boxes, (height, width))`` on the CPU, one crop per object."""
    crops = []
    for index in range(len(roi_masks)):
        pasted, (rows, columns) = _do_paste_mask(
            roi_masks[index : index + 1, None], boxes[index : index + 1], height, width, skip_empty=True
        )
        mask = (pasted[0] >= MASK_THRESHOLD).numpy()
        crops.append(MaskCrop(top=int(rows.start), left=int(columns.start), mask=mask))
    return crops
