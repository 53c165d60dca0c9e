"""PixelLib's PointRend (R50-FPN or X-101-32x8d-FPN): its imports (with the one Pillow shim they need), config
and build, for COCO's 80 classes or a checkpoint's own number of classes.

Quirks of PixelLib 0.7.1 handled here: Pillow >= 10 removed ``Image.LINEAR`` (aliased before the import);
``detection_speed`` "fast"/"rapid" set ``cfg.INPUT_MIN_SIZE_TEST`` (a typo), so ``SPEED_SIZES`` sets both sizes.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from PIL import Image
from torch.overrides import TorchFunctionMode

from handler.core.catalogue import DEFAULT_BACKBONE, weights
from handler.core.settings import Backbone, DetectionSpeed
from handler.model.no_dynamo import import_torchvision

import_torchvision()  # before PixelLib's layers import torchvision.ops: without torch._dynamo (no_dynamo.py)
if not hasattr(Image, "LINEAR"):
    Image.LINEAR = Image.BILINEAR  # type: ignore[attr-defined]

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # pkg_resources deprecation, fvcore/iopath chatter
    import pixellib.torchbackend.instance as pixellib_instance
    from pixellib.torchbackend.instance.config import get_cfg
    from pixellib.torchbackend.instance.data import transforms as T
    from pixellib.torchbackend.instance.layers.batch_norm import FrozenBatchNorm2d
    from pixellib.torchbackend.instance.layers.mask_ops import _do_paste_mask
    from pixellib.torchbackend.instance.layers.roi_align import ROIAlign
    from pixellib.torchbackend.instance.layers.shape_spec import ShapeSpec
    from pixellib.torchbackend.instance.layers.wrappers import Conv2d
    from pixellib.torchbackend.instance.modeling.backbone.fpn import FPN
    from pixellib.torchbackend.instance.modeling.backbone.resnet import BasicStem, BottleneckBlock
    from pixellib.torchbackend.instance.modeling.meta_arch.build import build_model
    from pixellib.torchbackend.instance.modeling.postprocessing import detector_postprocess
    from pixellib.torchbackend.instance.modeling.roi_heads.mask_head import mask_rcnn_inference
    from pixellib.torchbackend.instance.point_rend.config import add_pointrend_config
    from pixellib.torchbackend.instance.point_rend.mask_head import PointRendMaskHead
    from pixellib.torchbackend.instance.point_rend.point_features import (
        generate_regular_grid_point_coords,
        get_uncertain_point_coords_on_grid,
    )
    from pixellib.torchbackend.instance.point_rend.point_head import StandardPointHead
    from pixellib.torchbackend.instance.structures.instances import Instances

# PixelLib's pieces the other model modules use, imported only here (after the Pillow shim).
__all__ = [
    "BACKBONES",
    "COCO_CLASS_NAMES",
    "FPN",
    "MODEL_NAME",
    "SPEED_SIZES",
    "BasicStem",
    "BottleneckBlock",
    "Conv2d",
    "FrozenBatchNorm2d",
    "Instances",
    "PointRendMaskHead",
    "ROIAlign",
    "ShapeSpec",
    "StandardPointHead",
    "T",
    "_do_paste_mask",
    "build_config",
    "build_pointrend",
    "detector_postprocess",
    "generate_regular_grid_point_coords",
    "get_uncertain_point_coords_on_grid",
    "mask_rcnn_inference",
    "model_name",
    "pixellib_instance",
]


PKG = Path(pixellib_instance.__file__).parent / "pkg"
COCO_CLASS_NAMES: tuple[str, ...] = tuple(pixellib_instance.instanceSegmentation().class_names)

# PixelLib's ``network_backbone`` names -> the config file its ``load_model`` merges (resnet101 is PointRend's
# X-101-32x8d-FPN config, as PixelLib names it).
BACKBONES: dict[str, Path] = {
    "resnet50": PKG / "pointrend_rcnn_R_50_FPN_3x_coco.yaml",
    "resnet101": PKG / "pointrend_rcnn_X_101_32x8d_FPN_3x_coco.yaml",
}
MODEL_NAME = weights(DEFAULT_BACKBONE).name  # the default model's name (its release file's, without .pkl)

# (shortest edge, longest edge cap) of the model input, per detection speed.
SPEED_SIZES: dict[str, tuple[int, int]] = {"normal": (800, 1333), "fast": (400, 667), "rapid": (200, 333)}


def model_name(backbone: Backbone) -> str:
    """The catalogue's name of the backbone's model (its release file's name without ``.pkl``)."""
    return weights(backbone).name


def build_config(detection_speed: DetectionSpeed = "normal", backbone: Backbone = "resnet50", num_classes: int = 80):
    """PixelLib's own PointRend config, as ``instanceSegmentation.load_model(network_backbone=...)`` builds it.

    ``num_classes`` other than COCO's 80 (a model trained on its own classes) sets both heads' class count,
    as detectron2's PointRend training config does; stock PixelLib has no parameter for it.
    """
    cfg = get_cfg()
    add_pointrend_config(cfg)
    cfg.merge_from_file(str(BACKBONES[backbone]))
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = cfg.MODEL.POINT_HEAD.NUM_CLASSES = num_classes
    cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST = SPEED_SIZES[detection_speed]
    return cfg


class _SkipWeightInit(TorchFunctionMode):
    """Inside: ``torch.nn.init``'s fills (the ones PixelLib's layers and torch's own ``reset_parameters`` call)
    return their tensor untouched. A torch function mode is local to the thread that enters it: other threads
    still initialise their weights, and nothing of ``torch.nn.init`` is replaced."""

    SKIPPED = frozenset(
        {
            torch.nn.init.uniform_,
            torch.nn.init.normal_,
            torch.nn.init.constant_,
            torch.nn.init.kaiming_uniform_,
            torch.nn.init.kaiming_normal_,
            torch.Tensor.uniform_,
            torch.Tensor.normal_,
        }
    )

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in self.SKIPPED:
            return args[0] if args else (kwargs or {})["tensor"]
        return func(*args, **(kwargs or {}))


@contextmanager
def without_weight_init() -> Iterator[None]:
    """Build modules without filling their weights with random numbers (they are about to be replaced).

    PointRend has ~60M parameters: drawing them at random is a noticeable part of a cold start, and the
    untouched ``torch.empty`` memory is never paged in because ``load_weights`` swaps in the file's arrays.
    Only this thread's calls are affected, and only inside the block (left even on an error).
    """
    with _SkipWeightInit():
        yield


def build_pointrend(
    backbone: Backbone = "resnet50", num_classes: int = 80, *, init_weights: bool = True
) -> torch.nn.Module:
    """PixelLib's PointRend in eval mode; ``init_weights=False`` when weights are loaded next."""
    cfg = build_config(backbone=backbone, num_classes=num_classes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if init_weights:
            model = build_model(cfg)
        else:
            with without_weight_init():
                model = build_model(cfg)
    return model.eval()
