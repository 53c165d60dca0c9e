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

Speed (``bench/engine.py`` measures it against stock PixelLib and checks the outputs are the same): frozen BNs
folded into the convolutions, PointRend's mask refinement on the predicted class only, no drawing, inference
mode, and glibc allocator thresholds that stop every image from paging in ~1 GB of fresh memory
(``tune_allocator``). Cold start: no random init of weights that are replaced anyway, the weights file
streamed once (sha256 while unpickling) and its arrays used as the model's tensors without a copy.
``channels_last=True`` adds NHWC activations with fused oneDNN convs: faster, but not stock's numbers.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import pickle
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
import torch.nn.functional as F
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
    from pixellib.torchbackend.instance.modeling.backbone.fpn import FPN
    from pixellib.torchbackend.instance.modeling.backbone.resnet import BasicStem, BottleneckBlock
    from pixellib.torchbackend.instance.modeling.meta_arch.build import build_model
    from pixellib.torchbackend.instance.modeling.roi_heads.mask_head import mask_rcnn_inference
    from pixellib.torchbackend.instance.point_rend.config import add_pointrend_config
    from pixellib.torchbackend.instance.point_rend.mask_head import PointRendMaskHead
    from pixellib.torchbackend.instance.point_rend.point_features import (
        generate_regular_grid_point_coords,
        get_uncertain_point_coords_on_grid,
    )
    from pixellib.torchbackend.instance.point_rend.point_head import StandardPointHead

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


_INIT_FUNCTIONS = (
    "uniform_",
    "normal_",
    "trunc_normal_",
    "constant_",
    "ones_",
    "zeros_",
    "xavier_uniform_",
    "xavier_normal_",
    "kaiming_uniform_",
    "kaiming_normal_",
)
_build_lock = threading.Lock()


@contextmanager
def _without_weight_init() -> Iterator[None]:
    """Build modules without filling their weights with random numbers (they are about to be replaced).

    PointRend has ~60M parameters; drawing them at random costs about a second of cold start, and the
    untouched ``torch.empty`` memory is never paged in because ``load_weights`` swaps in the file's arrays.
    """
    saved = {name: getattr(torch.nn.init, name) for name in _INIT_FUNCTIONS}
    with _build_lock:
        for name in _INIT_FUNCTIONS:
            setattr(torch.nn.init, name, lambda tensor, *_args, **_kwargs: tensor)
        try:
            yield
        finally:
            for name, function in saved.items():
                setattr(torch.nn.init, name, function)


def build_pointrend(*, init_weights: bool = True) -> torch.nn.Module:
    """PixelLib's PointRend R50-FPN in eval mode; ``init_weights=False`` when weights are loaded next."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if init_weights:
            model = build_model(build_config())
        else:
            with _without_weight_init():
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


class _HashingReader:
    """A file wrapper that hashes what the unpickler reads, so the file is read (and copied) only once."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self.digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        self.digest.update(data)
        return data

    def readline(self, size: int = -1) -> bytes:
        data = self._stream.readline(size)
        self.digest.update(data)
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int:
        count = self._stream.readinto(buffer)
        self.digest.update(memoryview(buffer)[:count])
        return count

    def hexdigest(self) -> str:
        for block in iter(lambda: self.read(1 << 20), b""):  # whatever follows the pickle counts too
            del block
        return self.digest.hexdigest()


def read_weights(path: Path, expected_sha256: str | None) -> dict[str, np.ndarray]:
    """Unpickle a PixelLib/detectron2 ``.pkl`` (``{"model": {name: ndarray}, "__author__": ...}``).

    A pickle can run code when loaded, so only numpy arrays are unpickled (``WeightsUnpickler``), and with
    ``expected_sha256`` the file is refused unless it is byte-for-byte the pinned one. The file is streamed
    once: the sha256 is computed over the bytes as the unpickler reads them (no second 240 MB copy).
    """
    try:
        stream = path.open("rb")
    except FileNotFoundError:
        raise ModelFileError(
            f"model file not found: {path} (run `python -m handler fetch-model`, or point SEG_MODEL_PATH "
            "at a PixelLib pointrend_resnet50.pkl; for tests: `python -m handler make-test-model PATH`)"
        ) from None
    with stream:
        reader = _HashingReader(stream) if expected_sha256 else stream
        try:
            checkpoint, error = WeightsUnpickler(reader, encoding="latin1").load(), None
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as exc:
            checkpoint, error = None, exc
        if expected_sha256:
            actual = reader.hexdigest()
            if actual != expected_sha256.lower():
                raise ModelFileError(f"model file {path} has sha256 {actual}, expected {expected_sha256}")
    if error is not None:
        raise ModelFileError(f"{path} is not a weights pickle: {error}") from None
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("model"), dict):
        raise ModelFileError(f"{path} is not a PixelLib/detectron2 checkpoint (no 'model' dict)")
    return checkpoint["model"]


def load_weights(model: torch.nn.Module, weights: dict[str, np.ndarray], source: Path) -> None:
    """Put ``weights`` into ``model``; keys, shapes and dtypes must match its ``state_dict`` exactly.

    The arrays become the model's tensors without a copy (``assign=True``), so a model built with
    ``init_weights=False`` never touches memory for weights it is about to drop.
    """
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
        array = np.asarray(value)
        target = expected[name]
        if tuple(array.shape) != tuple(target.shape):
            raise ModelFileError(f"{source}: {name} has shape {tuple(array.shape)}, expected {tuple(target.shape)}")
        if not array.flags.writeable or not array.flags.c_contiguous or array.dtype != target.numpy().dtype:
            array = np.array(array, dtype=target.numpy().dtype, order="C")  # own, writable memory
        tensors[name] = torch.from_numpy(array)
    model.load_state_dict(tensors, strict=True, assign=True)


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


# --- oneDNN fused convolutions --------------------------------------------------------------------------------
# PyTorch's eager CPU convolution runs each conv, ReLU and residual add as its own pass over memory.
# ``torch.ops.mkldnn._convolution_pointwise`` (the op Inductor's CPU backend emits) runs the same oneDNN
# convolution with the ReLU / add applied in its epilogue: bit for bit what the unfused ops give on the same
# memory layout, without the extra passes. Part of the ``channels_last`` option (on NCHW it is no faster than
# PyTorch's own path). Only used where it applies: CPU float32, non-empty input, no autograd; everything else
# takes PixelLib's own forward.
_conv_pointwise = torch.ops.mkldnn._convolution_pointwise.default
_conv_pointwise_add = torch.ops.mkldnn._convolution_pointwise.binary
_RELU = (F.relu, F.relu_, torch.relu, torch.relu_)


def _fusable(x: torch.Tensor) -> bool:
    return x.dtype == torch.float32 and x.device.type == "cpu" and x.numel() > 0 and not torch.is_grad_enabled()


def _conv_args(conv: torch.nn.Module) -> tuple[list[int], list[int], list[int], int]:
    return list(conv.padding), list(conv.stride), list(conv.dilation), conv.groups


def _conv(conv: torch.nn.Module, x: torch.Tensor, attr: str = "none") -> torch.Tensor:
    return _conv_pointwise(x, conv.weight, conv.bias, *conv._fused_args, attr, [], "")


def _conv_add(conv: torch.nn.Module, x: torch.Tensor, other: torch.Tensor, relu: bool) -> torch.Tensor:
    """``conv(x) + other`` (then ReLU when asked), as one op."""
    return _conv_pointwise_add(
        x, other, conv.weight, conv.bias, *conv._fused_args, "add", 1.0, "relu" if relu else None, [], ""
    )


def _fusable_conv(conv: object) -> bool:
    return (
        isinstance(conv, torch.nn.Conv1d | torch.nn.Conv2d)
        and getattr(conv, "norm", None) is None
        and conv.padding_mode == "zeros"
        and not isinstance(conv.padding, str)
        and conv.weight.dtype == torch.float32
    )


def _activation(conv: torch.nn.Module) -> str | None:
    activation = getattr(conv, "activation", None)
    if activation is None:
        return "none"
    if activation in _RELU or isinstance(activation, torch.nn.ReLU):
        return "relu"
    return None


def _fused_conv_forward(conv: torch.nn.Module, attr: str, original: Callable) -> Callable:
    def forward(x: torch.Tensor) -> torch.Tensor:
        return _conv(conv, x, attr) if _fusable(x) else original(x)

    return forward


def _fused_bottleneck_forward(block: BottleneckBlock, original: Callable) -> Callable:
    def forward(x: torch.Tensor) -> torch.Tensor:  # PixelLib: relu(conv3(relu(conv2(relu(conv1(x))))) + shortcut)
        if not _fusable(x):
            return original(x)
        out = _conv(block.conv1, x, "relu")
        out = _conv(block.conv2, out, "relu")
        shortcut = x if block.shortcut is None else _conv(block.shortcut, x)
        return _conv_add(block.conv3, out, shortcut, relu=True)

    return forward


def _fused_stem_forward(stem: BasicStem, original: Callable) -> Callable:
    def forward(x: torch.Tensor) -> torch.Tensor:
        if not _fusable(x):
            return original(x)
        return F.max_pool2d(_conv(stem.conv1, x, "relu"), kernel_size=3, stride=2, padding=1)

    return forward


def _fused_fpn_forward(fpn: FPN, original: Callable) -> Callable:
    def forward(x: torch.Tensor) -> dict[str, torch.Tensor]:  # PixelLib's FPN.forward, lateral conv + add fused
        if not _fusable(x):
            return original(x)
        bottom_up = fpn.bottom_up(x)
        prev = fpn.lateral_convs[0](bottom_up[fpn.in_features[-1]])
        results = [fpn.output_convs[0](prev)]
        for idx, (lateral_conv, output_conv) in enumerate(zip(fpn.lateral_convs, fpn.output_convs, strict=True)):
            if idx > 0:
                top_down = F.interpolate(prev, scale_factor=2.0, mode="nearest")
                prev = _conv_add(lateral_conv, bottom_up[fpn.in_features[-idx - 1]], top_down, relu=False)
                results.insert(0, output_conv(prev))
        if fpn.top_block is not None:
            if fpn.top_block.in_feature in bottom_up:
                top_input = bottom_up[fpn.top_block.in_feature]
            else:
                top_input = results[fpn._out_features.index(fpn.top_block.in_feature)]
            results.extend(fpn.top_block(top_input))
        return dict(zip(fpn._out_features, results, strict=True))

    return forward


def _fused_point_head_forward(head: StandardPointHead, original: Callable) -> Callable:
    def forward(fine_grained_features: torch.Tensor, coarse_features: torch.Tensor) -> torch.Tensor:
        x = torch.cat((fine_grained_features, coarse_features), dim=1)
        if not _fusable(x):
            return original(fine_grained_features, coarse_features)
        for layer in head.fc_layers:
            x = _conv(layer, x, "relu")
            if head.coarse_pred_each_layer:
                x = torch.cat((x, coarse_features), dim=1)
        return _conv(head.predictor, x)

    return forward


def fuse_convolutions(model: torch.nn.Module) -> int:
    """Route PointRend's convolutions through oneDNN fused conv+ReLU / conv+add(+ReLU) ops (after BN folding).

    Returns how many convolutions were fused. Each module keeps its original forward as the fallback.
    """
    if not torch.backends.mkldnn.is_available():
        return 0
    fused = 0
    for module in model.modules():
        if _fusable_conv(module) and _activation(module) is not None:
            module._fused_args = _conv_args(module)
            module.forward = _fused_conv_forward(module, _activation(module), module.forward)
            fused += 1
    for module in model.modules():
        if (
            isinstance(module, BottleneckBlock)
            and all(
                hasattr(conv, "_fused_args") and _activation(conv) == "none"
                for conv in (module.conv1, module.conv2, module.conv3)
            )
            and (module.shortcut is None or hasattr(module.shortcut, "_fused_args"))
        ):
            module.forward = _fused_bottleneck_forward(module, module.forward)
        elif isinstance(module, BasicStem) and hasattr(module.conv1, "_fused_args"):
            module.forward = _fused_stem_forward(module, module.forward)
        elif (
            isinstance(module, FPN)
            and module._fuse_type == "sum"
            and all(hasattr(conv, "_fused_args") for conv in module.lateral_convs)
        ):
            module.forward = _fused_fpn_forward(module, module.forward)
        elif isinstance(module, StandardPointHead) and all(
            hasattr(layer, "_fused_args") for layer in [*module.fc_layers, module.predictor]
        ):
            module.forward = _fused_point_head_forward(module, module.forward)
    return fused


def predicted_class_subdivision(mask_head: PointRendMaskHead) -> None:
    """PointRend's mask refinement on the predicted class's channel only.

    PixelLib upsamples, scores and scatters the mask logits of all 80 classes at every subdivision step
    (up to 224x224 per box) and keeps one of them at the end. Bilinear upsampling, the uncertainty map and
    the scatter treat channels independently, so taking the predicted class's channel of each point
    prediction first gives the same masks at 1/80 of that work.
    """

    def subdivision_inference(features, mask_representations, instances):  # PixelLib's signature
        pred_boxes = [x.pred_boxes for x in instances]
        pred_classes = torch.cat([x.pred_classes for x in instances])
        rows = torch.arange(pred_classes.size(0), device=pred_classes.device)
        resolution = mask_head.mask_point_subdivision_init_resolution
        mask_logits = None
        for _ in range(mask_head.mask_point_subdivision_steps + 1):
            if mask_logits is None:
                point_coords = generate_regular_grid_point_coords(pred_classes.size(0), resolution, rows.device)
            else:
                mask_logits = F.interpolate(mask_logits, scale_factor=2, mode="bilinear", align_corners=False)
                point_indices, point_coords = get_uncertain_point_coords_on_grid(
                    -torch.abs(mask_logits), mask_head.mask_point_subdivision_num_points
                )
            fine_grained_features = mask_head._point_pooler(features, pred_boxes, point_coords)
            point_logits = mask_head._get_point_logits(fine_grained_features, point_coords, mask_representations)
            point_logits = point_logits[rows, pred_classes].unsqueeze(1)  # (R, 1, P): the predicted class
            if mask_logits is None:
                mask_logits = point_logits.reshape(-1, 1, resolution, resolution)
                if len(pred_classes) == 0:
                    break
            else:
                count, _, height, width = mask_logits.shape
                mask_logits = (
                    mask_logits.reshape(count, 1, height * width)
                    .scatter_(2, point_indices.unsqueeze(1), point_logits)
                    .view(count, 1, height, width)
                )
        mask_rcnn_inference(mask_logits, instances)  # one channel: sigmoid, as PixelLib does for the class
        return instances

    mask_head._subdivision_inference = subdivision_inference


def use_channels_last(model: torch.nn.Module) -> None:
    """NHWC activations (with ``fuse_convolutions``): about 1.2x faster backbone, but NOT the stock numbers.

    oneDNN's NHWC kernels sum in another order than the blocked-NCHW kernels stock PixelLib runs, so floats
    differ in the last bits. Trained weights shrug that off; the random test model amplifies it into boxes
    several pixels off and masks with IoU < 0.99 against stock (bench/engine.py shows it), so this is an
    option (``Segmenter(..., channels_last=True)``), not the default. Only activations are converted: oneDNN
    reorders the weights per call either way, and converting them would copy 140 MB at cold start.
    """
    backbone_forward = model.backbone.forward

    def forward(images: torch.Tensor):
        return backbone_forward(images.contiguous(memory_format=torch.channels_last))

    model.backbone.forward = forward


def optimise(model: torch.nn.Module, *, channels_last: bool = False) -> torch.nn.Module:
    """The speed-ups that keep stock PixelLib's outputs bit for bit; ``channels_last`` adds the one that does not.

    Default: frozen BNs folded into the convolutions (the test model's BNs fold exactly; trained ones to the
    last bit) and PointRend's refinement on the predicted class only. With ``channels_last``: fused oneDNN
    conv ops on NHWC activations as well (``fuse_convolutions`` + ``use_channels_last``). Fusing alone on
    NCHW activations is not faster than PyTorch's own NCHW path, so it is not used there.
    """
    fold_frozen_batchnorms(model)
    predicted_class_subdivision(model.roi_heads.mask_head)
    if channels_last:
        fuse_convolutions(model)
        use_channels_last(model)  # after fusing: it wraps the backbone's (fused) forward
    return model


_MALLOC_TUNED = False


def tune_allocator(mmap_threshold: int = 256 << 20, trim_threshold: int = 1024 << 20) -> bool:
    """Keep freed activation buffers in the process instead of returning them to the kernel (glibc only).

    glibc serves every allocation above 32 MB with a fresh ``mmap`` and gives it back on ``free`` (and trims
    the heap above 128 kB), so each inference pages in 1-1.5 GB of new zeroed memory: ~360k page faults,
    ~1 s of system time per image at the default size on 2 vCPUs. With these thresholds the activation
    buffers are reused from the heap: the same numbers, ~1.25x faster end to end, for ~200 MB more peak
    resident memory (1.9 GB instead of 1.7 GB). Process-wide and idempotent.
    """
    global _MALLOC_TUNED
    if _MALLOC_TUNED:
        return True
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to tune
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
    _MALLOC_TUNED = bool(mallopt(m_mmap_threshold, mmap_threshold) and mallopt(m_trim_threshold, trim_threshold))
    return _MALLOC_TUNED


class Segmenter:
    """PointRend R50-FPN (PixelLib), loaded once; ``segment`` is safe to call from many threads."""

    def __init__(self, settings: Settings, *, channels_last: bool | None = None) -> None:
        self.settings = settings
        if settings.torch_threads:
            torch.set_num_threads(settings.torch_threads)
        tune_allocator()
        started = time.perf_counter()
        self.model = build_pointrend(init_weights=False)
        load_weights(self.model, read_weights(settings.model_path, settings.model_sha256), settings.model_path)
        if channels_last is None:
            channels_last = settings.channels_last
        optimise(self.model, channels_last=channels_last)
        self.channels_last = channels_last
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
