"""The per-object flow: each object's mask is pasted, handed to every consumer, and released before the next.

This is the memory rule (docs/development.md): whatever the boxes, no more than one object's full-resolution
mask exists at a time, so memory grows with the image's pixels and the largest single box, never with
objects x pixels. A consumer turns the mask in hand into something small and keeps only that: an RLE string
(``rle.RleMasks``), polygons (``results.PolygonMasks``), paint on the capped overlay canvas
(``overlay.OverlayDrawer``), or a PNG file in a zip. Add one by passing it in ``Outputs.consumers``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from handler.engine.overlay import OverlayDrawer
from handler.engine.results import MaskFormat, PolygonMasks, Segmentation
from handler.engine.rle import RleMasks
from handler.model import MaskCrop


class ObjectConsumer(Protocol):
    """Sees each object's mask once, in object order, and must not keep the crop (copy what it needs)."""

    def start(self, rgb: np.ndarray, result: Segmentation) -> None:
        """Before the first object: the decoded image and the objects' boxes, classes and scores."""

    def add(self, index: int, crop: MaskCrop) -> None:
        """Object ``index``'s mask (``result.boxes[index]`` etc.); the crop is released after every consumer."""

    def finish(self, result: Segmentation) -> None:
        """After the last object: store or keep what was made (built-in consumers fill ``result``'s fields)."""


@dataclass(frozen=True)
class Outputs:
    """What a request wants made from the masks, decided before the model runs."""

    masks: MaskFormat = "rle"
    overlay: bool = False  # draw the overlay PNG into ``result.overlay_png``
    overlay_max_side: int | None = None  # its long side's cap; None: full size
    consumers: Sequence[ObjectConsumer] = ()  # more, run after the built-in ones (cut-outs, ...)

    def all_consumers(self) -> list[ObjectConsumer]:
        built_in: list[ObjectConsumer] = []
        if self.masks == "rle":
            built_in.append(RleMasks())
        elif self.masks == "polygons":
            built_in.append(PolygonMasks())
        if self.overlay:
            built_in.append(OverlayDrawer(self.overlay_max_side))
        return [*built_in, *self.consumers]


def encode_objects(rgb: np.ndarray, result: Segmentation, crops: Iterable[MaskCrop], outputs: Outputs) -> None:
    """Feed each crop (one per object of ``result``, pasted lazily by the iterable) to ``outputs``' consumers."""
    consumers = outputs.all_consumers()
    if not consumers:
        return  # nothing asks for the masks (masks=none, no overlay): none is pasted
    for consumer in consumers:
        consumer.start(rgb, result)
    count = 0
    for index, crop in enumerate(crops):
        for consumer in consumers:
            consumer.add(index, crop)
        count += 1
        del crop  # the next paste must not see this mask still alive
    if count != len(result):
        raise ValueError(f"{count} masks for {len(result)} objects")
    for consumer in consumers:
        consumer.finish(result)
