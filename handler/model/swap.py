"""Swapping a model's layers for optimised ones: the one way ``optimise`` changes a model.

A layer is replaced where its parent holds it (``setattr`` on the parent, as ``model.get_submodule`` finds
it), so ``repr(model)`` shows what runs; no method is rebound on a live module. PixelLib's FPN also keeps its
convolutions in plain lists beside their registered names (``lateral_convs``, ``output_convs``), and its
``forward`` runs them from there: those lists are updated too, and a reference the swap cannot see (anywhere
else in the parent) refuses the model instead of leaving the old layer running.
"""

from __future__ import annotations

import torch


class UnsuitableModel(ValueError):
    """A model or layer an optimisation cannot take; the message names the layer."""


def replace(model: torch.nn.Module, name: str, module: torch.nn.Module) -> torch.nn.Module:
    """Put ``module`` where ``model``'s layer ``name`` is; returns the layer it replaced."""
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name)
    old = parent.get_submodule(child)
    setattr(parent, child, module)
    for attribute, value in vars(parent).items():
        if isinstance(value, list) and any(item is old for item in value):
            value[:] = [module if item is old else item for item in value]
        elif attribute != "_modules" and _holds(value, old):
            raise UnsuitableModel(
                f"{name}: {type(parent).__name__}.{attribute} holds the layer in a way the swap cannot update"
            )
    return old


def _holds(value: object, layer: torch.nn.Module) -> bool:
    if value is layer:
        return True
    if isinstance(value, tuple):
        return any(item is layer for item in value)
    if isinstance(value, dict):
        return any(item is layer for item in value.values())
    return False


def conv_like(cls: type[torch.nn.Conv2d], conv: torch.nn.Conv2d, bias: bool) -> torch.nn.Conv2d:
    """A ``cls`` (detectron2's ``Conv2d`` or a subclass) with ``conv``'s shape and activation and no norm, its
    parameters still to be assigned: built on the meta device, so nothing is allocated or drawn at random."""
    with torch.device("meta"):
        layer = cls(
            conv.in_channels,
            conv.out_channels,
            conv.kernel_size,
            stride=conv.stride,
            padding=conv.padding,
            dilation=conv.dilation,
            groups=conv.groups,
            bias=bias,
            padding_mode=conv.padding_mode,
            norm=None,
            activation=getattr(conv, "activation", None),
        )
    return layer.train(conv.training)
