"""The one path from uploaded bytes to a Segmentation, shared by the API, S3 events and the CLI."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

import handler.engine.images as images
from handler.core.deadline import LambdaContext, time_budget
from handler.core.settings import DetectionSpeed, Settings
from handler.engine.objects import ObjectTasks, Outputs, encode_in_parallel, encode_objects, object_threads
from handler.engine.options import RequestOptions
from handler.engine.results import Segmentation
from handler.model import Detections, MaskCrop, Segmenter


@dataclass(frozen=True)
class SegmentedImage:
    rgb: np.ndarray
    result: Segmentation


def segment_bytes(
    data: bytes,
    segmenter: Segmenter,
    settings: Settings,
    options: RequestOptions = RequestOptions(),
    context: LambdaContext | None = None,
    outputs: Outputs = Outputs(),
    detection_speed: DetectionSpeed | None = None,
) -> SegmentedImage:
    """Decode and segment with the request's ``options`` (confidence, classes; ``outputs`` says what to make
    from each mask, default RLE), at ``detection_speed`` (default ``SEG_DETECTION_SPEED``); raises
    ``handler.core.errors.ServiceError`` subclasses for bad input, and ``handler.core.deadline.OutOfTime``
    when the Lambda ``context`` has too little time left for one image."""
    started = time.perf_counter()
    wanted = options.wanted(segmenter)  # reject a bad query before spending time on the image
    speed = detection_speed or settings.detection_speed
    rgb = images.decode(data, max_bytes=settings.max_image_bytes, max_pixels=settings.max_pixels)
    decoded = time.perf_counter()
    megapixels = rgb.shape[0] * rgb.shape[1] / 1e6
    time_budget.ensure_time_for_one(context, speed, megapixels)  # the image's size decides what it may cost
    result, detected = _segment(rgb, segmenter, options.confidence, wanted, speed, outputs, context)
    result.timings_ms["decode"] = (decoded - started) * 1000
    result.timings_ms["total"] = (time.perf_counter() - started) * 1000
    time_budget.record(result.timings_ms["total"], speed, megapixels, detected)
    return SegmentedImage(rgb=rgb, result=result)


def segment_rgb(
    rgb: np.ndarray,
    segmenter: Segmenter,
    confidence: float | None = None,
    classes: Sequence[str] | None = None,
    detection_speed: DetectionSpeed | None = None,
    outputs: Outputs = Outputs(),
) -> Segmentation:
    """Detect on a decoded image, keep only ``classes`` (COCO names) when given, then paste each kept object's
    mask and hand it to ``outputs``' consumers, one object at a time (``objects.encode_objects``)."""
    wanted = segmenter.validate_classes(classes)
    return _segment(rgb, segmenter, confidence, wanted, detection_speed, outputs, None)[0]


def _segment(
    rgb: np.ndarray,
    segmenter: Segmenter,
    confidence: float | None,
    wanted: frozenset[str] | None,
    detection_speed: DetectionSpeed | None,
    outputs: Outputs,
    context: LambdaContext | None,
) -> tuple[Segmentation, int]:
    """``segment_rgb`` with the class names already checked (``wanted``; None keeps all), and how many objects
    the model found before ``wanted`` kept some (what they cost)."""
    found = segmenter.detect(rgb, confidence, detection_speed)
    names = [segmenter.class_names[i] for i in found.class_ids]
    keep = [index for index, name in enumerate(names) if wanted is None or name in wanted]
    result = Segmentation(
        width=rgb.shape[1],
        height=rgb.shape[0],
        boxes=found.boxes[keep],
        scores=found.scores[keep],
        class_ids=found.class_ids[keep],
        class_names=[names[index] for index in keep],
        model=segmenter.model_info,
        timings_ms={"model": found.forward_ms},
    )
    started = time.perf_counter()
    threads = object_threads(segmenter.settings)
    if threads <= 1:
        encode_objects(rgb, result, _masks_in_time(found, keep, context), outputs)
    else:
        pace = _Pace(found, keep, context)
        tasks = ObjectTasks(paste=lambda position: _paste(found, keep[position]), before=pace.check)
        encode_in_parallel(rgb, result, tasks, outputs, threads)
    result.timings_ms["masks"] = (time.perf_counter() - started) * 1000
    return result, len(found.boxes)


def _paste(found: Detections, index: int) -> MaskCrop:
    """One object's mask, on whichever thread asks (``Detections.masks`` pastes one crop per index)."""
    return next(iter(found.masks([index])))


class _Pace:
    """The deadline's check before each object when objects run on several threads: the reference cost, or
    when slower what this request's finished objects took (wall time over their box megapixels)."""

    def __init__(self, found: Detections, keep: list[int], context: LambdaContext | None) -> None:
        self.context, self.keep = context, keep
        self.megapixels = [_box_megapixels(found, index) for index in keep]
        self.started = time.perf_counter()

    def check(self, position: int, committed: int) -> None:
        spent_ms = (time.perf_counter() - self.started) * 1000
        observed = spent_ms / max(sum(self.megapixels[:committed]), 1.0) if committed else 0.0
        time_budget.ensure_time_for_object(self.context, self.megapixels[position], position, len(self.keep), observed)


def _box_megapixels(found: Detections, index: int) -> float:
    left, top, right, bottom = found.boxes[index]
    return float((right - left) * (bottom - top) / 1e6)


def _masks_in_time(found: Detections, keep: list[int], context: LambdaContext | None) -> Iterator[MaskCrop]:
    """The kept objects' masks, each pasted only when the invocation still has time for it, judged by the
    reference cost and by what the objects before it took here (paste and every consumer)."""
    spent_ms = pasted_megapixels = 0.0
    for done, index in enumerate(keep):
        left, top, right, bottom = found.boxes[index]
        megapixels = (right - left) * (bottom - top) / 1e6
        # Over at least one megapixel: small boxes' fixed costs must not read as a huge rate per megapixel.
        observed = spent_ms / max(pasted_megapixels, 1.0)
        time_budget.ensure_time_for_object(context, megapixels, done, len(keep), observed)
        started = time.perf_counter()
        yield from found.masks([index])  # resumes once the consumers are done with this object
        spent_ms += (time.perf_counter() - started) * 1000
        pasted_megapixels += megapixels
