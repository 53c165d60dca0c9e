"""Result schema, RLE, polygons, COCO export and the overlay, on hand-made masks (no model), each made by the
engine's per-object flow (``encode_objects``) from crops handed over one at a time."""

import io
import json

import numpy as np
import pytest
from masks import crop_of
from PIL import Image
from pycocotools import mask as coco_mask
from pycocotools.coco import COCO

from handler.engine.coco import Categories, coco_annotations
from handler.engine.objects import Outputs, encode_objects
from handler.engine.overlay import render
from handler.engine.results import COCO_CATEGORY_IDS, SCHEMA_VERSION, SEED_KEYS, Segmentation


def hand_made_masks(height: int = 60, width: int = 80) -> np.ndarray:
    masks = np.zeros((3, height, width), dtype=bool)
    masks[0, 10:30, 5:25] = True  # square
    yy, xx = np.mgrid[:height, :width]
    masks[1] = (yy - 40) ** 2 + (xx - 55) ** 2 < 15**2  # disc
    masks[2, 0, 0] = True  # one pixel in the corner
    return masks


def table(height: int = 60, width: int = 80) -> Segmentation:
    """The three objects' boxes, classes and scores, no masks encoded yet."""
    return Segmentation(
        width=width,
        height=height,
        boxes=np.array([[5.7, 10.2, 24.9, 29.99], [40.0, 25.0, 70.0, 55.0], [0, 0, 1, 1]], dtype=np.float32),
        scores=np.array([0.987, 0.5, 0.0999], dtype=np.float32),
        class_ids=np.array([0, 2, 0]),
        class_names=["person", "car", "person"],
        model={"name": "pointrend_resnet50", "sha256": None},
        timings_ms={"model": 12.345},
    )


def hand_made(
    height: int = 60, width: int = 80, masks: np.ndarray | None = None, outputs: Outputs = Outputs()
) -> Segmentation:
    masks = hand_made_masks(height, width) if masks is None else masks
    result = table(height, width)
    encode_objects(np.zeros((height, width, 3), np.uint8), result, (crop_of(mask) for mask in masks), outputs)
    return result


def test_seed_fields_follow_the_ancestor_conventions():
    body = hand_made().to_seed_json()
    assert tuple(body) == SEED_KEYS
    assert body["boxes"] == [[5, 10, 24, 29], [40, 25, 70, 55], [0, 0, 1, 1]]  # truncated, like PixelLib
    assert body["scores"] == [98, 50, 9]  # ints 0-100, truncated
    assert body["class_ids"] == [0, 2, 0]
    assert body["class_names"] == ["person", "car", "person"]
    assert body["mask_shape"] == [60, 80, 3]
    assert body["object_counts"] == {"person": 2, "car": 1}
    json.dumps(body)  # plain JSON types only


def test_full_schema_keeps_the_model_floats_and_says_its_version():
    body = hand_made().to_json()
    assert next(iter(body)) == "schema_version" and body["schema_version"] == SCHEMA_VERSION == 2
    assert body["image"] == {"width": 80, "height": 60}
    assert set(SEED_KEYS) <= set(body)
    # The float32 numbers, written with the fewest digits that read back to the same float32.
    assert body["boxes"] == [[5.7, 10.2, 24.9, 29.99], [40.0, 25.0, 70.0, 55.0], [0.0, 0.0, 1.0, 1.0]]
    assert body["scores"] == [0.987, 0.5, 0.0999]
    assert all(type(v) is float for v in body["scores"] + [v for box in body["boxes"] for v in box])
    assert np.array_equal(np.array(body["boxes"], np.float32), table().boxes)
    assert np.array_equal(np.array(body["scores"], np.float32), table().scores)
    assert '"scores": [0.987, 0.5, 0.0999]' in json.dumps(body)
    assert body["model"]["name"] == "pointrend_resnet50"
    assert body["timings_ms"] == {"model": 12.3}
    assert all(isinstance(rle["counts"], str) and rle["size"] == [60, 80] for rle in body["masks"])
    assert isinstance(json.loads(json.dumps(body)), dict)


def test_rle_decodes_to_exactly_the_masks():
    result = hand_made()
    for rle, mask in zip(result.to_json()["masks"], hand_made_masks(), strict=True):
        decoded = coco_mask.decode({"size": rle["size"], "counts": rle["counts"].encode()})
        assert decoded.dtype == np.uint8
        assert np.array_equal(decoded.astype(bool), mask)


def test_mask_format_choices():
    none = hand_made(outputs=Outputs(masks="none")).to_json()
    assert "masks" not in none and "polygons" not in none
    body = hand_made(outputs=Outputs(masks="polygons")).to_json()
    assert "masks" not in body
    polygons = body["polygons"]
    assert len(polygons) == 3
    xs, ys = polygons[0][0][0::2], polygons[0][0][1::2]
    assert (min(xs), max(xs), min(ys), max(ys)) == (5, 24, 10, 29)  # the square's outline
    assert polygons[2] == []  # a single pixel has no polygon with area


def test_empty_result_is_valid():
    empty = Segmentation(
        width=7,
        height=5,
        boxes=np.zeros((0, 4), np.float32),
        scores=np.zeros(0, np.float32),
        class_ids=np.zeros(0, np.int64),
        class_names=[],
    )
    encode_objects(np.zeros((5, 7, 3), np.uint8), empty, [], Outputs(overlay=True))
    body = empty.to_json()
    assert body["mask_shape"] == [5, 7, 0]
    assert body["masks"] == [] and body["boxes"] == [] and body["object_counts"] == {}
    assert list(coco_annotations(body, 1, 1, Categories.for_classes(None), predictions=True)) == []
    assert empty.overlay_png is not None


def test_the_flow_checks_one_mask_per_object():
    result = table()
    with pytest.raises(ValueError, match="2 masks for 3 objects"):
        encode_objects(np.zeros((60, 80, 3), np.uint8), result, [crop_of(m) for m in hand_made_masks()[:2]], Outputs())


class Spy:
    """A consumer that records what it is handed, as the cut-out writer or any other would see it."""

    def __init__(self) -> None:
        self.events: list[tuple] = []

    def start(self, rgb: np.ndarray, result: Segmentation) -> None:
        self.events.append(("start", rgb.shape, len(result), result.masks))

    def add(self, index: int, crop) -> None:
        self.events.append(("add", index, crop.top, crop.left, int(crop.mask.sum())))

    def finish(self, result: Segmentation) -> None:
        self.events.append(("finish", len(result.masks)))


def test_extra_consumers_see_every_object_in_order_after_the_built_in_ones():
    spy = Spy()
    hand_made(outputs=Outputs(consumers=[spy]))
    sums = [int(mask.sum()) for mask in hand_made_masks()]
    assert spy.events[0] == ("start", (60, 80, 3), 3, None)
    assert [event[1] for event in spy.events[1:4]] == [0, 1, 2]
    assert [event[4] for event in spy.events[1:4]] == sums
    assert spy.events[4] == ("finish", 3)  # the RLE consumer finished first


def test_inconsistent_fields_are_refused():
    good = table()
    with pytest.raises(ValueError, match="one entry per object"):
        Segmentation(good.width, good.height, good.boxes[:2], good.scores, good.class_ids, good.class_names)


def test_coco_results_load_into_pycocotools():
    result = hand_made()
    categories = [{"id": cid, "name": str(cid)} for cid in COCO_CATEGORY_IDS]
    ground_truth = COCO()
    ground_truth.dataset = {
        "images": [{"id": 42, "width": 80, "height": 60}],
        "annotations": [],
        "categories": categories,
    }
    ground_truth.createIndex()
    predictions = coco_annotations(result.to_json(), 42, 1, Categories.for_classes(None), predictions=True)
    detections = ground_truth.loadRes(list(predictions))
    annotations = detections.loadAnns(detections.getAnnIds())
    assert [a["category_id"] for a in annotations] == [1, 3, 1]  # person, car: COCO ids
    assert [a["score"] for a in annotations] == [0.987, 0.5, 0.0999]  # the model's floats
    assert annotations[0]["bbox"] == [5.0, 10.0, 20.0, 20.0]  # the mask's extent
    assert np.array_equal(detections.annToMask(annotations[1]).astype(bool), hand_made_masks()[1])


def test_overlay_draws_inside_masks_and_leaves_the_input_alone():
    masks = np.zeros((3, 120, 160), bool)
    masks[1, 60:100, 100:150] = True
    result = table(120, 160)
    result.boxes[1] = [100, 60, 150, 100]
    grey = np.full((120, 160, 3), 128, np.uint8)
    before = grey.copy()
    drawn = render(grey, result, [crop_of(mask) for mask in masks])
    assert np.array_equal(grey, before)
    assert drawn.shape == grey.shape
    assert not np.array_equal(drawn[75:85, 115:135], before[75:85, 115:135])  # tinted inside the mask
    assert np.array_equal(drawn[105:118, 2:60], before[105:118, 2:60])  # untouched far from everything


def test_overlay_cap_scales_the_picture_and_every_mask_down():
    masks = np.zeros((3, 600, 900), bool)
    masks[0, 100:400, 300:700] = True
    masks[1, 599, 899] = True  # the last pixel: its crop starts at the image's last rows and columns
    masks[2, 598:600, 0:900] = True  # a sliver along the bottom
    result = table(600, 900)
    crops = [crop_of(mask) for mask in masks]
    grey = np.full((600, 900, 3), 128, np.uint8)
    drawn = render(grey, result, crops, max_side=97)
    assert drawn.shape == (65, 97, 3)
    assert not np.array_equal(drawn[25:35, 45:60], np.full((10, 15, 3), 128, np.uint8))  # the square, scaled
    assert np.array_equal(render(grey, result, crops, max_side=900), render(grey, result, crops))  # no cap here
    assert render(grey, result, crops, max_side=2048).shape == (600, 900, 3)  # never enlarged


def test_overlay_png_opens_with_the_image_size():
    png = hand_made(outputs=Outputs(masks="none", overlay=True)).overlay_png
    with Image.open(io.BytesIO(png)) as image:
        assert image.format == "PNG" and image.size == (80, 60)
