"""Masks pasted one at a time inside their boxes, in bands, give stock's N full-size masks exactly: pixels, RLE
bytes, polygons, overlay; and no two objects' masks are ever alive at once.

The dense test model (100 objects on any image) runs the real PixelLib code; the reference is detectron2's own
full-size paste (``detector_postprocess`` / ``paste_masks_in_image``) on the same model output.
"""

import math
import weakref

import cv2
import numpy as np
import pytest
import torch
from conftest import IMAGES
from masks import full_mask, full_polygons, stock_detect, stock_rle
from pixellib.torchbackend.instance.layers import paste_masks_in_image  # after handler.model: the Pillow shim
from pycocotools import mask as coco_mask

from handler.engine import Outputs, encode_objects, images, render
from handler.engine.pipeline import segment_rgb
from handler.engine.results import Segmentation
from handler.engine.rle import crop_rle
from handler.model import BAND_PIXELS, MaskCrop, paste_one, postprocess_boxes
from handler.model.pixellib import T


def photo(name: str) -> np.ndarray:
    return images.decode((IMAGES / name).read_bytes(), max_bytes=10**8, max_pixels=10**8)


def variants() -> list[tuple[str, np.ndarray]]:
    out = [(name, photo(name)) for name in ("astronaut.jpg", "chelsea.jpg", "coffee.png")]
    out.append(("rocket 517x333", cv2.resize(photo("rocket.jpg"), (517, 333), interpolation=cv2.INTER_LINEAR)))
    return out


def assert_crop_in_box(crop: MaskCrop, box: np.ndarray, height: int, width: int) -> None:
    """The crop is the box rounded out by one pixel (detectron2's paste region), within the image."""
    x0, y0, x1, y1 = (float(v) for v in box)
    assert crop.left == max(math.floor(x0) - 1, 0) and crop.top == max(math.floor(y0) - 1, 0)
    assert crop.right == min(math.ceil(x1) + 1, width) and crop.bottom == min(math.ceil(y1) + 1, height)


def test_dense_model_finds_100_people_on_any_image_at_any_confidence(dense_segmenter):
    for rgb in (np.zeros((90, 140, 3), np.uint8), photo("rocket.jpg")):
        found = dense_segmenter.detect(rgb, confidence=0.99)
        assert len(found.boxes) == 100 and set(found.class_ids.tolist()) == {0}
        assert (found.scores == 1.0).all()


@pytest.mark.parametrize(("name", "rgb"), variants(), ids=[name for name, _ in variants()])
def test_dense_detections_equal_stocks_full_masks(dense_segmenter, name, rgb):
    height, width = rgb.shape[:2]
    ours = dense_segmenter.detect(rgb, confidence=0.5, detection_speed="rapid")
    stock = stock_detect(dense_segmenter, rgb, confidence=0.5, speed="rapid")
    assert len(ours) == len(stock) == 100, name
    assert np.array_equal(ours.boxes, stock.pred_boxes.tensor.numpy())
    assert np.array_equal(ours.scores, stock.scores.numpy())
    assert np.array_equal(ours.class_ids, stock.pred_classes.numpy())
    crops = list(ours.masks())
    result = Segmentation(width, height, ours.boxes, ours.scores, ours.class_ids, ["person"] * 100)
    encode_objects(rgb, result, ours.masks(), Outputs(masks="rle"))
    as_polygons = Segmentation(width, height, ours.boxes, ours.scores, ours.class_ids, ["person"] * 100)
    encode_objects(rgb, as_polygons, ours.masks(), Outputs(masks="polygons"))
    polygons = as_polygons.polygons
    sizes = set()
    for index, (crop, rle, full) in enumerate(zip(crops, result.masks, stock.pred_masks.numpy(), strict=True)):
        assert rle["counts"].encode() == stock_rle(full), f"{name}: object {index}"
        assert np.array_equal(full_mask(crop, height, width), full)
        assert_crop_in_box(crop, ours.boxes[index], height, width)
        assert coco_mask.area({"size": rle["size"], "counts": rle["counts"].encode()}) == crop.mask.sum()
        assert polygons[index] == full_polygons(full)
        sizes.add(crop.mask.size)
    assert max(sizes) > 10 * min(sizes), "the dense model's boxes have varied sizes"
    as_full = [MaskCrop(0, 0, full) for full in stock.pred_masks.numpy()]
    assert np.array_equal(render(rgb, result, crops), render(rgb, result, as_full))


@pytest.mark.parametrize("band_pixels", [BAND_PIXELS, 1, 60], ids=["one band", "row by row", "60-pixel bands"])
def test_paste_at_borders_tiny_boxes_and_empty_masks_equals_stock(band_pixels):
    height, width, size = 37, 53, 28
    rng = np.random.default_rng(7)
    edges = [
        [0, 0, width, height],  # the whole image: touches all four borders
        [0, 5, 10, 20],  # left border
        [40, 0, 53, 9],  # top and right borders
        [10, 30, 20, 37],  # bottom border
        [0, 0, 1, 1],  # one pixel in each corner
        [52, 0, 53, 1],
        [0, 36, 1, 37],
        [52, 36, 53, 37],
        [20.5, 10.5, 21.5, 11.5],  # one pixel wide, off the pixel grid
        [30.2, 4.9, 30.6, 5.3],  # smaller than a pixel
    ]
    starts = rng.uniform(0, [width, height], size=(200, 2))
    extents = rng.uniform(0.05, 1.0, size=(200, 2)) * rng.choice([2, 10, 60], size=(200, 1))
    boxes = torch.tensor(edges + np.concatenate([starts, starts + extents], 1).tolist(), dtype=torch.float32)
    boxes[:, 0::2] = boxes[:, 0::2].clamp(0, width)
    boxes[:, 1::2] = boxes[:, 1::2].clamp(0, height)
    kinds = rng.integers(0, 4, len(boxes))
    kinds[0] = 1
    smooth = torch.nn.functional.interpolate(torch.rand(len(boxes), 1, 4, 4), size=(size, size), mode="bilinear")[:, 0]
    roi = torch.where(torch.as_tensor(kinds == 0)[:, None, None], 0.0, smooth)  # empty masks
    roi = torch.where(torch.as_tensor(kinds == 1)[:, None, None], 1.0, roi)  # the whole box
    crops = [paste_one(roi[index], boxes[index], height, width, band_pixels) for index in range(len(boxes))]
    stock = paste_masks_in_image(roi, boxes, (height, width)).numpy()
    for crop, full, box in zip(crops, stock, boxes.numpy(), strict=True):
        assert crop_rle(crop, height, width)["counts"].encode() == stock_rle(full)
        assert np.array_equal(full_mask(crop, height, width), full)
        assert_crop_in_box(crop, box, height, width)
    touched = {
        side for full in stock for side, edge in enumerate((full[0], full[-1], full[:, 0], full[:, -1])) if edge.any()
    }
    assert touched == {0, 1, 2, 3}, "masks reach every border"
    assert any(not full.any() for full in stock) and any(full.all() for full in stock[:1])


@pytest.mark.slow
def test_forty_megapixels_rle_equals_stocks_one_mask_at_a_time(dense_segmenter):
    rgb = cv2.resize(photo("astronaut.jpg"), (7300, 5480), interpolation=cv2.INTER_LINEAR)  # 40.0 MP
    height, width = rgb.shape[:2]
    ours = segment_rgb(rgb, dense_segmenter, confidence=0.5, detection_speed="rapid")
    assert len(ours) == 100
    # The reference: the model's raw output, detectron2's box scaling, then stock's full-size paste of one object
    # at a time (all 100 at once would be 4 GB).
    min_size, max_size = 200, 333
    resized = T.ResizeShortestEdge([min_size, min_size], max_size).get_transform(rgb).apply_image(rgb)
    image = torch.as_tensor(resized[:, :, ::-1].astype("float32").transpose(2, 0, 1))
    with torch.inference_mode():
        raw = dense_segmenter.model.inference([{"image": image}], do_postprocess=False)[0]
        instances, roi = postprocess_boxes(raw, height, width)
    boxes = instances.pred_boxes.tensor
    assert np.array_equal(boxes.numpy(), ours.boxes)
    rles = ours.masks
    for index in range(0, 100, 9):  # every 9th: each full-size reference paste and encode takes a while
        rle = rles[index]
        full = paste_masks_in_image(roi[index : index + 1], boxes[index : index + 1], (height, width))[0].numpy()
        assert rle["counts"].encode() == stock_rle(full), f"object {index}"


def test_a_box_over_the_whole_image_is_pasted_in_bands_exactly_as_stock():
    height, width = 2000, 2600  # 5.2 MP: two bands of the default size
    rng = np.random.default_rng(3)
    roi = torch.nn.functional.interpolate(torch.rand(2, 1, 7, 7), size=(28, 28), mode="bilinear")[:, 0]
    boxes = torch.tensor([[0.0, 0.0, width, height], [0.4, 1.6, width - 0.3, height - 2.5]])
    assert (height + 2) * (width + 2) > BAND_PIXELS
    for index in range(len(boxes)):
        full = paste_masks_in_image(roi[index : index + 1], boxes[index : index + 1], (height, width))[0].numpy()
        for band_pixels in (BAND_PIXELS, int(rng.integers(5000, 50000))):
            crop = paste_one(roi[index], boxes[index], height, width, band_pixels)
            assert crop_rle(crop, height, width)["counts"].encode() == stock_rle(full)
            assert 0 < crop.mask.sum() < full.size
    assert paste_one(roi[0], boxes[0], height, width).mask.shape == (height, width)


class OneMaskAtATime:
    """A consumer asserting the memory rule: each crop is released before the next object is pasted (the weak
    reference to the previous mask is dead by then)."""

    def __init__(self) -> None:
        self.alive: list[weakref.ref] = []
        self.seen = 0

    def start(self, rgb: np.ndarray, result: Segmentation) -> None:
        pass

    def add(self, index: int, crop: MaskCrop) -> None:
        assert all(ref() is None for ref in self.alive), f"object {index}: an earlier mask is still alive"
        self.alive = [weakref.ref(crop.mask)]
        self.seen += 1

    def finish(self, result: Segmentation) -> None:
        pass


def test_no_two_objects_masks_are_alive_at_once(dense_segmenter):
    watcher = OneMaskAtATime()
    outputs = Outputs(masks="rle", overlay=True, overlay_max_side=300, consumers=[watcher])
    rgb = photo("chelsea.jpg")
    result = segment_rgb(rgb, dense_segmenter, confidence=0.5, detection_speed="rapid", outputs=outputs)
    assert watcher.seen == len(result) == len(result.masks) == 100 and result.overlay_png


@pytest.mark.slow
@pytest.mark.timeout(900)  # 80 pastes of 5.2 MP and five full-size references: minutes on a loaded machine
def test_worst_model_whole_image_boxes_for_every_class_pasted_in_bands_one_at_a_time(worst_segmenter):
    """``--worst`` at the normal speed: every class has a box covering the whole image; pasted in bands
    (5.2 MP > BAND_PIXELS) with stock's RLE bytes, never two masks alive at once, through the engine's path."""
    rgb = cv2.resize(photo("astronaut.jpg"), (2600, 2000), interpolation=cv2.INTER_LINEAR)
    height, width = rgb.shape[:2]
    assert (height + 2) * (width + 2) > BAND_PIXELS
    found = worst_segmenter.detect(rgb, confidence=0.001, detection_speed="normal")
    whole = (found.boxes == np.array([0, 0, width, height], np.float32)).all(axis=1)
    assert len(found) >= 80 and sorted(found.class_ids[whole].tolist()) == list(range(80))
    areas = (found.boxes[:, 2] - found.boxes[:, 0]) * (found.boxes[:, 3] - found.boxes[:, 1])
    assert areas.sum() >= 80 * width * height

    watcher = OneMaskAtATime()
    outputs = Outputs(masks="rle", overlay=True, overlay_max_side=512, consumers=[watcher])
    result = segment_rgb(rgb, worst_segmenter, confidence=0.001, detection_speed="normal", outputs=outputs)
    assert watcher.seen == len(result.masks) == len(found) and result.overlay_png
    boxes = torch.from_numpy(found.boxes)
    for index in [*np.flatnonzero(whole)[::20], *np.flatnonzero(~whole)[:2]]:  # full-size references are slow
        full = paste_masks_in_image(found.roi_masks[index : index + 1], boxes[index : index + 1], (height, width))
        assert result.masks[index]["counts"].encode() == stock_rle(full[0].numpy()), f"object {index}"
