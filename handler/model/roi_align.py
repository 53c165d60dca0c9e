"""ROIAlign across torch's threads.

torchvision's CPU ``roi_align`` runs on one thread, and the box head pools 1000 proposals per image with it
(7x7 bins of 256 channels, each bin the mean of up to dozens of bilinear samples). Every box is pooled on its
own, so splitting the boxes between threads gives the same values, bit for bit; the op releases the GIL, so
the threads run side by side.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from functools import cache

import torch

from handler.model.pixellib import ROIAlign

MIN_BOXES_PER_THREAD = 8  # below this a thread's hand-off costs more than it pools


@cache
def _pool(workers: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="roi-align")


class ThreadedROIAlign(ROIAlign):
    """PixelLib's ``ROIAlign`` with its boxes split across torch's threads (the same bits)."""

    @classmethod
    def of(cls, layer: ROIAlign) -> ThreadedROIAlign:
        return cls(layer.output_size, layer.spatial_scale, layer.sampling_ratio, layer.aligned)

    def forward(self, features: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        parts = min(torch.get_num_threads(), len(rois) // MIN_BOXES_PER_THREAD)
        if parts < 2:
            return self.pool(features, rois)
        chunks = rois.tensor_split(parts)
        pending = [_pool(parts - 1).submit(self.pool, features, chunk) for chunk in chunks[1:]]
        first = self.pool(features, chunks[0])
        return torch.cat([first, *(future.result() for future in pending)])

    def pool(self, features: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        """PixelLib's ``ROIAlign`` on some of the boxes, on the calling thread."""
        return super().forward(features, rois)
