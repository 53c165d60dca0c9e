"""PointRend's point head (an MLP run on every sampled point) for the predicted class, with its coarse-mask
inputs projected once per object.

Stock's ``StandardPointHead`` concatenates the 80 coarse mask logits, bilinearly sampled at each point, to the
input of each of its layers (3 hidden layers and the predictor), then keeps one class of the predictor's 80
outputs. Each layer's product splits in two: ``W_fine @ x + W_coarse @ coarse(point)``, and bilinear
sampling is linear: ``W_coarse @ sample(coarse_map, point) == sample(W_coarse @ coarse_map, point)``. So each
layer's coarse term is made once per object on its 7x7 coarse map (49 cells instead of 784 points a step),
and all layers' terms are sampled at the points at once, by one matmul with the points' bilinear weights on
those cells (what PixelLib's ``point_sample`` computes). The layers then run on the features as PixelLib's
point pooler lays them out (channels, then objects and points): one (out, in) @ (in, objects x points)
matmul a layer for all objects, no transposes, no concatenations. With the predictor's one class that
removes a third of the head's multiplications. Same maths, summed in another order: the logits agree with
stock's within float32 rounding (tests/model/test_point_head.py).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from handler.model.pixellib import StandardPointHead
from handler.model.swap import UnsuitableModel


class CoarseTerms(NamedTuple):
    """Each layer's coarse term on the objects' coarse map cells, (R, K, h, w): the hidden layers' outputs
    stacked, then the predicted class's predictor output."""

    maps: torch.Tensor


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
            weights = [layer.weight[:, :, 0] for layer in layers]  # (out, fine in + coarse in)
            fine = [w[:, : w.shape[1] - coarse_channels].contiguous() for w in weights]
            coarse = [w[:, w.shape[1] - coarse_channels :].contiguous() for w in weights]
            biases = [layer.bias.detach().clone() for layer in layers]
        # Non-persistent buffers: the state dict stays stock's (the stock head is kept beside this one).
        for index, (f, b) in enumerate(zip(fine[:-1], biases[:-1], strict=True)):
            self.register_buffer(f"fine{index}", f, persistent=False)
            self.register_buffer(f"bias{index}", b, persistent=False)
        self.register_buffer("hidden_coarse", torch.cat(coarse[:-1]), persistent=False)  # (3 x out, classes)
        self.register_buffer("predictor_fine", fine[-1], persistent=False)  # (classes, fine channels)
        self.register_buffer("predictor_coarse", coarse[-1], persistent=False)  # (classes, coarse channels)
        self.register_buffer("predictor_bias", biases[-1], persistent=False)
        self.layers = len(layers)
        self.class_agnostic = head.predictor.out_channels == 1

    @property
    def hidden_fine(self) -> list[torch.Tensor]:
        """Each hidden layer's weights on the fine-grained features: (out, in)."""
        return [getattr(self, f"fine{index}") for index in range(self.layers - 1)]

    @property
    def hidden_bias(self) -> list[torch.Tensor]:
        return [getattr(self, f"bias{index}") for index in range(self.layers - 1)]

    def extra_repr(self) -> str:
        return f"layers={self.layers}, class_agnostic={self.class_agnostic}"

    def _rows(self, classes: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(classes) if self.class_agnostic else classes

    def project(self, coarse: torch.Tensor, classes: torch.Tensor) -> CoarseTerms:
        """Every layer's coarse term on the cells of the objects' coarse mask logits ``coarse`` (R, 80, h, w):
        the hidden layers' (R, outs, h, w) stacked, the predicted class's predictor row last."""
        count, channels, height, width = coarse.shape
        cells = coarse.reshape(count, channels, height * width)  # (R, 80, cells)
        hidden = torch.matmul(self.hidden_coarse, cells)  # (R, 3 x 256, cells)
        predictor = torch.bmm(self.predictor_coarse[self._rows(classes)].unsqueeze(1), cells)  # (R, 1, cells)
        return CoarseTerms(torch.cat([hidden, predictor], 1).view(count, -1, height, width))

    def forward(
        self, fine: torch.Tensor, point_coords: torch.Tensor, terms: CoarseTerms, classes: torch.Tensor
    ) -> torch.Tensor:
        """The predicted class's logits (R, 1, P) at ``point_coords`` (R, P, 2; [0, 1] in each box) from the
        fine-grained features there (R, C, P) and the objects' ``project``-ed coarse terms."""
        count, channels, points = fine.shape
        # Every layer's coarse term at the points at once: each object's projected maps (K, cells) times its
        # points' bilinear weights (cells, P), as grid_sample would sample them (one matmul beats its
        # per-channel loop on a 7x7 map).
        sampling = bilinear_weights(point_coords, *terms.maps.shape[2:])  # (R, P, cells)
        pointwise = torch.bmm(terms.maps.flatten(2), sampling.transpose(1, 2))  # (R, K, P)
        # The features as (channels, objects x points): a view of what PixelLib's point pooler returns, so each
        # layer is one (out, in) @ (in, R x P) matmul whose every column is computed alike whatever R is.
        x, start = fine.transpose(0, 1).reshape(channels, count * points), 0
        for fine_weight, bias in zip(self.hidden_fine, self.hidden_bias, strict=True):
            end = start + fine_weight.shape[0]
            y = torch.addmm(bias.unsqueeze(1), fine_weight, x).view(-1, count, points)
            y.add_(pointwise[:, start:end].transpose(0, 1)).relu_()
            x, start = y.view(-1, count * points), end
        rows = self._rows(classes)
        logits = pointwise[:, start:] + self.predictor_bias[rows].view(-1, 1, 1)  # (R, 1, P)
        features = x.view(-1, count, points)
        for index, row in enumerate(self.predictor_fine[rows]):  # one vector-matrix product per object
            logits[index, 0].add_(torch.mv(features[:, index].t(), row))
        return logits
