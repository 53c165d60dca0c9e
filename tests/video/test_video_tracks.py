"""Track ids on synthetic masks whose right ids are known, and chunked runs linked into the unsplit run's ids."""

from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from handler.video import ChunkLinker, Tracker, link_chunks

HEIGHT, WIDTH = 60, 100


def square(left: int, top: int, side: int = 12) -> dict:
    """A square's mask as COCO RLE with str counts, as a result line carries it."""
    grid = np.zeros((HEIGHT, WIDTH), np.uint8, order="F")
    grid[max(top, 0) : max(top + side, 0), max(left, 0) : max(left + side, 0)] = 1
    rle = mask_utils.encode(grid)
    return {"size": rle["size"], "counts": rle["counts"].decode("ascii")}


def test_moving_objects_keep_their_ids():
    tracker = Tracker()
    for step in range(10):  # three squares, each moving 2 px a frame
        ids = tracker.update([square(5 + 2 * step, 5), square(40, 5 + 2 * step), square(80 - 2 * step, 40)])
        assert ids == [1, 2, 3]


def test_a_swap_of_object_order_keeps_each_objects_id():
    tracker = Tracker()
    assert tracker.update([square(5, 5), square(40, 5), square(70, 30)]) == [1, 2, 3]
    assert tracker.update([square(71, 31), square(6, 5), square(41, 6)]) == [3, 1, 2]
    assert tracker.update([square(42, 7), square(72, 32), square(7, 5)]) == [2, 3, 1]


def test_appearing_and_disappearing_objects():
    tracker = Tracker()
    assert tracker.update([square(5, 5)]) == [1]
    assert tracker.update([square(60, 30), square(6, 5)]) == [2, 1]  # a newcomer listed first gets the next id
    assert tracker.update([square(61, 30)]) == [2]  # 1 left the picture
    assert tracker.update([]) == []  # nothing in this frame
    # Back after a frame without it: one processed frame of memory, so a new id, numbered in order of appearance.
    assert tracker.update([square(61, 31), square(5, 5), square(30, 40)]) == [3, 4, 5]
    assert tracker.next_id == 6


def test_a_jump_past_the_iou_threshold_is_a_new_object():
    tracker = Tracker(iou_threshold=0.5)
    assert tracker.update([square(10, 10)]) == [1]
    assert tracker.update([square(14, 10)]) == [1]  # 12-px squares 4 px apart: IoU 8/16, at the threshold
    assert tracker.update([square(19, 10)]) == [2]  # 5 px: IoU 7/17, under it
    assert tracker.update([square(21, 10)]) == [2]  # 2 px: IoU 10/14
    assert tracker.update([square(40, 10)]) == [3]  # no overlap


def test_classes_are_kept_apart():
    tracker = Tracker()
    assert tracker.update([square(10, 10), square(50, 10)], class_ids=[0, 2]) == [1, 2]
    assert tracker.update([square(10, 10), square(50, 10)], class_ids=[0, 15]) == [1, 3]


def random_run(frames: int, seed: int) -> list[list[dict]]:
    """Objects that move, appear, leave and are listed in a new order on each frame."""
    rng = np.random.default_rng(seed)
    objects: list[list[int]] = []
    run = []
    for _ in range(frames):
        objects = [[x + int(rng.integers(-3, 4)), y + int(rng.integers(-3, 4))] for x, y in objects]
        objects = [place for place in objects if rng.random() > 0.1]  # some leave
        for _ in range(int(rng.integers(0, 3))):  # some arrive
            objects.append([int(rng.integers(0, WIDTH - 12)), int(rng.integers(0, HEIGHT - 12))])
        order = rng.permutation(len(objects))
        run.append([square(*objects[index]) for index in order])
    return run


def run_ids(frames: list[list[dict]]) -> list[list[int]]:
    tracker = Tracker()
    return [tracker.update(masks) for masks in frames]


@pytest.mark.parametrize("seed", range(6))
def test_chunks_overlapping_by_one_frame_link_to_the_unsplit_runs_ids(seed):
    run = random_run(40, seed)
    whole = run_ids(run)
    assert max(max(ids, default=0) for ids in whole) > 10  # objects came and went
    rng = np.random.default_rng(100 + seed)
    cuts = sorted({int(cut) for cut in rng.integers(1, 40, 5)} | {40})
    chunks, start = [], 0
    for stop in cuts:  # chunk k > 0 also processes the last frame of chunk k - 1, with its own fresh tracker
        first = start if start == 0 else start - 1
        chunks.append(run_ids(run[first:stop]))
        start = stop
    assert link_chunks(chunks) == whole
    # The same through ChunkLinker, chunk by chunk, as an assembler streaming chunk results does.
    linker, linked, previous = ChunkLinker(), [], None
    for number, chunk in enumerate(chunks):
        linker.start_chunk(previous, chunk[0] if number else None)
        linked += [linker.map(ids) for ids in (chunk[1:] if number else chunk)]
        previous = linked[-1]
    assert linked == whole


def test_one_frame_chunks_link_too():
    run = random_run(12, 7)
    chunks = [run_ids(run[:1])] + [run_ids(run[index - 1 : index + 1]) for index in range(1, 12)]
    assert link_chunks(chunks) == run_ids(run)


def test_an_overlap_frame_that_differs_is_refused():
    linker = ChunkLinker()
    with pytest.raises(ValueError, match="not the same frame"):
        linker.start_chunk([1, 2, 3], [1, 2])
