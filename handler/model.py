"""Segmenter: PixelLib's PointRend built once per process, run on in-memory RGB arrays.

Every PixelLib quirk is handled here and nowhere else:
- Pillow >= 10 removed ``Image.LINEAR``, which PixelLib uses as a default argument: aliased below,
  before PixelLib is imported.
- ``detection_speed`` "fast"/"rapid" in PixelLib set ``cfg.INPUT_MIN_SIZE_TEST`` (a typo), so only the
  max size changes there; here each speed sets both sizes of the resize (``SPEED_SIZES``).
- ``segmentFrame`` draws on the caller's array, reads files, and returns scores as a torch tensor;
  here the array is never touched (the model gets its own BGR copy) and everything is numpy.
- Zero detections give ``masks`` of shape (0, H, W) in PixelLib; here masks are always (N, H, W).
- PixelLib's checkpointer only *warns* about missing or unexpected weights, which would silently serve
  a half-random model; here the weights' keys and shapes must match the model exactly.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import threading
import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from handler.errors import InvalidRequest, ModelFileError
from handler.results import Segmentation
from handler.settings import DetectionSpeed, Settings, get_settings

if not hasattr(Image, "LINEAR"):
    Image.LINEAR = Image.BILINEAR  # type: ignore[attr-defined]

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # pkg_resources deprecation, fvcore/iopath chatter
    import pixellib.torchbackend.instance as pixellib_instance
    from pixellib.torchbackend.instance.config import get_cfg
    from pixellib.torchbackend.instance.data import transforms as T
    from pixellib.torchbackend.instance.layers.batch_norm import FrozenBatchNorm2d
    from pixellib.torchbackend.instance.layers.wrappers import Conv2d
    from pixellib.torchbackend.instance.modeling.meta_arch.build import build_model
    from pixellib.torchbackend.instance.point_rend.config import add_pointrend_config

MODEL_NAME = "pointrend_resnet50"
RESNET50_CONFIG = Path(pixellib_instance.__file__).parent / "pkg" / "pointrend_rcnn_R_50_FPN_3x_coco.yaml"
COCO_CLASS_NAMES: tuple[str, ...] = tuple(pixellib_instance.instanceSegmentation().class_names)

# (shortest edge, longest edge cap) of the model input, per detection speed.
SPEED_SIZES: dict[str, tuple[int, int]] = {"normal": (800, 1333), "fast": (400, 667), "rapid": (200, 333)}


@dataclass(frozen=True)
class Detections:
    """Raw model output for one image, in original image coordinates."""

    boxes: np.ndarray  # (N, 4) float32, x1 y1 x2 y2
    scores: np.ndarray  # (N,) float32 in 0..1
    class_ids: np.ndarray  # (N,) int64, 0-based COCO index
    masks: np.ndarray  # (N, H, W) bool
    forward_ms: float


def build_config(detection_speed: DetectionSpeed = "normal"):
    """PixelLib's own PointRend R50-FPN config (as ``instanceSegmentation.load_model`` builds it)."""
    cfg = get_cfg()
    add_pointrend_config(cfg)
    cfg.merge_from_file(str(RESNET50_CONFIG))
    cfg.MODEL.DEVICE = "cpu"
    cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST = SPEED_SIZES[detection_speed]
    return cfg


def build_pointrend() -> torch.nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = build_model(build_config())
    return model.eval()


class WeightsUnpickler(pickle.Unpickler):
    """Unpickles dicts of numpy arrays and nothing else: a weights file cannot run code here."""

    ALLOWED = frozenset(
        {
            ("collections", "OrderedDict"),
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy.core.multiarray", "scalar"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "scalar"),
            ("numpy.core.numeric", "_frombuffer"),
            ("numpy._core.numeric", "_frombuffer"),
        }
    )

    def find_class(self, module: str, name: str) -> type:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a weights file")
        return super().find_class(module, name)


def read_weights(path: Path, expected_sha256: str | None) -> dict[str, np.ndarray]:
    """Unpickle a PixelLib/detectron2 ``.pkl`` (``{"model": {name: ndarray}, "__author__": ...}``).

    A pickle can run code when loaded, so only numpy arrays are unpickled (``WeightsUnpickler``), and with
    ``expected_sha256`` the file is refused unless it is byte-for-byte the pinned one.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ModelFileError(
            f"model file not found: {path} (run `python -m handler fetch-model`, or point SEG_MODEL_PATH "
            "at a PixelLib pointrend_resnet50.pkl; for tests: `python -m handler make-test-model PATH`)"
        ) from None
    if expected_sha256:
        actual = hashlib.sha256(data).hexdigest()
        if actual != expected_sha256.lower():
            raise ModelFileError(f"model file {path} has sha256 {actual}, expected {expected_sha256}")
    try:
        checkpoint = WeightsUnpickler(io.BytesIO(data), encoding="latin1").load()
    except pickle.UnpicklingError as exc:
        raise ModelFileError(f"{path} is not a weights pickle: {exc}") from None
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("model"), dict):
        raise ModelFileError(f"{path} is not a PixelLib/detectron2 checkpoint (no 'model' dict)")
    return checkpoint["model"]


def load_weights(model: torch.nn.Module, weights: dict[str, np.ndarray], source: Path) -> None:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    if missing or unexpected:
        raise ModelFileError(
            f"{source} does not fit PointRend R50-FPN: {len(missing)} missing keys {missing[:3]}, "
            f"{len(unexpected)} unexpected keys {unexpected[:3]}"
        )
    tensors = {}
    for name, value in weights.items():
        tensor = torch.as_tensor(np.asarray(value))
        if tuple(tensor.shape) != tuple(expected[name].shape):
            raise ModelFileError(
                f"{source}: {name} has shape {tuple(tensor.shape)}, expected {tuple(expected[name].shape)}"
            )
        tensors[name] = tensor
    model.load_state_dict(tensors, strict=True)


def fold_frozen_batchnorms(model: torch.nn.Module) -> int:
    """Fold each frozen BN into the convolution before it (same maths, one op fewer per layer)."""
    folded = 0
    for module in model.modules():
        if isinstance(module, Conv2d) and isinstance(module.norm, FrozenBatchNorm2d):
            norm = module.norm
            scale = norm.weight * (norm.running_var + norm.eps).rsqrt()
            shift = norm.bias - norm.running_mean * scale
            with torch.no_grad():
                module.weight.mul_(scale.reshape(-1, 1, 1, 1))
                bias = shift if module.bias is None else module.bias * scale + shift
                module.bias = torch.nn.Parameter(bias, requires_grad=False)
            module.norm = None
            folded += 1
    return folded


def use_channels_last(model: torch.nn.Module) -> None:
    """NHWC convolutions are faster on x86 CPUs (oneDNN); the backbone's input is converted once."""
    model.to(memory_format=torch.channels_last)
    backbone_forward = model.backbone.forward

    def forward(images: torch.Tensor):
        return backbone_forward(images.contiguous(memory_format=torch.channels_last))

    model.backbone.forward = forward


class Segmenter:
    """PointRend R50-FPN (PixelLib), loaded once; ``segment`` is safe to call from many threads."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        if settings.torch_threads:
            torch.set_num_threads(settings.torch_threads)
        started = time.perf_counter()
        self.model = build_pointrend()
        load_weights(self.model, read_weights(settings.model_path, settings.model_sha256), settings.model_path)
        fold_frozen_batchnorms(self.model)
        use_channels_last(self.model)
        self.load_ms = (time.perf_counter() - started) * 1000
        self.model_sha256 = settings.model_sha256
        self.class_names = COCO_CLASS_NAMES
        self._box_predictor = self.model.roi_heads.box_predictor
        self._lock = threading.Lock()

    def detect(
        self,
        rgb: np.ndarray,
        confidence: float | None = None,
        detection_speed: DetectionSpeed | None = None,
    ) -> Detections:
        """Run the model on an (H, W, 3) uint8 RGB array; the array is not modified."""
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"expected an (H, W, 3) uint8 RGB array, got {rgb.shape} {rgb.dtype}")
        height, width = rgb.shape[:2]
        min_size, max_size = SPEED_SIZES[detection_speed or self.settings.detection_speed]
        bgr = np.ascontiguousarray(rgb[:, :, ::-1])  # the model was trained on BGR (detectron2 default)
        resized = T.ResizeShortestEdge([min_size, min_size], max_size).get_transform(bgr).apply_image(bgr)
        image = torch.as_tensor(resized.astype("float32").transpose(2, 0, 1))
        threshold = self.settings.confidence if confidence is None else confidence
        with self._lock, torch.inference_mode():
            started = time.perf_counter()
            self._box_predictor.test_score_thresh = threshold
            instances = self.model.inference([{"image": image, "height": height, "width": width}])[0]["instances"]
            forward_ms = (time.perf_counter() - started) * 1000
        masks = instances.pred_masks.numpy().astype(bool, copy=False)
        return Detections(
            boxes=instances.pred_boxes.tensor.numpy().astype(np.float32),
            scores=instances.scores.numpy().astype(np.float32),
            class_ids=instances.pred_classes.numpy().astype(np.int64),
            masks=masks.reshape(len(instances), height, width),
            forward_ms=forward_ms,
        )

    def segment(
        self,
        rgb: np.ndarray,
        confidence: float | None = None,
        classes: Iterable[str] | None = None,
        detection_speed: DetectionSpeed | None = None,
    ) -> Segmentation:
        """Detect, then keep only ``classes`` (COCO names) when given."""
        wanted = self.validate_classes(classes)
        found = self.detect(rgb, confidence, detection_speed)
        result = Segmentation(
            width=rgb.shape[1],
            height=rgb.shape[0],
            boxes=found.boxes,
            scores=found.scores,
            class_ids=found.class_ids,
            class_names=[self.class_names[i] for i in found.class_ids],
            masks=found.masks,
            model={"name": MODEL_NAME, "sha256": self.model_sha256},
            timings_ms={"model": found.forward_ms},
        )
        if wanted is not None:
            result = result.select(np.array([name in wanted for name in result.class_names], dtype=bool))
        return result

    def validate_classes(self, classes: Iterable[str] | None) -> frozenset[str] | None:
        if classes is None:
            return None
        wanted = frozenset(name.strip() for name in classes if name.strip())
        unknown = sorted(wanted - set(self.class_names))
        if unknown:
            raise InvalidRequest(f"unknown class names {unknown}; the model knows the 80 COCO classes")
        return wanted or None


@lru_cache(maxsize=1)
def get_segmenter() -> Segmenter:
    """The process-wide model, built on first use (in Lambda: during the init phase)."""
    return Segmenter(get_settings())
