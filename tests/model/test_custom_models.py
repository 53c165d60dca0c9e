"""Models other than COCO's R50: the user's own PointRend (its classes named by SEG_CLASS_NAMES, ``.pkl`` or
``.pth``), the backbone setting, and the trained-like batch-norm statistics of every test model."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from conftest import CUSTOM_CLASSES, IMAGES

from handler.core.errors import InvalidRequest, ModelFileError
from handler.core.settings import Settings
from handler.engine import images, segment_rgb
from handler.model import Segmenter, read_checkpoint, read_weights
from handler.model.optimise import fold_batchnorms
from handler.model.pixellib import FrozenBatchNorm2d, build_pointrend

NAMES = ",".join(CUSTOM_CLASSES)


@pytest.fixture(scope="module")
def custom_path(custom_model_path):
    return custom_model_path


@pytest.fixture(scope="module")
def custom(custom_segmenter) -> Segmenter:
    return custom_segmenter


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return images.decode((IMAGES / "astronaut.jpg").read_bytes(), max_bytes=10**7, max_pixels=10**7)


def test_the_class_count_comes_from_the_checkpoint_and_must_match_the_names(custom_path, tmp_path):
    assert read_checkpoint(custom_path, None).num_classes == 3
    with pytest.raises(ModelFileError, match=r"has 3 classes, not COCO's 80: name them .*SEG_CLASS_NAMES"):
        Segmenter(Settings(model_path=custom_path))
    with pytest.raises(ModelFileError, match=r"has 3 classes but SEG_CLASS_NAMES names 2"):
        Segmenter(Settings(model_path=custom_path, class_names="cat,dog"))
    with pytest.raises(ModelFileError, match=r"names a class twice: \['cat'\]"):
        Segmenter(Settings(model_path=custom_path, class_names="cat,dog,cat"))
    names_file = tmp_path / "classes.txt"
    names_file.write_text("cat\ndog\n\nbird\n")
    from_file = Segmenter(Settings(model_path=custom_path, class_names=str(names_file)))
    assert from_file.class_names == CUSTOM_CLASSES


def test_a_custom_model_names_its_classes_everywhere(custom, photo):
    result = segment_rgb(photo, custom, confidence=0.5)
    body = result.to_json()
    assert len(result) > 0 and set(body["class_names"]) <= set(CUSTOM_CLASSES)
    assert body["model"] == {
        "name": "pointrend_resnet50",
        "sha256": custom.model_sha256,
        "backbone": "resnet50",
        "classes": list(CUSTOM_CLASSES),
    }
    assert body["class_names"].count("cat") > 0  # the dense test model: a crowd of its first class
    assert len(segment_rgb(photo, custom, confidence=0.5, classes=["cat"])) == body["class_names"].count("cat")
    with pytest.raises(InvalidRequest, match=r"unknown class names \['person'\]; the model knows \['cat'"):
        segment_rgb(photo, custom, classes=["person"])


def test_the_backbone_must_be_the_checkpoints(custom_path):
    with pytest.raises(ModelFileError, match="holds resnet50 weights but SEG_MODEL_BACKBONE is resnet101"):
        Segmenter(Settings(model_path=custom_path, model_backbone="resnet101", class_names=NAMES))


@pytest.mark.parametrize("wrapped", [False, True], ids=["bare state dict", "detectron2 model_final.pth"])
def test_a_pth_state_dict_loads_like_the_pkl(custom, custom_path, tmp_path, wrapped):
    state = {name: torch.from_numpy(np.asarray(array)) for name, array in read_weights(custom_path, None).items()}
    pth = tmp_path / "model_final.pth"
    torch.save({"model": state, "iteration": 89999} if wrapped else state, pth)
    loaded = Segmenter(Settings(model_path=pth, class_names=NAMES, detection_speed="rapid"))
    reference = custom.model.state_dict()
    assert loaded.class_names == CUSTOM_CLASSES
    assert all(torch.equal(tensor, reference[name]) for name, tensor in loaded.model.state_dict().items())
    assert loaded.model_sha256 != custom.model_sha256  # each names its own file


def test_a_pth_that_would_run_code_is_refused(tmp_path):
    class Exploit:
        def __reduce__(self):
            return (print, ("pwned",))

    evil = tmp_path / "evil.pth"
    with evil.open("wb") as stream:
        torch.save({"model": {"x": Exploit()}}, stream, pickle_protocol=pickle.HIGHEST_PROTOCOL)
    with pytest.raises(ModelFileError, match="weights_only=True"):
        read_checkpoint(evil, None)


def test_test_models_carry_trained_like_batchnorm_statistics(test_model_path):
    weights = read_weights(test_model_path, None)
    model = build_pointrend(init_weights=False)
    norms = [name for name, module in model.named_modules() if isinstance(module, FrozenBatchNorm2d)]
    assert len(norms) > 50
    for name in norms:
        weight, bias = weights[f"{name}.weight"], weights[f"{name}.bias"]
        mean, var = weights[f"{name}.running_mean"], weights[f"{name}.running_var"]
        assert not np.allclose(weight, 1) and not np.allclose(bias, 0), name
        assert not np.allclose(mean, 0) and not np.allclose(var, 1), name
        scale = weight / np.sqrt(var + 1e-5)  # what the norm multiplies by: activations keep their scale
        assert scale.min() >= 0.69 and scale.max() <= 1.31, name
    stem = "backbone.bottom_up.stem.conv1.weight"
    model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in weights.items()}, assign=True)
    assert fold_batchnorms(model) == len(norms)
    assert not torch.equal(model.state_dict()[stem], torch.from_numpy(weights[stem])), "the fold changes weights"
