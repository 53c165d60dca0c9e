"""Our Segmenter against stock PixelLib (its own ``load_model`` + ``segmentFrame``) on the same weights file.

Test models carry trained-like batch-norm statistics, so every speed-up (the batch-norm fold, Winograd's 3x3
convolutions, the predicted-class refinement) is at work. On models whose outputs are stable (the dense test models:
boxes are the anchors, scores saturated at 1.0) the outputs must agree: same classes, boxes within 1 px, mask IoU >=
0.99. On the plain random model, whose scores and boxes amplify last-bit differences, each stage's tensors must
agree within the relative errors below (docs/models.md has the measured figures).

Images are cropped wider than 5:3 so that PixelLib's "rapid" input size, which sets only the longest edge (its
``INPUT_MIN_SIZE_TEST`` typo), and ours (both edges) resize them to the same model input.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import CUSTOM_CLASSES, IMAGES, REPO
from stock import Side, load_stock, mask_iou, our_side, stage_errors, stock_side

from handler.cli import main
from handler.core.settings import Settings
from handler.engine import images
from handler.model import Segmenter

# |ours - stock| / |stock| per stage, on the plain random model (where nothing saturates). Stock itself moves this
# much between CPUs: stock under oneDNN's AVX or SSE4.1 kernels against stock under AVX2, same machine, gave
# features 2.2e-6, proposals 5.9e-5, box scores 1.8e-4, mask logits 9.4e-4 (docs/models.md).
STAGE_TOLERANCE = {
    "features": 1e-5,  # FPN outputs p2..p6: the folded batch-norms and Winograd's transforms round differently
    "proposals": 5e-4,  # box coordinates: 5e-4 of a 333 px edge is 0.17 px
    "objectness": 1e-4,
    "box_scores": 2e-3,  # class logits of every proposal
    "mask_logits": 1e-2,  # the predicted class's final 224x224 logits (a changed uncertain point moves a few)
}
BOX_PX = 1
MIN_MASK_IOU = 0.99
MODELS = REPO / ".cache" / "models"
# A dense model runs the mask head on 100 objects per image, on both sides: 1-4 minutes a test on 2 busy cores.
pytestmark = pytest.mark.timeout(900)


def wide(name: str, rows: slice) -> np.ndarray:
    rgb = images.decode((IMAGES / name).read_bytes(), max_bytes=10**7, max_pixels=10**7)
    crop = np.ascontiguousarray(rgb[rows])
    assert crop.shape[1] / crop.shape[0] > 333 / 200, "narrower crops get different inputs (see the docstring)"
    return crop


@pytest.fixture(scope="module")
def photos() -> list[np.ndarray]:
    return [wide("astronaut.jpg", slice(40, 220)), wide("rocket.jpg", slice(0, 180))]


@pytest.fixture(scope="module")
def x101_model_path() -> Path:
    """``make-test-model --dense --backbone resnet101``, once into the cache."""
    path = MODELS / "test_model_x101_dense.pkl"
    if not path.exists():
        assert main(["make-test-model", str(path), "--dense", "--backbone", "resnet101"]) == 0
    return path


def assert_same_outputs(ours: Side, stock: Side) -> None:
    assert len(stock.class_ids) > 0, "a stable model finds objects"
    assert np.array_equal(ours.class_ids, stock.class_ids)
    assert np.abs(ours.boxes - stock.boxes).max() <= BOX_PX
    ious = [mask_iou(a, b) for a, b in zip(ours.masks, stock.masks, strict=True)]
    assert min(ious) >= MIN_MASK_IOU, min(ious)


def assert_stages_within_tolerance(ours: Side, stock: Side, stages: tuple[str, ...]) -> dict[str, float]:
    errors = stage_errors(ours.stages, stock.stages)
    for stage in stages:
        assert errors[stage] <= STAGE_TOLERANCE[stage], (stage, errors[stage])
    return errors


def test_r50_on_a_stable_model_matches_stock(dense_model_path, dense_segmenter, photos):
    stock = load_stock(dense_model_path, "resnet50", confidence=0.5)
    for rgb in photos:
        theirs, ours = stock_side(stock, rgb), our_side(dense_segmenter, rgb, confidence=0.5)
        assert len(ours.class_ids) == 100  # PixelLib's per-image cap: the mask head runs at full load
        assert_same_outputs(ours, theirs)
        assert_stages_within_tolerance(ours, theirs, ("features", "mask_logits"))


def test_x101_on_a_stable_model_matches_stock(x101_model_path, photos):
    ours = Segmenter(Settings(model_path=x101_model_path, model_backbone="resnet101", detection_speed="rapid"))
    assert ours.backbone == "resnet101" and ours.model_name == "pointrend_resnet101"
    stock = load_stock(x101_model_path, "resnet101", confidence=0.5)
    theirs, mine = stock_side(stock, photos[0]), our_side(ours, photos[0], confidence=0.5)
    assert_same_outputs(mine, theirs)
    assert_stages_within_tolerance(mine, theirs, ("features", "mask_logits"))


def test_a_custom_three_class_model_matches_stock(custom_model_path, custom_segmenter, photos):
    ours = custom_segmenter
    assert ours.class_names == CUSTOM_CLASSES
    stock = load_stock(custom_model_path, "resnet50", confidence=0.5, num_classes=len(CUSTOM_CLASSES))
    assert stock.predictor.model.roi_heads.box_predictor.cls_score.out_features == len(CUSTOM_CLASSES) + 1
    theirs, mine = stock_side(stock, photos[1]), our_side(ours, photos[1], confidence=0.5)
    assert_same_outputs(mine, theirs)
    assert_stages_within_tolerance(mine, theirs, ("features", "mask_logits"))


def test_stage_tensors_of_the_random_model_match_stock(test_model_path, segmenter, photos):
    stock = load_stock(test_model_path, "resnet50", confidence=0.0)
    for rgb in photos:
        theirs, ours = stock_side(stock, rgb), our_side(segmenter, rgb, confidence=0.0)
        assert len(theirs.class_ids) > 0
        assert np.array_equal(ours.class_ids, theirs.class_ids)
        errors = assert_stages_within_tolerance(ours, theirs, tuple(STAGE_TOLERANCE))
        assert errors["features"] > 0, "trained-like batch-norms: the fold rounds, so this compares real work"
