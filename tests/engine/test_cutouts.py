"""Cut-outs from crops, without the model: regions, alpha, names, laziness and the zip's size limit."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest
from cutout_checks import assert_cutouts, rgba
from masks import crop_of

from handler.engine import (
    CutoutMode,
    CutoutWriter,
    CutoutZip,
    Outputs,
    Segmentation,
    ZipTooLarge,
    cutout_name,
    cutout_png,
    encode_objects,
)
from handler.model import MaskCrop

RNG = np.random.default_rng(7)
RGB = RNG.integers(1, 256, (60, 80, 3), dtype=np.uint8)  # no black pixel: transparent black is ours


def result_of(boxes: list[list[float]], names: list[str]) -> Segmentation:
    return Segmentation(
        width=80,
        height=60,
        boxes=np.array(boxes, dtype=np.float32).reshape(-1, 4),
        scores=np.full(len(names), 0.9),
        class_ids=np.zeros(len(names), dtype=np.int64),
        class_names=names,
    )


def cut_out(
    masks: list[np.ndarray], boxes: list[list[float]], names: list[str], mode: CutoutMode = "mask"
) -> tuple[dict[str, bytes], Segmentation]:
    """The engine's per-object flow with RLE masks and a ``CutoutWriter`` collecting the PNGs."""
    files: dict[str, bytes] = {}
    writer = CutoutWriter(files.__setitem__, mode)
    result = result_of(boxes, names)
    encode_objects(RGB, result, (crop_of(mask) for mask in masks), Outputs(masks="rle", consumers=[writer]))
    assert writer.names == list(files) and result.timings_ms["cutouts"] > 0
    return files, result


def disc(cy: int, cx: int, radius: int) -> np.ndarray:
    rows, columns = np.ogrid[:60, :80]
    return (rows - cy) ** 2 + (columns - cx) ** 2 <= radius**2


def test_each_cut_out_is_its_mask_with_the_mask_as_alpha_and_black_outside() -> None:
    masks = [disc(20, 30, 10), disc(40, 60, 15), disc(5, 5, 8)]
    # The second box is narrower than its mask: the cut-out still holds the whole mask (PixelLib cut it off).
    boxes = [[19.7, 9.2, 41.9, 31.5], [50.0, 30.0, 70.0, 55.0], [0.0, 0.0, 14.0, 14.0]]
    names = ["person", "traffic light", "person"]
    files, result = cut_out(masks, boxes, names)
    assert list(files) == ["00-person.png", "01-traffic_light.png", "02-person.png"]
    assert_cutouts(files, result.to_json(), RGB)
    boxed, result = cut_out(masks, boxes, names, "box")
    assert_cutouts(boxed, result.to_json(), RGB, mode="box")


def opaque_pixels(png: bytes) -> int:
    return int((rgba(png)[:, :, 3] == 255).sum())


def test_a_thin_object_keeps_every_pixel_of_its_mask() -> None:
    """A one-pixel-wide diagonal and a one-row line, with float boxes whose truncation (PixelLib's crop)
    drops their last row and column: the cut-out holds every pixel of the mask."""
    diagonal = np.zeros((60, 80), bool)
    diagonal[np.arange(10, 50), np.arange(20, 60)] = True
    line = np.zeros((60, 80), bool)
    line[33, 5:71] = True
    boxes = [[20.4, 10.6, 59.3, 49.2], [5.2, 33.4, 70.1, 33.9]]
    files, result = cut_out([diagonal, line], boxes, ["snake", "rope"])
    assert [opaque_pixels(png) for png in files.values()] == [40, 66]
    assert rgba(files["00-snake.png"]).shape == (40, 40, 4) and rgba(files["01-rope.png"]).shape == (1, 66, 4)
    assert_cutouts(files, result.to_json(), RGB)
    boxed, _ = cut_out([diagonal, line], boxes, ["snake", "rope"], "box")
    assert rgba(boxed["00-snake.png"]).shape == (40, 40, 4)  # rows 10..49, columns 20..59: rounded outwards
    assert rgba(boxed["01-rope.png"]).shape == (1, 66, 4)


def test_objects_touching_the_image_edges_keep_every_pixel() -> None:
    corner = np.zeros((60, 80), bool)
    corner[52:, 71:] = True  # the bottom-right corner, the last row and column included
    left_edge = np.zeros((60, 80), bool)
    left_edge[:, 0] = True  # the whole first column
    whole = np.ones((60, 80), bool)
    boxes = [[71.5, 52.5, 79.99, 59.99], [0.0, 0.0, 0.9, 59.7], [0.0, 0.0, 80.0, 60.0]]
    files, result = cut_out([corner, left_edge, whole], boxes, ["cat", "pole", "wall"])
    assert [opaque_pixels(png) for png in files.values()] == [8 * 9, 60, 60 * 80]
    assert [rgba(png).shape for png in files.values()] == [(8, 9, 4), (60, 1, 4), (60, 80, 4)]
    assert_cutouts(files, result.to_json(), RGB)


def test_an_empty_mask_is_its_box_all_transparent() -> None:
    files, _ = cut_out([np.zeros((60, 80), bool)], [[10.5, 20.5, 14.2, 22.0]], ["ghost"])
    picture = rgba(files["00-ghost.png"])
    assert picture.shape == (2, 5, 4) and not picture.any()


def test_a_box_under_one_pixel_is_still_a_one_pixel_picture() -> None:
    mask = np.zeros((60, 80), bool)
    mask[10, 79] = True
    picture = rgba(cutout_png(RGB, MaskCrop(10, 79, mask[10:11, 79:80]), [79.2, 10.1, 79.9, 10.8]))
    assert picture.shape == (1, 1, 4)
    assert picture[0, 0, 3] == 255 and (picture[0, 0, :3] == RGB[10, 79]).all()


@pytest.mark.parametrize(
    ("index", "name", "count", "expected"),
    [
        (0, "person", 1, "00-person.png"),
        (7, "hair drier", 100, "07-hair_drier.png"),
        (7, "../etc/passwd", 100, "07-etc_passwd.png"),
        (120, "a", 1000, "120-a.png"),
        (3, "", 10, "03-object.png"),
        (3, "x" * 300, 10, "03-" + "x" * 48 + ".png"),
    ],
)
def test_names_sort_in_result_order_and_are_safe_file_names(index: int, name: str, count: int, expected: str) -> None:
    assert cutout_name(index, name, count) == expected


def test_each_cut_out_is_made_while_its_own_mask_is_in_hand() -> None:
    pasted: list[int] = []
    made: list[tuple[str, int]] = []

    def crops():
        for index in range(5):
            pasted.append(index)
            yield crop_of(disc(20, 30 + index, 10))

    writer = CutoutWriter(lambda name, png: made.append((name, len(pasted))))
    encode_objects(RGB, result_of([[20, 10, 41, 31]] * 5, ["cat"] * 5), crops(), Outputs(consumers=[writer]))
    assert made == [(f"{index:02d}-cat.png", index + 1) for index in range(5)]  # never a mask ahead


def test_the_zip_holds_the_cut_outs_then_result_json_and_stops_beyond_max_bytes() -> None:
    files, _ = cut_out([disc(30, 40, 25)] * 20, [[15, 5, 66, 56]] * 20, ["dog"] * 20)
    archive = CutoutZip()
    for name, png in files.items():
        archive.add(name, png)
    data = archive.finish({"objects": 20})
    with zipfile.ZipFile(io.BytesIO(data)) as opened:
        assert opened.namelist() == [*(f"{i:02d}-dog.png" for i in range(20)), "result.json"]
        assert json.loads(opened.read("result.json")) == {"objects": 20}
        assert opened.getinfo("00-dog.png").compress_type == zipfile.ZIP_STORED
        assert opened.read("07-dog.png") == files["07-dog.png"]
    small = CutoutZip(max_bytes=len(data) // 2)
    with pytest.raises(ZipTooLarge) as raised:
        for name, png in files.items():
            small.add(name, png)
    assert 0 < raised.value.objects < 20 and raised.value.size > len(data) // 2
    exact = CutoutZip(max_bytes=len(data))
    for name, png in files.items():
        exact.add(name, png)
    assert exact.finish({"objects": 20}) == data
