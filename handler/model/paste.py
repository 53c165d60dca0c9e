"""Each object's mask pasted inside its box only, one object at a time: PixelLib's (detectron2's) own paste.

Stock ``detector_postprocess`` scales and clips the boxes to the original image, then pastes every object's
PointRend mask into a full-size (N, H, W) tensor: 4.8 GB for 100 objects on a 48 MP photo. On the CPU that
paste already works one object at a time on the region around its box (``_do_paste_mask`` with
``skip_empty=True``: the box rounded out by one pixel) and leaves the rest zero. Here the same arithmetic runs
on that region only, in horizontal bands of at most ``BAND_PIXELS`` pixels: stock samples the whole region
at once through a float grid of 8 bytes a pixel (0.4 GB for a box covering a 48 MP photo), a band's grid is
bounded. Every output pixel depends only on its own grid point, so the bands give stock's pixels exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from handler.model.pixellib import Instances, detector_postprocess

MASK_THRESHOLD = 0.5  # detector_postprocess's default
# Pixels sampled at once: 4 Mi pixels = a 32 MB grid, a 16 MB float band and a 4 MB bool band.
BAND_PIXELS = 1 << 22


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


def paste_region(box: torch.Tensor, height: int, width: int) -> tuple[int, int, int, int]:
    """``_do_paste_mask``'s region for one box (x1, y1, x2, y2): top, left, bottom, right (exclusive)."""
    x0, y0, x1, y1 = (float(value) for value in box)
    left, top = max(math.floor(x0) - 1, 0), max(math.floor(y0) - 1, 0)
    right, bottom = min(math.ceil(x1) + 1, width), min(math.ceil(y1) + 1, height)
    return top, left, bottom, right


def paste_one(
    roi_mask: torch.Tensor, box: torch.Tensor, height: int, width: int, band_pixels: int = BAND_PIXELS
) -> MaskCrop:
    """``paste_masks_in_image(roi_mask[None], box[None], (height, width))[0]`` on the CPU, kept inside its region.

    ``roi_mask`` is (M, M) float, ``box`` (4,) float32 in image pixels. The lines below are ``_do_paste_mask``'s
    for one object with the rows sampled ``band_pixels`` at a time.
    """
    top, left, bottom, right = paste_region(box, height, width)
    mask = np.zeros((max(bottom - top, 0), max(right - left, 0)), dtype=bool)
    if mask.size == 0:
        return MaskCrop(top=top, left=left, mask=mask)
    x0, y0, x1, y1 = box.to(torch.float32).reshape(4, 1)
    img_x = (torch.arange(left, right, dtype=torch.float32) + 0.5 - x0) / (x1 - x0) * 2 - 1
    source = roi_mask.to(torch.float32)[None, None]
    rows = max(1, band_pixels // mask.shape[1])
    for start in range(top, bottom, rows):
        stop = min(start + rows, bottom)
        img_y = (torch.arange(start, stop, dtype=torch.float32) + 0.5 - y0) / (y1 - y0) * 2 - 1
        grid = torch.stack(
            [img_x[None, :].expand(len(img_y), len(img_x)), img_y[:, None].expand(len(img_y), len(img_x))], dim=2
        )
        band = F.grid_sample(source, grid[None], align_corners=False)[0, 0]
        mask[start - top : stop - top] = (band >= MASK_THRESHOLD).numpy()
        del grid, band
    return MaskCrop(top=top, left=left, mask=mask)
