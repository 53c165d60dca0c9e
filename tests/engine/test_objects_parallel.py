"""The per-object stage on several threads: the same results in object order, at most one object alive per
thread, and the deadline's check still stops the objects (``objects.encode_in_parallel``)."""

from __future__ import annotations

import threading
import weakref

import numpy as np
import pytest
from masks import crop_of

from handler.core.errors import OutOfTime
from handler.engine import pipeline
from handler.engine.objects import ObjectTasks, Outputs, encode_in_parallel, encode_objects
from handler.engine.results import Segmentation
from handler.model import MaskCrop

HEIGHT, WIDTH, COUNT = 90, 120, 24


def random_masks(count: int = COUNT) -> list[np.ndarray]:
    """Overlapping discs and blobs of varied sizes: where they overlap the overlay's painting order shows."""
    rng = np.random.default_rng(3)
    rows, columns = np.ogrid[:HEIGHT, :WIDTH]
    masks = []
    for _ in range(count):
        cy, cx, radius = rng.integers(0, HEIGHT), rng.integers(0, WIDTH), rng.integers(2, 40)
        disc = (rows - cy) ** 2 + (columns - cx) ** 2 <= radius**2
        masks.append(disc & (rng.random((HEIGHT, WIDTH)) < 0.9))
    return masks


def table(count: int = COUNT) -> Segmentation:
    boxes = np.array([[i % 50, i % 40, 60 + i % 50, 50 + i % 40] for i in range(count)], dtype=np.float32)
    return Segmentation(
        width=WIDTH,
        height=HEIGHT,
        boxes=boxes,
        scores=np.linspace(0.99, 0.5, count),
        class_ids=np.arange(count) % 7,
        class_names=[f"class{i % 7}" for i in range(count)],
    )


class Spy:
    """A consumer without ``prepare``/``commit``: ``add`` in object order on the calling thread."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, int, int, int, str]] = []

    def start(self, rgb: np.ndarray, result: Segmentation) -> None:
        self.seen = []

    def add(self, index: int, crop: MaskCrop) -> None:
        self.seen.append((index, crop.top, crop.left, int(crop.mask.sum()), threading.current_thread().name))

    def finish(self, result: Segmentation) -> None:
        pass


def outputs_of(result: Segmentation, spy: Spy) -> tuple:
    return (result.masks, result.overlay_png, [event[:4] for event in spy.seen])


@pytest.mark.parametrize("threads", [2, 3, 8])
@pytest.mark.parametrize("masks_format", ["rle", "polygons"])
def test_several_threads_give_the_results_of_one_object_after_another(threads, masks_format):
    masks = random_masks()
    rgb = np.random.default_rng(1).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    spy_one, spy_many = Spy(), Spy()
    one = table()
    encode_objects(rgb, one, (crop_of(m) for m in masks), Outputs(masks_format, True, 64, [spy_one]))
    many = table()
    tasks = ObjectTasks(paste=lambda position: crop_of(masks[position]))
    encode_in_parallel(rgb, many, tasks, Outputs(masks_format, True, 64, [spy_many]), threads)
    assert outputs_of(many, spy_many) == outputs_of(one, spy_one)
    assert many.polygons == one.polygons
    assert [event[0] for event in spy_many.seen] == list(range(COUNT))
    assert {event[4] for event in spy_many.seen} == {threading.current_thread().name}  # add: the caller's thread


@pytest.mark.parametrize("threads", [1, 2, 4])
def test_at_most_one_object_per_thread_is_alive(threads):
    masks = random_masks()
    alive, most = [0], [0]
    lock = threading.Lock()

    def released() -> None:
        with lock:
            alive[0] -= 1

    def paste(position: int) -> MaskCrop:
        crop = crop_of(masks[position])
        weakref.finalize(crop.mask, released)
        with lock:
            alive[0] += 1
            most[0] = max(most[0], alive[0])
        return crop

    spy = Spy()  # holds nothing, but makes the crops travel to the calling thread
    black = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    encode_in_parallel(black, table(), ObjectTasks(paste), Outputs(consumers=[spy]), threads)
    assert len(spy.seen) == COUNT
    assert most[0] <= threads and alive[0] == 0
    if threads > 1:
        assert most[0] > 1, "the objects never overlapped: nothing ran in parallel"


@pytest.mark.parametrize("threads", [2, 3])
def test_with_rle_only_a_slow_object_does_not_hold_the_other_workers(threads):
    """RLE's prepared result holds no mask: while object 0 is in work, the other workers go on past their
    turn (object 0 waits until object ``threads`` has been pasted), and still one mask per thread at most."""
    masks = random_masks()
    alive, most = [0], [0]
    lock, later_started = threading.Lock(), threading.Event()

    def released() -> None:
        with lock:
            alive[0] -= 1

    def paste(position: int) -> MaskCrop:
        if position == 0:
            assert later_started.wait(timeout=60), "object 0 held every other worker back"
        crop = crop_of(masks[position])
        weakref.finalize(crop.mask, released)
        with lock:
            alive[0] += 1
            most[0] = max(most[0], alive[0])
        if position == threads:
            later_started.set()
        return crop

    many, one = table(), table()
    encode_in_parallel(np.zeros((HEIGHT, WIDTH, 3), np.uint8), many, ObjectTasks(paste), Outputs("rle"), threads)
    encode_objects(np.zeros((HEIGHT, WIDTH, 3), np.uint8), one, (crop_of(m) for m in masks), Outputs("rle"))
    assert many.masks == one.masks
    assert most[0] <= threads and alive[0] == 0


def test_the_check_before_each_object_stops_the_rest_and_errors_come_back():
    masks = random_masks()
    pasted: list[int] = []

    def before(position: int, committed: int) -> None:
        assert committed <= position
        if position == 10:
            raise OutOfTime("no time for object 10")

    def paste(position: int) -> MaskCrop:
        pasted.append(position)
        return crop_of(masks[position])

    with pytest.raises(OutOfTime, match="object 10"):
        encode_in_parallel(np.zeros((HEIGHT, WIDTH, 3), np.uint8), table(), ObjectTasks(paste, before), Outputs(), 2)
    assert set(range(9)) <= set(pasted) <= set(range(10))  # never object 10; 9 may be cancelled before it starts

    def broken(position: int) -> MaskCrop:
        if position == 5:
            raise RuntimeError("paste failed")
        return crop_of(masks[position])

    with pytest.raises(RuntimeError, match="paste failed"):
        encode_in_parallel(np.zeros((HEIGHT, WIDTH, 3), np.uint8), table(), ObjectTasks(broken), Outputs(), 3)


class Context:
    def __init__(self, remaining_ms: int) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def test_the_pipeline_on_two_threads_equals_one_thread_and_keeps_the_deadline(dense_segmenter, monkeypatch):
    rgb = np.random.default_rng(5).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    outputs = Outputs("rle", overlay=True, overlay_max_side=128)
    found = {}
    for threads in (1, 2):
        monkeypatch.setattr(pipeline, "object_threads", lambda settings, n=threads: n)
        found[threads] = pipeline.segment_rgb(rgb, dense_segmenter, 0.0, outputs=outputs)
    assert len(found[1]) == 100
    assert found[2].masks == found[1].masks and found[2].overlay_png == found[1].overlay_png
    monkeypatch.setattr(pipeline, "object_threads", lambda settings: 2)
    with pytest.raises(OutOfTime, match="after 0 of 100 objects"):
        pipeline._segment(rgb, dense_segmenter, 0.0, None, None, Outputs(), Context(remaining_ms=100))
