"""The real PixelLib PointRend code on the random test model (never a mocked model)."""

import pickle
import warnings

import numpy as np
import pytest
from conftest import IMAGES
from masks import full_mask
from pycocotools import mask as coco_mask

from handler.core.errors import InvalidRequest, ModelFileError
from handler.core.settings import Settings
from handler.engine import images, segment_rgb
from handler.model import SPEED_SIZES, Segmenter, build_pointrend, read_weights
from handler.model.files import sha256_of
from handler.model.test_models import TEST_MODEL_AUTHOR


@pytest.fixture(scope="module")
def photo():
    return images.decode((IMAGES / "astronaut.jpg").read_bytes(), max_bytes=10**7, max_pixels=10**7)


def test_detections_match_schema_and_rle_decodes_to_the_model_masks(segmenter, photo):
    result = segment_rgb(photo, segmenter, confidence=0.0)
    assert len(result) >= 1, "the test model finds at least one object at confidence 0"
    body = result.to_json()
    height, width = photo.shape[:2]
    assert body["mask_shape"] == [height, width, len(result)]
    raw = segmenter.detect(photo, confidence=0.0)
    assert np.array_equal(np.array(body["scores"], np.float32), raw.scores)  # the model's floats, all digits
    assert np.array_equal(np.array(body["boxes"], np.float32).reshape(-1, 4), raw.boxes)
    assert all(
        name == segmenter.class_names[cid] for name, cid in zip(body["class_names"], body["class_ids"], strict=True)
    )
    for rle, crop in zip(body["masks"], raw.masks(), strict=True):
        decoded = coco_mask.decode({"size": rle["size"], "counts": rle["counts"].encode()})
        assert np.array_equal(decoded.astype(bool), full_mask(crop, height, width))


def test_zero_detections_give_a_valid_result(segmenter, photo):
    result = segment_rgb(photo, segmenter, confidence=1.0)
    body = result.to_json()
    assert body["mask_shape"] == [photo.shape[0], photo.shape[1], 0]
    assert body["masks"] == [] and body["boxes"] == [] and body["object_counts"] == {}


def test_caller_array_is_untouched(segmenter, photo):
    before = photo.copy()
    segment_rgb(photo, segmenter, confidence=0.0)
    assert np.array_equal(photo, before)


def test_confidence_is_per_call(segmenter, photo):
    low = segment_rgb(photo, segmenter, confidence=0.0)
    high = segment_rgb(photo, segmenter, confidence=1.0)
    again = segment_rgb(photo, segmenter, confidence=0.0)
    assert len(high) == 0 < len(low) == len(again)


def test_speed_modes_change_both_input_sizes(segmenter, photo):
    seen = []
    handle = segmenter.model.backbone.register_forward_pre_hook(lambda _m, args: seen.append(args[0].shape[-2:]))
    try:
        for speed in ("rapid", "fast"):
            segmenter.detect(photo, confidence=1.0, detection_speed=speed)
    finally:
        handle.remove()
    # The 320x320 photo is resized so its short edge is the mode's MIN size (padded to a multiple of 32).
    assert [tuple(shape) for shape in seen] == [(224, 224), (416, 416)]
    assert SPEED_SIZES["rapid"][0] == 200 and SPEED_SIZES["fast"][0] == 400


def test_target_classes_filter_and_unknown_names_are_refused(segmenter, photo):
    everything = segment_rgb(photo, segmenter, confidence=0.0)
    name = everything.class_names[0]
    only = segment_rgb(photo, segmenter, confidence=0.0, classes=[name])
    assert set(only.class_names) == {name} and len(only) == everything.class_names.count(name)
    others = [c for c in segmenter.class_names if c != name][:3]
    assert len(segment_rgb(photo, segmenter, confidence=0.0, classes=others)) == len(
        [c for c in everything.class_names if c in others]
    )
    with pytest.raises(InvalidRequest, match="unicorn"):
        segment_rgb(photo, segmenter, classes=["person", "unicorn"])


def test_test_model_is_in_pixellibs_own_format(test_model_path):
    from handler.model import pixellib_instance

    with test_model_path.open("rb") as stream:
        data = pickle.load(stream)  # noqa: S301 (our own file)
    assert set(data) == {"model", "__author__"} and data["__author__"] == TEST_MODEL_AUTHOR
    assert set(data["model"]) == set(build_pointrend().state_dict())
    assert all(isinstance(v, np.ndarray) for v in data["model"].values())
    stock = pixellib_instance.instanceSegmentation()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stock.load_model(str(test_model_path), confidence=0.0, detection_speed="rapid")
    results, _ = stock.segmentFrame(np.zeros((64, 64, 3), np.uint8))
    assert "boxes" in results


def test_weights_checksum_is_enforced(test_model_path):
    good = sha256_of(test_model_path)
    assert read_weights(test_model_path, good)
    with pytest.raises(ModelFileError, match="sha256"):
        read_weights(test_model_path, "0" * 64)


def test_missing_and_mismatched_weights_are_refused(tmp_path, test_model_path):
    with pytest.raises(ModelFileError, match="not found"):
        Segmenter(Settings(model_path=tmp_path / "absent.pkl"))
    partial = tmp_path / "partial.pkl"
    weights = read_weights(test_model_path, None)
    weights.pop(next(iter(weights)))
    partial.write_bytes(pickle.dumps({"model": weights, "__author__": "test"}))
    with pytest.raises(ModelFileError, match="1 missing keys"):
        Segmenter(Settings(model_path=partial))


def test_a_weights_pickle_cannot_run_code(tmp_path):
    class Exploit:
        def __reduce__(self):
            return (print, ("pwned",))

    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps({"model": {"x": Exploit()}, "__author__": "x"}))
    with pytest.raises(ModelFileError, match=r"refusing to load builtins\.print"):
        read_weights(evil, None)
