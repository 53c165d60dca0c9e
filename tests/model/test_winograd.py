"""Winograd F(4x4, 3x3) against PyTorch's direct convolution, both against the exact (float64) result."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from handler.model.optimise import fold_batchnorms, use_winograd
from handler.model.pixellib import build_pointrend
from handler.model.winograd import DEFAULT_REACH, REACH, WinogradConv2d, transform_weight, winograd_conv3x3


def relative_error(value: torch.Tensor, exact: torch.Tensor) -> float:
    return float((value.double() - exact).norm() / exact.norm())


@pytest.mark.parametrize(
    ("channels", "out_channels", "height", "width"),
    [
        (256, 256, 64, 96),
        (128, 128, 40, 56),
        (256, 256, 37, 51),
        (512, 512, 25, 42),
        (256, 128, 9, 7),
        (256, 256, 1, 1),
    ],
)
@pytest.mark.parametrize("bias", [True, False])
def test_it_is_the_convolution_within_float32_rounding(channels, out_channels, height, width, bias):
    generator = torch.Generator().manual_seed(height * width)
    x = torch.randn(1, channels, height, width, generator=generator)
    weight = torch.randn(out_channels, channels, 3, 3, generator=generator) / (3 * channels**0.5)
    b = torch.randn(out_channels, generator=generator) if bias else None
    exact = F.conv2d(x.double(), weight.double(), None if b is None else b.double(), padding=1)
    with torch.inference_mode():
        direct = F.conv2d(x, weight, b, padding=1)
        ours = winograd_conv3x3(x, transform_weight(weight), b)
    assert ours.shape == direct.shape and ours.is_contiguous()
    # Both algorithms round; Winograd's transforms add a few float32 roundings per output (float32's epsilon is
    # 1.2e-7): measured 0.9-2.6e-6 here, the direct convolution 0.2-1.5e-6.
    assert relative_error(direct, exact) <= 5e-6
    assert relative_error(ours, exact) <= 5e-6


def test_a_wrong_transform_is_caught():
    """The check above can fail: the transposed weights (a plausible slip) are far off."""
    x = torch.randn(1, 256, 16, 16)
    weight = torch.randn(256, 256, 3, 3)
    exact = F.conv2d(x.double(), weight.double(), padding=1)
    with torch.inference_mode():
        wrong = winograd_conv3x3(x, transform_weight(weight.transpose(2, 3)), None)
    assert relative_error(wrong, exact) > 0.1


def test_the_wide_3x3_convolutions_take_it_and_give_the_same_features():
    model = build_pointrend("resnet50", 80, init_weights=True).eval()
    stock = build_pointrend("resnet50", 80, init_weights=False).eval()
    stock.load_state_dict(model.state_dict())
    fold_batchnorms(model)  # as optimise() does first: the backbone's convolutions then carry no norm
    # res3 (4), res4 (6) and res5 (3) blocks' 3x3, the FPN's four output convolutions, the RPN head: 128+ channels.
    assert use_winograd(model, DEFAULT_REACH) == 18
    x101 = build_pointrend("resnet101", 80, init_weights=False)
    assert use_winograd(x101, DEFAULT_REACH) == 5  # X-101's 3x3 are grouped
    on_avx512 = build_pointrend("resnet50", 80, init_weights=False)
    fold_batchnorms(on_avx512)
    assert use_winograd(on_avx512, REACH["AVX512"]) == 11  # 256 channels only: res4 (6), the FPN's four, the RPN
    image = torch.rand(1, 3, 256, 320) * 255
    with torch.inference_mode():
        ours, theirs = model.backbone(image), stock.backbone(image)
    assert ours.keys() == theirs.keys()
    for level in ours:
        assert relative_error(ours[level], theirs[level].double()) <= 1e-5, level


def test_small_maps_and_batches_keep_the_direct_path():
    conv = torch.nn.Conv2d(256, 256, 3, padding=1)
    narrow = torch.nn.Conv2d(64, 64, 3, padding=1)
    model = torch.nn.Sequential(conv, narrow)
    assert use_winograd(model, DEFAULT_REACH) == 1
    assert isinstance(model[0], WinogradConv2d) and model[1] is narrow
    assert model[0].weight is conv.weight  # shared, not copied
    conv = model[0]
    calls = []
    with torch.inference_mode():
        for shape in [(1, 256, 8, 8), (2, 256, 40, 40), (1, 256, 32, DEFAULT_REACH.min_pixels // 32)]:
            x = torch.randn(shape)
            calls.append(torch.equal(conv(x), F.conv2d(x, conv.weight, conv.bias, padding=1)))
    assert calls == [True, True, False]  # the last one (big enough, one image) is the Winograd path
