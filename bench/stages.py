"""Where the model's time goes: one image through our model stage by stage, with each stage's FLOPs (torch's
flop counter) and the rate it reaches against a float32 matmul on the same threads in the same process.

FLOPs are the model's own, counted on stock's maths: the convolutions on PyTorch's direct path and PixelLib's
point head on every class. Our Winograd convolutions (handler/model/winograd.py) and point head
(handler/model/point_head.py) do fewer multiplications for the same result, so a stage can reach more "model
FLOP/s" than the matmul rate.

Used by bench/engine.py; each function runs inside an engine worker process.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

STAGES = ("backbone+FPN", "RPN", "box head", "mask head")
MATMUL_SIZE = 2048


def matmul_flops_per_s(size: int = MATMUL_SIZE, repeats: int = 5) -> float:
    """float32 ``size`` x ``size`` matmul FLOP/s on torch's threads in this process: the best of ``repeats``."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)  # warm-up: the threads and the output buffer
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - started)
    return 2 * size**3 / best


def model_input(segmenter: Any, rgb: np.ndarray, speed: str = "normal") -> torch.Tensor:
    """What ``Segmenter.detect`` hands the model: the resized image, BGR, CHW float32."""
    from handler.model.pixellib import SPEED_SIZES, T

    min_size, max_size = SPEED_SIZES[speed]
    resized = T.ResizeShortestEdge([min_size, min_size], max_size).get_transform(rgb).apply_image(rgb)
    return torch.as_tensor(resized[:, :, ::-1].astype("float32").transpose(2, 0, 1))


def _stages(model: Any, image: torch.Tensor) -> list[Any]:
    """The model's inference (``GeneralizedRCNN.inference``) split into its four stages, as callables."""
    state: dict[str, Any] = {}

    def backbone() -> None:
        state["images"] = model.preprocess_image([{"image": image}])
        state["features"] = model.backbone(state["images"].tensor)

    def rpn() -> None:
        state["proposals"], _ = model.proposal_generator(state["images"], state["features"], None)

    def box_head() -> None:
        state["instances"] = model.roi_heads._forward_box(state["features"], state["proposals"])

    def mask_head() -> None:
        state["instances"] = model.roi_heads.forward_with_given_boxes(state["features"], state["instances"])

    return [backbone, rpn, box_head, mask_head, state]


@contextmanager
def stock_maths(model: Any) -> Iterator[None]:
    """The model's maths as stock runs it, meanwhile: our Winograd convolutions swapped for PyTorch's direct
    path and our mask head for PixelLib's own refinement, so that the FLOPs counted are the model's, whatever
    shortcuts ours takes. (handler is imported here only: the stock engine's processes import this module too.)"""
    from handler.model.mask_head import PredictedClassMaskHead
    from handler.model.pixellib import PointRendMaskHead
    from handler.model.swap import replace
    from handler.model.winograd import WinogradConv2d

    class StockRefinement(torch.nn.Module):
        """Our mask head run as PixelLib runs it: ``PointRendMaskHead.forward`` (its point head on every
        class) on the same layers."""

        def __init__(self, head: PredictedClassMaskHead) -> None:
            super().__init__()
            self.head = head

        def forward(self, features: Any, instances: Any) -> Any:
            return PointRendMaskHead.forward(self.head, features, instances)

    stock = {
        name: module.direct() if isinstance(module, WinogradConv2d) else StockRefinement(module)
        for name, module in model.named_modules()
        if isinstance(module, WinogradConv2d | PredictedClassMaskHead)
    }
    ours = {name: replace(model, name, module) for name, module in stock.items()}
    try:
        yield
    finally:
        for name, module in ours.items():
            replace(model, name, module)


def forward_flops(model: Any, image: torch.Tensor) -> float:
    """The model's FLOPs for one whole forward (``model.inference``) on ``image`` (stock's maths)."""
    with torch.inference_mode(), stock_maths(model), FlopCounterMode(display=False) as counter:
        model.inference([{"image": image}], do_postprocess=False)
    return float(counter.get_total_flops())


def stage_report(segmenter: Any, rgb: np.ndarray, confidence: float, repeats: int) -> dict[str, Any]:
    """Per stage: median seconds over ``repeats`` runs (after one warm-up) and FLOPs; objects found."""
    model = segmenter.model
    segmenter._box_predictor.test_score_thresh = confidence
    image = model_input(segmenter, rgb)
    seconds: dict[str, list[float]] = {name: [] for name in STAGES}
    flops: dict[str, float] = {}
    with torch.inference_mode():
        for round_ in range(repeats + 2):
            *steps, state = _stages(model, image)
            for name, step in zip(STAGES, steps, strict=True):
                if round_ == 0:  # FLOPs, counted once (the counter slows the run down)
                    with stock_maths(model), FlopCounterMode(display=False) as counter:
                        step()
                    flops[name] = float(counter.get_total_flops())
                    continue
                started = time.perf_counter()
                step()
                if round_ > 1:  # round 1 is the warm-up
                    seconds[name].append(time.perf_counter() - started)
    return {
        "seconds": {name: statistics.median(values) for name, values in seconds.items()},
        "flops": flops,
        "objects": len(state["instances"][0]),
        "input": list(image.shape[1:]),
    }
