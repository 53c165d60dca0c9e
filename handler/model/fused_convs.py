"""The ``channels_last`` option: oneDNN fused convolutions on NHWC activations (faster, not stock's numbers).

PyTorch's eager CPU convolution runs each conv, ReLU and residual add as its own pass over memory.
``torch.ops.mkldnn._convolution_pointwise`` (the op Inductor's CPU backend emits) applies the ReLU / add in
the convolution's epilogue. Used only where it applies (CPU float32, non-empty input, no autograd);
everything else takes PixelLib's own forward. See docs/performance.md.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from handler.model.pixellib import FPN, BasicStem, BottleneckBlock, StandardPointHead

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


def use_channels_last(model: torch.nn.Module) -> None:
    """NHWC activations (with ``fuse_convolutions``): a faster backbone, but NOT the stock numbers.

    oneDNN's NHWC kernels sum in another order than the blocked-NCHW kernels stock PixelLib runs, so floats
    differ in the last bits. Trained weights shrug that off; the random test model amplifies it into boxes
    and masks outside the tolerance against stock (bench/engine.py shows it; docs/performance.md), so this is an
    option (``Segmenter(..., channels_last=True)``), not the default. Only activations are converted: oneDNN
    reorders the weights per call either way, and converting them would copy all the
    convolution weights at cold start.
    """
    backbone_forward = model.backbone.forward

    def forward(images: torch.Tensor):
        return backbone_forward(images.contiguous(memory_format=torch.channels_last))

    model.backbone.forward = forward
