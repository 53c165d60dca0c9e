"""The per-object flow: each object's mask is pasted, handed to every consumer, and released before the next.

This is the memory rule (docs/development.md): whatever the boxes, no more than one object's full-resolution
mask exists at a time per worker, so memory grows with the image's pixels and the largest single box times the
threads, never with objects x pixels. A consumer turns the mask in hand into something small and keeps only
that: an RLE string (``rle.RleMasks``), polygons (``results.PolygonMasks``), paint on the capped overlay canvas
(``overlay.OverlayDrawer``), or a PNG file in a zip. Add one by passing it in ``Outputs.consumers``.

With more than one CPU (``encode_in_parallel``) objects are pasted on a pool of threads, one object per thread
at a time, and at most one object's mask per thread is alive (pasted, in work or waiting for its turn; what
waits holds no mask when every consumer is split and none ``keeps_mask``, then a free worker never idles
behind a slower one). A consumer
that splits its work (``SplitConsumer``: ``prepare`` on the worker, ``commit`` in object order on the calling
thread) runs its heavy part in parallel; any other gets ``add`` in object order on the calling thread. Either
way each consumer sees the objects in order and the results are those of one object after another.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from handler.core.cpus import available_cpus
from handler.core.settings import Settings
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


@runtime_checkable
class SplitConsumer(Protocol):
    """An ``ObjectConsumer`` whose ``add`` is ``commit(index, prepare(index, crop))``, so the pool can run
    ``prepare`` on any thread (it must not change the consumer's state) and ``commit`` in object order."""

    def prepare(self, index: int, crop: MaskCrop) -> Any:
        """Thread-safe: what ``commit`` needs from the crop, never the crop itself (at most its size again)."""

    def commit(self, index: int, prepared: Any) -> None:
        """On the calling thread, in object order."""

    # Optional, True when absent: whether ``prepare``'s result may hold the mask (or its size in pixels). When no
    # consumer's does, finished objects may wait for their turn without counting against the memory rule.
    # keeps_mask: bool


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


def object_threads(settings: Settings | None = None) -> int:
    """Threads for the per-object stage: the torch threads setting (``auto``: the CPUs this process may use)."""
    return settings.torch_threads if settings is not None else available_cpus()


def encode_objects(rgb: np.ndarray, result: Segmentation, crops: Iterable[MaskCrop], outputs: Outputs) -> None:
    """Feed each crop (one per object of ``result``, pasted lazily by the iterable) to ``outputs``' consumers,
    one object after another on this thread."""
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


@dataclass(frozen=True)
class ObjectTasks:
    """How to make each object's mask on any thread: ``paste(position)`` for positions 0..len(result)-1
    (thread-safe), and ``before(position, committed)``, called on the calling thread in order before each
    object starts, with how many objects are finished so far (the deadline's check: it may raise)."""

    paste: Callable[[int], MaskCrop]
    before: Callable[[int, int], None] = lambda position, committed: None


def encode_in_parallel(
    rgb: np.ndarray, result: Segmentation, tasks: ObjectTasks, outputs: Outputs, threads: int
) -> None:
    """``encode_objects`` with the objects pasted (and split consumers' ``prepare`` run) on ``threads``
    threads; the same results, in object order. One thread: no pool, one object after another."""
    consumers = outputs.all_consumers()
    if not consumers:
        return
    for consumer in consumers:
        consumer.start(rgb, result)
    split = [isinstance(consumer, SplitConsumer) for consumer in consumers]
    count = len(result)
    if threads <= 1 or count <= 1:
        for position in range(count):
            tasks.before(position, position)
            _commit(consumers, split, position, _work(tasks, consumers, split, position))
    else:
        _run_pool(tasks, consumers, split, count, threads)
    for consumer in consumers:
        consumer.finish(result)


def _work(tasks: ObjectTasks, consumers: list[ObjectConsumer], split: list[bool], position: int) -> list[Any]:
    """On a worker: paste the object, prepare what split consumers need; the crop itself only for the others."""
    crop = tasks.paste(position)
    pairs = zip(consumers, split, strict=True)
    return [consumer.prepare(position, crop) if is_split else crop for consumer, is_split in pairs]  # type: ignore[attr-defined]


def _commit(consumers: list[ObjectConsumer], split: list[bool], position: int, parts: list[Any]) -> None:
    for consumer, is_split, part in zip(consumers, split, parts, strict=True):
        if is_split:
            consumer.commit(position, part)  # type: ignore[attr-defined]
        else:
            consumer.add(position, part)


def _run_pool(tasks: ObjectTasks, consumers: list[ObjectConsumer], split: list[bool], count: int, threads: int) -> None:
    """Each free worker starts the next object at once (its deadline check then); finished objects wait for
    their turn and are committed in object order. When what waits holds no mask (every consumer split and none
    ``keeps_mask``), up to ``threads`` more objects' prepared results may wait: no worker idles behind a slower
    one. Otherwise at most ``threads`` objects are in flight, in work or waiting, as with masks in hand."""
    small = all(split) and not any(getattr(consumer, "keeps_mask", True) for consumer in consumers)
    window = 2 * threads if small else threads
    pool = ThreadPoolExecutor(max_workers=min(threads, count), thread_name_prefix="objects")
    running: dict[Future[list[Any]], int] = {}
    finished: dict[int, list[Any]] = {}
    started = committed = 0
    try:
        while committed < count:
            while started < count and len(running) < threads and len(running) + len(finished) < window:
                tasks.before(started, committed)
                running[pool.submit(_work, tasks, consumers, split, started)] = started
                started += 1
            _collect(running, finished)
            while committed in finished:
                _commit(consumers, split, committed, finished.pop(committed))
                committed += 1
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # on an error: the objects in work finish, no more start


def _collect(running: dict[Future[list[Any]], int], finished: dict[int, list[Any]]) -> None:
    """Waits for at least one object in work; moves what finished into ``finished``. Its own frame, so that
    no finished future (nor its crops) outlives the move: after its commit an object holds nothing."""
    for future in wait(running, return_when=FIRST_COMPLETED).done:
        finished[running.pop(future)] = future.result()
