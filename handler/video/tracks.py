"""Track ids: objects linked from one processed frame to the next, and chunks of a run linked together.

``Tracker`` looks back one processed frame only: mask IoU between that frame's objects and this frame's,
``scipy.optimize.linear_sum_assignment`` on it, pairs under ``iou_threshold`` left unmatched; an unmatched
object gets a new id, numbered from 1 in order of first appearance (frame order, then object order).
Because it looks back one frame, a run split into chunks that overlap by one processed frame links exactly:
``ChunkLinker`` maps chunk-local ids to the ids of the unsplit run.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

IOU_THRESHOLD = 0.3

Rle = dict[str, Any]  # COCO compressed RLE, counts as str (as in a result's ``masks``)


class Tracker:
    """Call ``update`` with each processed frame's masks in frame order; it returns one id per object."""

    def __init__(self, iou_threshold: float = IOU_THRESHOLD) -> None:
        self.iou_threshold = iou_threshold

    def update(self, masks: Sequence[Rle]) -> list[int]:
        raise NotImplementedError


class ChunkLinker:
    """Chunk-local ids to global ids, chunk after chunk in order. Chunk k > 0's first processed frame is the
    last processed frame of chunk k - 1 (same objects in the same order), so its local ids map to the global
    ids already given to that frame; local ids not seen there get new global ids in order of first appearance."""

    def __init__(self) -> None:
        self.next_id = 1

    def start_chunk(self, overlap_global: Sequence[int] | None, overlap_local: Sequence[int] | None) -> None:
        """A new chunk: ``None`` for the first; else the overlap frame's global ids (from the previous chunk) and
        its local ids (from this chunk's first line)."""
        raise NotImplementedError

    def map(self, local_ids: Sequence[int]) -> list[int]:
        """One frame's local ids (this chunk's) as global ids."""
        raise NotImplementedError


def link_chunks(chunks: Iterable[Sequence[Sequence[int]]]) -> list[list[int]]:
    """Each chunk's per-frame local ids (chunks after the first start with the overlap frame) as the global ids
    of each processed frame once, overlap frames not repeated."""
    raise NotImplementedError
