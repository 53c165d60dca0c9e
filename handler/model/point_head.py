"""PointRend's point head (an MLP run on every sampled point) for the predicted class, with its coarse-mask
inputs projected once per object.

Stock's ``StandardPointHead`` concatenates the 80 coarse mask logits, bilinearly sampled at each point, to the
input of each of its layers (3 hidden layers and the predictor), then keeps one class of the predictor's 80
outputs. Each layer's product splits in two: ``W_fine @ x + W_coarse @ coarse(point)``, and bilinear
sampling is linear: ``W_coarse @ sample(coarse_map, point) == sample(W_coarse @ coarse_map, point)``. So each
layer's coarse term is made once per object on its 7x7 coarse map (49 cells instead of 784 points a step) and
sampled at the points by one small matmul with the points' bilinear weights. With the predictor's one class
that removes a third of the head's multiplications, and its concatenations. Same maths, summed in another
order: the logits agree with stock's within float32 rounding (tests/model/test_point_head.py).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from handler.model.pixellib import StandardPointHead
from handler.model.swap import UnsuitableModel


class CoarseTerms(NamedTuple):
    """Each layer's coarse term on the objects' coarse map cells: (R, cells, out) per hidden layer, and the
    predicted class's (R, cells, 1); ``size`` is the map's (height, width)."""

    hidden: list[torch.Tensor]
    predictor: torch.Tensor
    size: tuple[int, int]


def bilinear_weights(point_coords: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(R, P, height x width): each point's weights on the map's cells, as ``grid_sample`` (bilinear, zero
    padding, ``align_corners=False``) samples a ``height`` x ``width`` map at ``point_coords`` (R, P, 2) in
    [0, 1]; taps outside the map weigh nothing."""
    x = point_coords[..., 0] * width - 0.5
    y = point_coords[..., 1] * height - 0.5
    x0, y0 = x.floor(), y.floor()
    fx, fy = x - x0, y - y0
    weights = point_coords.new_zeros(*point_coords.shape[:2], height * width)
    for dy, wy in ((0, 1 - fy), (1, fy)):
        for dx, wx in ((0, 1 - fx), (1, fx)):
            xi, yi = x0 + dx, y0 + dy
            inside = (xi >= 0) & (xi <= width - 1) & (yi >= 0) & (yi <= height - 1)
            cell = yi.clamp(0, height - 1) * width + xi.clamp(0, width - 1)
            weights.scatter_add_(2, cell.long().unsqueeze(2), (wx * wy * inside).unsqueeze(2))
    return weights


class PredictedClassPointHead(torch.nn.Module):
    """``StandardPointHead``'s logits for each object's predicted class, from fine-grained point features and
    the object's coarse mask logits (its weights split into fine and coarse parts, kept beside the stock head's
    own as non-persistent buffers: the state dict stays stock's)."""

    def __init__(self, head: StandardPointHead, name: str = "point_head") -> None:
        super().__init__()
        if not (isinstance(head, StandardPointHead) and head.coarse_pred_each_layer and head.fc_layers):
            # PixelLib's PointRend config always builds this head; the algebra needs the coarse logits in
            # every layer's input.
            raise UnsuitableModel(
                f"{name}: {type(head).__name__}: a StandardPointHead with the coarse prediction in each layer "
                "is required"
            )
        layers = [*head.fc_layers, head.predictor]
        coarse_channels = layers[1].in_channels - layers[0].out_channels
        with torch.no_grad():
            for index, layer in enumerate(layers):
                weight = layer.weight[:, :, 0]
                fine, coarse = (
                    weight[:, : weight.shape[1] - coarse_channels],
                    weight[:, weight.shape[1] - coarse_channels :],
                )
                last = index == len(layers) - 1
                # hidden layers multiply from the right ((points, in) @ (in, out)); the predictor picks rows
                self.register_buffer(f"fine{index}", (fine if last else fine.t()).contiguous(), persistent=False)
                self.register_buffer(f"coarse{index}", (coarse if last else coarse.t()).contiguous(), persistent=False)
                self.register_buffer(f"bias{index}", layer.bias.detach().clone(), persistent=False)
        self.layers = len(layers)
        self.class_agnostic = head.predictor.out_channels == 1

    @property
    def hidden(self) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Each hidden layer's (fine weight (in, out), coarse weight (classes, out), bias)."""
        return [
            (getattr(self, f"fine{i}"), getattr(self, f"coarse{i}"), getattr(self, f"bias{i}"))
            for i in range(self.layers - 1)
        ]

    @property
    def predictor_fine(self) -> torch.Tensor:  # (classes, fine channels)
        return getattr(self, f"fine{self.layers - 1}")

    @property
    def predictor_coarse(self) -> torch.Tensor:  # (classes, coarse channels)
        return getattr(self, f"coarse{self.layers - 1}")

    @property
    def predictor_bias(self) -> torch.Tensor:
        return getattr(self, f"bias{self.layers - 1}")

    def extra_repr(self) -> str:
        return f"layers={self.layers}, class_agnostic={self.class_agnostic}"

    def _rows(self, classes: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(classes) if self.class_agnostic else classes

    def project(self, coarse: torch.Tensor, classes: torch.Tensor) -> CoarseTerms:
        """Every layer's coarse term on the cells of the objects' coarse mask logits ``coarse`` (R, 80, h, w)."""
        count, channels, height, width = coarse.shape
        cells = coarse.reshape(count, channels, height * width).transpose(1, 2)  # (R, cells, 80)
        hidden = [torch.matmul(cells, coarse_weight) for _, coarse_weight, _ in self.hidden]
        predictor = torch.bmm(cells, self.predictor_coarse[self._rows(classes)].unsqueeze(2))
        return CoarseTerms(hidden, predictor, (height, width))

    def forward(
        self, fine: torch.Tensor, point_coords: torch.Tensor, terms: CoarseTerms, classes: torch.Tensor
    ) -> torch.Tensor:
        """The predicted class's logits (R, 1, P) at ``point_coords`` (R, P, 2; [0, 1] in each box) from the
        fine-grained features there (R, C, P) and the objects' ``project``-ed coarse terms."""
        count, _, points = fine.shape
        sampling = bilinear_weights(point_coords, *terms.size)  # (R, P, cells)
        x = fine.permute(0, 2, 1).reshape(count * points, -1)
        for (fine_weight, _, bias), coarse_term in zip(self.hidden, terms.hidden, strict=True):
            pointwise = torch.baddbmm(bias, sampling, coarse_term).view(count * points, -1)
            x = torch.addmm(pointwise, x, fine_weight).relu_()
        rows = self._rows(classes)
        logits = torch.baddbmm(self.predictor_bias[rows].view(-1, 1, 1), sampling, terms.predictor)
        logits = torch.baddbmm(logits, x.view(count, points, -1), self.predictor_fine[rows].unsqueeze(2))
        return logits.transpose(1, 2)
