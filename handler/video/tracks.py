"""Track ids: objects linked from one processed frame to the next, and chunks of a run linked together.

``Tracker`` looks back one processed frame only: mask IoU between that frame's objects and this frame's
(objects of different classes never match), ``scipy.optimize.linear_sum_assignment`` on it, pairs under
``iou_threshold`` left unmatched; an unmatched object gets a new id, numbered from 1 in order of first
appearance (frame order, then object order). Because it looks back one frame, a run split into chunks that
overlap by one processed frame links exactly: ``ChunkLinker`` maps chunk-local ids to the ids of the unsplit run.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

IOU_THRESHOLD = 0.3

Rle = dict[str, Any]  # COCO compressed RLE, counts as str (as in a result's ``masks``)


class Tracker:
    """Call ``update`` with each processed frame's masks in frame order; it returns one id per object."""

    def __init__(self, iou_threshold: float = IOU_THRESHOLD) -> None:
        self.iou_threshold = iou_threshold
        self.next_id = 1
        self._masks: list[Rle] = []
        self._classes: list[int] | None = None
        self._ids: list[int] = []

    def update(self, masks: Sequence[Rle], class_ids: Sequence[int] | None = None) -> list[int]:
        """This frame's ids, one per mask in order; ``class_ids`` (one per mask) keeps classes apart."""
        masks = [_as_bytes(rle) for rle in masks]
        ids: list[int | None] = [None] * len(masks)
        if masks and self._masks:
            iou = np.asarray(mask_utils.iou(masks, self._masks, [0] * len(self._masks)), dtype=np.float64)
            iou = iou.reshape(len(masks), len(self._masks))
            if class_ids is not None and self._classes is not None:
                iou[np.not_equal.outer(np.asarray(class_ids), np.asarray(self._classes))] = 0.0
            from scipy.optimize import linear_sum_assignment  # here: 0.46 s of every function's init otherwise

            for row, column in zip(*linear_sum_assignment(iou, maximize=True), strict=True):
                if iou[row, column] >= self.iou_threshold:
                    ids[row] = self._ids[column]
        for index, found in enumerate(ids):
            if found is None:
                ids[index] = self.next_id
                self.next_id += 1
        self._masks = masks
        self._classes = None if class_ids is None else [int(value) for value in class_ids]
        self._ids = [int(value) for value in ids if value is not None]
        return list(self._ids)


class ChunkLinker:
    """Chunk-local ids to global ids, chunk after chunk in order. Chunk k > 0's first processed frame is the
    last processed frame of chunk k - 1 (same objects in the same order), so its local ids map to the global
    ids already given to that frame; local ids not seen there get new global ids in order of first appearance."""

    def __init__(self) -> None:
        self.next_id = 1
        self._map: dict[int, int] = {}

    def start_chunk(self, overlap_global: Sequence[int] | None, overlap_local: Sequence[int] | None) -> None:
        """A new chunk: ``None`` for the first; else the overlap frame's global ids (from the previous chunk) and
        its local ids (from this chunk's first line)."""
        overlap_global, overlap_local = overlap_global or [], overlap_local or []
        if len(overlap_global) != len(overlap_local):
            raise ValueError(
                f"the overlap frame has {len(overlap_global)} objects in one chunk and {len(overlap_local)} in the "
                "next: not the same frame, model or settings"
            )
        self._map = dict(zip(overlap_local, overlap_global, strict=True))

    def map(self, local_ids: Sequence[int]) -> list[int]:
        """One frame's local ids (this chunk's) as global ids."""
        for local in local_ids:
            if local not in self._map:
                self._map[local] = self.next_id
                self.next_id += 1
        return [self._map[local] for local in local_ids]


def link_chunks(chunks: Iterable[Sequence[Sequence[int]]]) -> list[list[int]]:
    """Each chunk's per-frame local ids (chunks after the first start with the overlap frame) as the global ids
    of each processed frame once, overlap frames not repeated."""
    linker = ChunkLinker()
    linked: list[list[int]] = []
    for number, chunk in enumerate(chunks):
        if number == 0 or not linked:
            linker.start_chunk(None, None)
            frames = list(chunk)
        else:
            linker.start_chunk(linked[-1], chunk[0])
            frames = list(chunk[1:])
        linked.extend(linker.map(ids) for ids in frames)
    return linked


def _as_bytes(rle: Rle) -> Rle:
    counts = rle["counts"]
    return rle if isinstance(counts, bytes) else {"size": list(rle["size"]), "counts": counts.encode("ascii")}
