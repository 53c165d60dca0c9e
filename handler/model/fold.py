"""Frozen batch norms folded into the convolution before them: ``FoldedConv2d``.

detectron2's ``Conv2d`` runs its ``FrozenBatchNorm2d`` as a per-channel scale and shift after the
convolution. Folding them into the weights and a bias gives the same maths in one op fewer per layer: exact
for identity statistics, within float32 rounding of stock for trained ones (the scale is rounded once into
the weights instead of once more per activation; docs/models.md has the figures).
"""

from __future__ import annotations

import torch

from handler.model.pixellib import Conv2d, FrozenBatchNorm2d
from handler.model.swap import UnsuitableModel, conv_like


class FoldedConv2d(Conv2d):
    """detectron2's ``Conv2d`` whose frozen batch norm is folded into its weights and bias."""

    @classmethod
    def of(cls, conv: Conv2d, name: str) -> FoldedConv2d:
        """The folded ``conv`` (called ``name`` in its model). It takes over ``conv``'s weight tensor and
        scales it in place (no second copy of the weights while the model is built): ``conv`` is to be
        dropped."""
        norm = getattr(conv, "norm", None)
        if not isinstance(conv, Conv2d) or not isinstance(norm, FrozenBatchNorm2d):
            raise UnsuitableModel(
                f"{name}: {type(conv).__name__} with norm {type(norm).__name__}, not a Conv2d "
                "followed by a FrozenBatchNorm2d"
            )
        scale = norm.weight * (norm.running_var + norm.eps).rsqrt()
        shift = norm.bias - norm.running_mean * scale
        folded = conv_like(cls, conv, bias=True)
        with torch.no_grad():
            folded.weight = conv.weight
            folded.weight.mul_(scale.reshape(-1, 1, 1, 1))
            bias = shift if conv.bias is None else conv.bias * scale + shift
            folded.bias = torch.nn.Parameter(bias, requires_grad=False)
        return folded
