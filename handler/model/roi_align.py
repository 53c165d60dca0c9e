"""ROIAlign across torch's threads.

torchvision's CPU ``roi_align`` runs on one thread, and the box head pools 1000 proposals per image with it
(7x7 bins of 256 channels, each bin the mean of up to dozens of bilinear samples). Every box is pooled on its
own, so splitting the boxes between threads gives the same values, bit for bit; the op releases the GIL, so
the threads run side by side.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import cache

import torch

from handler.model.pixellib import ROIAlign

MIN_BOXES_PER_THREAD = 8  # below this a thread's hand-off costs more than it pools


@cache
def _pool(workers: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="roi-align")


def _threaded_forward(original: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> Callable:
    def forward(features: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        parts = min(torch.get_num_threads(), len(rois) // MIN_BOXES_PER_THREAD)
        if parts < 2:
            return original(features, rois)
        chunks = rois.tensor_split(parts)
        pending = [_pool(parts - 1).submit(original, features, chunk) for chunk in chunks[1:]]
        first = original(features, chunks[0])
        return torch.cat([first, *(future.result() for future in pending)])

    return forward


def threaded_roi_align(model: torch.nn.Module) -> int:
    """Every ``ROIAlign`` of ``model`` pools its boxes across torch's threads; how many."""
    count = 0
    for module in model.modules():
        if isinstance(module, ROIAlign):
            module.forward = _threaded_forward(module.forward)
            count += 1
    return count
