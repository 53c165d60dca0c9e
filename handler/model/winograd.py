"""Winograd F(4x4, 3x3) for the model's wide 3x3 convolutions: the same convolution in 4x fewer multiplications.

Almost all of the forward's time is convolutions, and most of their FLOPs are 3x3, stride-1 convolutions on
128 to 512 channels: the FPN's output convolutions, the RPN's head and the ResNet's res3-res5 blocks. Lavin &
Gray's minimal filtering algorithm computes each 4x4 output tile from a 6x6 input tile with 36 products per
input/output channel pair instead of 144: the input tiles and the weights are transformed (additions and
small constant multiples), multiplied as 36 matrix products, and transformed back. PyTorch's CPU convolution
(oneDNN) has no Winograd kernel for float32 on AVX2 machines, so each band of tile rows (bounded memory,
cache-sized) runs as three matmuls: the input transform, the 36 products (one batched matmul), the output
transform.

Its float32 results differ from the direct convolution's by rounding only: both are within about 2e-6
(relative) of the exact float64 result; docs/models.md has the figures and tests/model/test_winograd.py
checks them. Convolutions where the transforms cost more than they save keep PyTorch's own path; which ones
depends on the CPU (``REACH``: few channels and small maps on AVX2, all but the large 256-channel maps on
AVX-512, where oneDNN's direct kernels are faster; bench/convolutions.py measures it).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from handler.model.fold import FoldedConv2d
from handler.model.pixellib import Conv2d
from handler.model.swap import UnsuitableModel, conv_like

TILE = 4  # output tile edge (m)
ALPHA = 6  # input tile edge: m + r - 1
B_T = (
    (4, 0, -5, 0, 1, 0),
    (0, -4, -4, 1, 1, 0),
    (0, 4, -4, -1, 1, 0),
    (0, -2, -1, 2, 1, 0),
    (0, 2, -1, -2, 1, 0),
    (0, 4, 0, -5, 0, 1),
)
G = (
    (1 / 4, 0, 0),
    (-1 / 6, -1 / 6, -1 / 6),
    (-1 / 6, 1 / 6, -1 / 6),
    (1 / 24, 1 / 12, 1 / 6),
    (1 / 24, -1 / 12, 1 / 6),
    (0, 0, 1),
)
A_T = ((1, 1, 1, 1, 1, 0), (0, 1, -1, 2, -2, 0), (0, 1, 1, 4, 4, 0), (0, 1, -1, 8, -8, 1))


class Reach(NamedTuple):
    """The convolutions Winograd runs faster than PyTorch's own path on a CPU: input channels in
    ``channels`` (inclusive) on maps of at least ``min_pixels``."""

    channels: tuple[int, int]
    min_pixels: int

    def takes(self, in_channels: int) -> bool:
        return self.channels[0] <= in_channels <= self.channels[1]


# Measured per instruction set (docs/performance.md): where the transforms cost more than the products they
# save, PyTorch's path stays. oneDNN's AVX-512 kernels run a direct 3x3 convolution near the matmul rate, so
# there only the large 256-channel maps (the FPN's and the RPN's) gain.
REACH = {"AVX512": Reach((256, 256), 4096)}
DEFAULT_REACH = Reach((128, 4096), 1024)  # AVX2 and older: every wide map gains


def reach() -> Reach:
    """Where Winograd is used on this CPU (torch's dispatch level: AVX512, AVX2, ...)."""
    return REACH.get(torch.backends.cpu.get_cpu_capability(), DEFAULT_REACH)


BAND_BYTES = 16 << 20  # per transformed buffer: keeps a band's working set near the caches


def _kron(matrix: tuple[tuple[float, ...], ...]) -> torch.Tensor:
    """The transform of a square tile as one matrix: (M (x) M)[p*n+q, a*k+b] = M[p, a] * M[q, b]."""
    exact = torch.tensor(matrix, dtype=torch.float64)
    return torch.kron(exact, exact).float()


_G_KRON, _B_KRON, _A_KRON = _kron(G), _kron(B_T), _kron(A_T)  # (36, 9), (36, 36), (16, 36)


def transform_weight(weight: torch.Tensor) -> torch.Tensor:
    """(K, C, 3, 3) weights -> (36, K, C): G w G^T for every channel pair, as one matmul with G (x) G."""
    out_channels, channels = weight.shape[:2]
    u = torch.mm(_G_KRON.to(weight.dtype), weight.reshape(out_channels * channels, 9).t())
    return u.view(ALPHA * ALPHA, out_channels, channels)


def winograd_conv3x3(x: torch.Tensor, u: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``F.conv2d(x, w, bias, padding=1)`` for one (1, C, H, W) image, with ``u = transform_weight(w)``."""
    _, channels, height, width = x.shape
    out_channels = u.shape[1]
    tiles_y, tiles_x = -(-height // TILE), -(-width // TILE)
    # One pixel of zero padding on the top and left (the convolution's own), enough on the bottom and right
    # for whole tiles.
    padded = F.pad(x, (1, TILE * tiles_x + 1 - width, 1, TILE * tiles_y + 1 - height))[0]
    out = x.new_empty(out_channels, tiles_y, TILE, tiles_x, TILE)
    band = max(1, min(tiles_y, BAND_BYTES // (ALPHA * ALPHA * max(channels, out_channels) * tiles_x * 4)))
    # Flat buffers: the first n rows' worth of each is contiguous, also for a last, shorter band.
    tiles_buffer, v_buffer = (x.new_empty(ALPHA * ALPHA * channels * band * tiles_x) for _ in range(2))
    m_buffer = x.new_empty(ALPHA * ALPHA * out_channels * band * tiles_x)
    y_buffer = x.new_empty(TILE * TILE * out_channels * band * tiles_x)
    for first in range(0, tiles_y, band):
        n = min(band, tiles_y - first)
        points = n * tiles_x
        # Every 6x6 input tile of the band (overlapping by 2), laid out tile element first: (36, C, n, tiles_x).
        windows = (
            padded[:, TILE * first : TILE * (first + n) + ALPHA - TILE].unfold(1, ALPHA, TILE).unfold(2, ALPHA, TILE)
        )
        tiles = tiles_buffer[: ALPHA * ALPHA * channels * points].view(ALPHA, ALPHA, channels, n, tiles_x)
        tiles.copy_(windows.permute(3, 4, 0, 1, 2))
        # B^T d B for every tile and channel at once, as (B^T (x) B^T) applied to the 36 tile elements.
        v = v_buffer[: ALPHA * ALPHA * channels * points].view(ALPHA * ALPHA, channels * points)
        torch.mm(_B_KRON, tiles.view(ALPHA * ALPHA, channels * points), out=v)
        # The 36 products: output channels x input channels, per tile-element frequency.
        m = m_buffer[: ALPHA * ALPHA * out_channels * points].view(ALPHA * ALPHA, out_channels, points)
        torch.bmm(u, v.view(ALPHA * ALPHA, channels, points), out=m)
        # A^T M A, then each 4x4 output tile into its place.
        y = y_buffer[: TILE * TILE * out_channels * points].view(TILE * TILE, out_channels * points)
        torch.mm(_A_KRON, m.view(ALPHA * ALPHA, out_channels * points), out=y)
        out[:, first : first + n].copy_(y.view(TILE, TILE, out_channels, n, tiles_x).permute(2, 3, 0, 4, 1))
    result = out.view(1, out_channels, tiles_y * TILE, tiles_x * TILE)
    if bias is not None:
        result.add_(bias.view(1, -1, 1, 1))
    # detectron2 pads its input to a multiple of 32, so the crop is almost always the whole tensor.
    return result if result.shape[2:] == (height, width) else result[:, :, :height, :width].contiguous()


class WinogradConv2d(Conv2d):
    """A 3x3, stride-1 convolution run as ``winograd_conv3x3`` on one float32 image of at least
    ``min_pixels`` pixels at inference, PyTorch's own path otherwise (a batch, a small map, autograd)."""

    def __init__(self, *args, min_pixels: int = 0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.min_pixels = min_pixels

    @staticmethod
    def suits(conv: torch.nn.Module, where: Reach) -> bool:
        """Whether ``conv`` is a convolution Winograd computes, within ``where``'s channels."""
        return (
            isinstance(conv, torch.nn.Conv2d)
            and not isinstance(conv, WinogradConv2d)
            and conv.kernel_size == (3, 3)
            and conv.stride == (1, 1)
            and conv.padding == (1, 1)
            and conv.dilation == (1, 1)
            and conv.groups == 1
            and conv.padding_mode == "zeros"
            and where.takes(conv.in_channels)
        )

    @classmethod
    def of(cls, conv: torch.nn.Conv2d, name: str, where: Reach) -> WinogradConv2d:
        """``conv`` (called ``name`` in its model) on Winograd's path, sharing its weights; a frozen batch norm
        after it is folded first (``FoldedConv2d``), so the fold and this swap can come in either order."""
        if not cls.suits(conv, where):
            raise UnsuitableModel(f"{name}: {conv} is not a 3x3, stride-1 convolution within {where}")
        norm = getattr(conv, "norm", None)
        if norm is not None:
            conv = FoldedConv2d.of(conv, name)  # refuses any norm but a frozen batch norm, naming the layer
        layer = conv_like(cls, conv, bias=conv.bias is not None)
        layer.weight, layer.bias, layer.min_pixels = conv.weight, conv.bias, where.min_pixels
        return layer

    def direct(self) -> Conv2d:
        """The same convolution on PyTorch's own path, sharing the weights (bench/stages.py counts the model's
        FLOPs on it)."""
        layer = conv_like(Conv2d, self, bias=self.bias is not None)
        layer.weight, layer.bias = self.weight, self.bias
        return layer

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, min_pixels={self.min_pixels}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self._worth_it(x):
            return super().forward(x)
        # The transformed weights are 4x the size of the weights: made per call (one small matmul) rather
        # than kept, so the resident model stays the size of its file.
        y = winograd_conv3x3(x, transform_weight(self.weight), self.bias)
        return self.activation(y) if self.activation is not None else y

    def _worth_it(self, x: torch.Tensor) -> bool:
        return (
            x.dim() == 4
            and x.shape[0] == 1
            and x.shape[2] * x.shape[3] >= self.min_pixels
            and x.dtype == torch.float32
            and x.device.type == "cpu"
            and not torch.is_grad_enabled()
        )
