"""The point head with its coarse inputs projected per object against stock's ``StandardPointHead``."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from handler.model.pixellib import ShapeSpec, StandardPointHead, build_config, build_pointrend
from handler.model.point_head import PredictedClassPointHead
from handler.model.swap import UnsuitableModel

OBJECTS, POINTS, CLASSES = 12, 784, 80


def relative_error(value: torch.Tensor, exact: torch.Tensor) -> float:
    return float((value.double() - exact).norm() / exact.norm())


def sample(maps: torch.Tensor, point_coords: torch.Tensor) -> torch.Tensor:
    """PixelLib's ``point_sample``: (R, C, P)."""
    return F.grid_sample(maps, 2.0 * point_coords.unsqueeze(2) - 1.0, align_corners=False).squeeze(3)


def edge_points(count: int) -> torch.Tensor:
    """Random points plus the box's corners, edges and the coarse cells' centres (taps outside the map)."""
    points = torch.rand(count, POINTS, 2)
    special = torch.tensor([[0.0, 0.0], [1.0, 1.0], [0.0, 1.0], [1.0, 0.5], [0.5 / 7, 0.5 / 7], [3.5 / 7, 6.5 / 7]])
    points[:, : len(special)] = special
    return points


@pytest.fixture(scope="module")
def stock_head() -> torch.nn.Module:
    head = build_pointrend("resnet50", CLASSES, init_weights=True).roi_heads.mask_head.point_head.eval()
    with torch.no_grad():  # PixelLib initialises the predictor near zero: give it weights that count
        head.predictor.weight.normal_(std=0.05)
        head.predictor.bias.normal_()
    return head


def test_the_predicted_class_logits_are_stocks_within_float32_rounding(stock_head):
    fine = torch.randn(OBJECTS, 256, POINTS)
    coarse = torch.randn(OBJECTS, CLASSES, 7, 7) * 3
    points = edge_points(OBJECTS)
    classes = torch.randint(0, CLASSES, (OBJECTS,))
    with torch.inference_mode():
        stock = stock_head(fine, sample(coarse, points))[torch.arange(OBJECTS), classes].unsqueeze(1).double()
        head = PredictedClassPointHead(stock_head)
        ours = head(fine, points, head.project(coarse, classes), classes)
    assert ours.shape == (OBJECTS, 1, POINTS)
    assert relative_error(ours, stock) <= 2e-6  # float32 rounding (docs/models.md has the measured error)
    # and it is not the logits of another class
    wrong = (classes + 1) % CLASSES
    assert relative_error(head(fine, points, head.project(coarse, wrong), wrong), stock) > 0.1


def test_only_the_head_the_algebra_holds_for_takes_it(stock_head):
    PredictedClassPointHead(stock_head)
    stock_head.coarse_pred_each_layer = False
    try:
        with pytest.raises(ValueError, match="coarse prediction in each layer"):
            PredictedClassPointHead(stock_head)
    finally:
        stock_head.coarse_pred_each_layer = True


def point_head(**point_head_config) -> StandardPointHead:
    """PixelLib's ``StandardPointHead`` from its own config, with ``POINT_HEAD`` settings changed."""
    cfg = build_config(num_classes=CLASSES)
    for key, value in point_head_config.items():
        setattr(cfg.MODEL.POINT_HEAD, key, value)
    head = StandardPointHead(cfg, ShapeSpec(channels=256, width=1, height=1)).eval()
    with torch.no_grad():
        head.predictor.weight.normal_(std=0.05)
        head.predictor.bias.normal_()
    return head


def test_a_class_agnostic_head_gives_its_one_channel_whatever_the_class():
    stock_head = point_head(CLS_AGNOSTIC_MASK=True)
    assert stock_head.predictor.out_channels == 1
    fine = torch.randn(OBJECTS, 256, POINTS)
    coarse = torch.randn(OBJECTS, CLASSES, 7, 7) * 3
    points = edge_points(OBJECTS)
    classes = torch.randint(0, CLASSES, (OBJECTS,))
    head = PredictedClassPointHead(stock_head)
    assert head.class_agnostic
    with torch.inference_mode():
        stock = stock_head(fine, sample(coarse, points)).double()  # (R, 1, P)
        ours = head(fine, points, head.project(coarse, classes), classes)
        other = (classes + 1) % CLASSES
        theirs = head(fine, points, head.project(coarse, other), other)
    assert ours.shape == stock.shape == (OBJECTS, 1, POINTS)
    assert relative_error(ours, stock) <= 2e-6
    assert torch.equal(ours, theirs)  # the class picks nothing: one channel for all


@pytest.mark.parametrize(
    ("config", "why"),
    [({"COARSE_PRED_EACH_LAYER": False}, "coarse prediction in each layer"), ({"NUM_FC": 0}, "StandardPointHead")],
)
def test_heads_the_algebra_does_not_hold_for_are_refused_by_name(config, why):
    with pytest.raises(UnsuitableModel, match=rf"^roi_heads\.mask_head\.point_head: .*{why}"):
        PredictedClassPointHead(point_head(**config), "roi_heads.mask_head.point_head")
    with pytest.raises(UnsuitableModel, match=r"^point_head: Linear"):
        PredictedClassPointHead(torch.nn.Linear(2, 2))
