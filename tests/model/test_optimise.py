"""``optimise``: each speed-up a layer class of its own, swapped in where the stock layer was, in any order."""

from __future__ import annotations

import threading

import pytest
import torch

from handler.model import optimise as optimise_model
from handler.model.fold import FoldedConv2d
from handler.model.mask_head import PredictedClassMaskHead
from handler.model.optimise import fold_batchnorms, thread_roi_aligns, use_winograd
from handler.model.pixellib import Conv2d, FrozenBatchNorm2d, build_pointrend, without_weight_init
from handler.model.point_head import PredictedClassPointHead
from handler.model.roi_align import ThreadedROIAlign
from handler.model.swap import UnsuitableModel, replace
from handler.model.winograd import DEFAULT_REACH, WinogradConv2d


@pytest.fixture(scope="module")
def optimised() -> torch.nn.Module:
    return optimise_model(build_pointrend(init_weights=False))


def test_repr_names_every_optimised_layer(optimised):
    shown = repr(optimised)
    for layer in (FoldedConv2d, WinogradConv2d, ThreadedROIAlign, PredictedClassMaskHead, PredictedClassPointHead):
        assert f"{layer.__name__}(" in shown, layer
    kinds = {type(module) for module in optimised.modules()}
    assert FrozenBatchNorm2d not in kinds  # every norm folded
    assert not any(type(module) is Conv2d and module.norm is not None for module in optimised.modules())


def test_no_module_has_a_rebound_method(optimised):
    rebound = [
        (name, attribute)
        for name, module in optimised.named_modules()
        for attribute, value in vars(module).items()
        if attribute == "forward" or (callable(value) and hasattr(value, "__self__") and value.__self__ is module)
    ]
    assert rebound == []


def test_the_fpn_runs_the_swapped_convolutions(optimised):
    fpn = optimised.backbone
    registered = [getattr(fpn, f"fpn_output{level}") for level in (5, 4, 3, 2)]
    assert all(a is b for a, b in zip(fpn.output_convs, registered, strict=True))
    assert all(isinstance(conv, WinogradConv2d) for conv in fpn.output_convs)


def test_optimising_again_changes_nothing(optimised):
    before = repr(optimised)
    assert fold_batchnorms(optimised) == use_winograd(optimised) == thread_roi_aligns(optimised) == 0
    optimise_model(optimised)
    assert repr(optimised) == before


def test_the_order_of_the_fold_and_winograd_does_not_matter():
    first = build_pointrend(init_weights=True)
    second = build_pointrend(init_weights=False)
    second.load_state_dict(first.state_dict())
    fold_batchnorms(first)
    assert use_winograd(first, DEFAULT_REACH) == 18
    assert use_winograd(second, DEFAULT_REACH) == 18  # each folds its own norm first
    fold_batchnorms(second)
    assert [type(m) for m in first.modules()] == [type(m) for m in second.modules()]
    one, other = first.state_dict(), second.state_dict()
    assert one.keys() == other.keys()
    assert all(torch.equal(one[name], other[name]) for name in one)


def test_a_model_without_pointrends_mask_head_is_refused_by_layer():
    model = build_pointrend(init_weights=False)
    model.roi_heads.mask_head = torch.nn.Identity()
    with pytest.raises(UnsuitableModel, match=r"^roi_heads\.mask_head: Identity, not PixelLib's PointRendMaskHead"):
        optimise_model(model)
    del model.roi_heads.mask_head
    with pytest.raises(UnsuitableModel, match=r"^roi_heads\.mask_head: no such layer"):
        optimise_model(model)


def test_a_layer_held_where_the_swap_cannot_see_is_refused():
    class Hidden(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(1, 1, 1)
            self.pair = (self.conv, None)

    model = torch.nn.Sequential(Hidden())
    with pytest.raises(UnsuitableModel, match=r"^0\.conv: Hidden\.pair holds the layer"):
        replace(model, "0.conv", torch.nn.Identity())


def test_the_build_skips_weight_init_on_its_own_thread_only():
    original = torch.nn.init.normal_
    seen: list[float] = []
    with without_weight_init():
        assert torch.nn.init.normal_ is original  # nothing process-wide is swapped
        skipped = torch.nn.init.normal_(torch.zeros(100))
        other = threading.Thread(target=lambda: seen.append(float(torch.nn.init.normal_(torch.zeros(100)).abs().sum())))
        other.start()
        other.join()
    assert float(skipped.abs().sum()) == 0
    assert seen[0] > 0  # another thread initialises as usual meanwhile
    with pytest.raises(RuntimeError), without_weight_init():
        raise RuntimeError
    assert float(torch.nn.init.normal_(torch.zeros(100)).abs().sum()) > 0  # left on an error too
