"""One uploaded S3 object through the engine: skip rules, read, segment, write the result or an error record.

For ``uploads/a/cat.jpg`` (input prefix ``uploads/``, output prefix ``results/``) the outputs are
``results/a/cat.jpg.png`` (the overlay) and then ``results/a/cat.jpg.json`` (the result schema plus a
``source`` block), or, for a permanently bad object, ``results/a/cat.jpg.error.json``: names, write order
and the etag rule are ``handler.jobstore``'s. Just before writing, the object is checked to be still the one
read (a HEAD): an outcome for a replaced or deleted object is dropped (``stale``), the newer upload has its
own event. Transient failures are raised, never recorded. ``options`` (a Batch Operations job's) choose the
mask encoding, threshold and classes as ``/segment``'s query does; ``overlay=false`` leaves out the PNG;
``cutouts=mask|box`` adds each object cut out as ``results/a/cat.jpg.objects/NN-<class>.png``, written while
its mask is in hand (before the overlay and the JSON, which lists them under ``cutouts``). Without them,
the object's own ``x-amz-meta-*`` metadata may choose them (a ``POST /jobs`` presigned POST signs them in);
a bad value there is an error record. A Batch Operations task that names a version reads exactly that version.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal

import handler.s3.video as video
from handler import jobstore
from handler.core import metrics, storage
from handler.core.deadline import LambdaContext
from handler.core.errors import InvalidRequest, ServiceError
from handler.core.logs import logger
from handler.core.settings import Settings
from handler.core.storage import MAX_KEY_BYTES
from handler.engine import (
    LONGEST_NAME,
    OBJECTS_SUFFIX,
    CutoutWriter,
    Outputs,
    RequestOptions,
    Segmenter,
    segment_bytes,
)

ObjectOutcome = Literal["segmented", "error_record", "skipped", "video_started"]

# ObjectRef.event_name of an object an S3 Batch Operations task names: it exists, like a created one.
BATCH_TASK = "Batch Operations task"


@dataclass(frozen=True)
class ObjectRef:
    """An object an event names: ``key`` already URL-decoded; etag/version as the event reported them."""

    bucket: str
    key: str
    event_name: str  # "ObjectCreated:Put" (S3 notification), "Object Created" (EventBridge) or BATCH_TASK
    etag: str | None = None
    version_id: str | None = None

    @property
    def created(self) -> bool:
        return self.event_name.startswith("ObjectCreated:") or self.event_name in ("Object Created", BATCH_TASK)


@dataclass(frozen=True)
class Processed:
    """What happened to one object: the return value of the invocation and its log line."""

    bucket: str
    key: str
    outcome: ObjectOutcome
    reason: str | None = None  # why it was skipped, or "<code>: <message>" of the error record
    objects: int | None = None
    outputs: list[str] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)


def entry_point(ref: ObjectRef, settings: Settings) -> metrics.EntryPoint:
    """``batch`` for Batch Operations tasks, ``jobs`` for uploads of the ``POST /jobs`` flow (under
    ``<input prefix>jobs/``), else ``s3``."""
    if ref.event_name == BATCH_TASK:
        return "batch"
    return "jobs" if ref.key.startswith(f"{settings.input_prefix}jobs/") else "s3"


def outputs_of(ref: ObjectRef, settings: Settings) -> jobstore.OutputKeys:
    return jobstore.OutputKeys.of(ref.bucket, ref.key, settings)


def output_bucket(ref: ObjectRef, settings: Settings) -> str:
    return outputs_of(ref, settings).bucket


def output_key(ref: ObjectRef, settings: Settings, suffix: str) -> str:
    return outputs_of(ref, settings).key(suffix)


def skip_reason(ref: ObjectRef, settings: Settings) -> str | None:
    """Why this object is not ours to segment, or None. Our own outputs are checked first: no loops."""
    if ref.bucket == output_bucket(ref, settings) and ref.key.startswith(settings.output_prefix):
        return f"an output of this function (under {settings.output_prefix!r})"
    backfill = ref.bucket == settings.backfill_bucket and ref.key.startswith(settings.backfill_prefix)
    if not ref.key.startswith(settings.input_prefix) and not backfill:
        also = f" or s3://{settings.backfill_bucket}/{settings.backfill_prefix}" if settings.backfill_bucket else ""
        return f"outside the input prefix {settings.input_prefix!r}{also}"
    if ref.key.endswith("/"):
        return "a folder marker"
    if not ref.created:
        return f"not an object-created event ({ref.event_name})"
    longest = len(output_key(ref, settings, jobstore.LONGEST_SUFFIX).encode())
    if longest > MAX_KEY_BYTES:
        return f"its result keys would be {longest} bytes, over S3's {MAX_KEY_BYTES}-byte key limit"
    return None


def process(
    ref: ObjectRef,
    segmenter: Segmenter,
    settings: Settings,
    context: LambdaContext | None = None,
    options: RequestOptions | None = None,
) -> Processed:
    """Segment one object and write its outputs; raises on transient failures (S3, network, out of time)."""
    reason = skip_reason(ref, settings)
    if reason:
        return Processed(ref.bucket, ref.key, "skipped", reason=reason)
    started = time.perf_counter()
    places = outputs_of(ref, settings)
    try:
        version = ref.version_id if ref.event_name == BATCH_TASK else None
        stored = storage.head(ref.bucket, ref.key, version)
    except ServiceError as exc:  # gone or unreadable before anything was read: nothing newer to protect
        source = {"bucket": ref.bucket, "key": ref.key, "etag": ref.etag, "version_id": ref.version_id}
        return _error_record(ref, settings, places, source, exc, started)
    source = jobstore.source_of(stored)
    try:
        ignored = _second_upload(ref, stored, settings)
        if ignored:
            return Processed(ref.bucket, ref.key, "skipped", reason=ignored)
        if video.is_video(stored, stored.content_type):
            return _start_video(ref, stored, settings, started)
        options = options or RequestOptions.from_metadata(stored.metadata)
        writer = _cutout_writer(ref, settings, options)
        data = storage.read(stored, settings.max_image_bytes)
        read = time.perf_counter()
        logger.info("s3 object read: segmenting", extra={"bucket": ref.bucket, "key": ref.key, "bytes": len(data)})
        overlay = options.overlay is not False
        consumers = [writer] if writer else []
        wanted = Outputs(options.masks, overlay, settings.overlay_max_side, consumers)
        segmented = segment_bytes(data, segmenter, settings, options, context, wanted)
    except ServiceError as exc:
        if (stale := _stale(stored, started, settings)) is not None:
            return stale
        return _error_record(ref, settings, places, source, exc, started)
    segmented_at = time.perf_counter()
    metrics.record_image(entry_point(ref, settings), segmented.result)
    if (stale := _stale(stored, started, settings)) is not None:
        return stale
    body = segmented.result.to_json()
    if writer:
        body["cutouts"] = {"mode": writer.mode, "prefix": places.key(OBJECTS_SUFFIX), "names": writer.names}
    written = jobstore.write_result(places, source, body, segmented.result.overlay_png)
    return Processed(
        ref.bucket,
        ref.key,
        "segmented",
        objects=len(segmented.result),
        outputs=written,
        timings_ms=_since(started, read=read, segment=segmented_at, total=time.perf_counter()),
    )


def _start_video(ref: ObjectRef, stored: storage.StoredObject, settings: Settings, started: float) -> Processed:
    """A video: one execution of the video state machine (``handler.s3.video``), or its error record."""
    outcome, detail = video.start(stored, settings)
    timings = _since(started, total=time.perf_counter())
    if outcome == "error_record":
        return Processed(ref.bucket, ref.key, "error_record", reason="refused", outputs=[detail], timings_ms=timings)
    reason = None if outcome == "started" else f"its execution was started already: {detail}"
    return Processed(ref.bucket, ref.key, "video_started", reason=reason, outputs=[detail], timings_ms=timings)


def _second_upload(ref: ObjectRef, stored: storage.StoredObject, settings: Settings) -> str | None:
    """Why this job upload is not processed (another upload claimed its job first), or None."""
    job_id = jobstore.job_of(ref.key, settings)
    if job_id is None or jobstore.claim(output_bucket(ref, settings), settings, job_id, stored.etag) == stored.etag:
        return None
    return f"a second upload to job {job_id[:8]}: only the first one is processed (one upload per job)"


def _cutout_writer(ref: ObjectRef, settings: Settings, options: RequestOptions) -> CutoutWriter | None:
    """With the ``cutouts`` option: a consumer putting each object's PNG under ``<output>.objects/`` while its
    mask is in hand. Refused up front when its keys could pass S3's key limit."""
    if not options.cutouts:
        return None
    prefix = output_key(ref, settings, OBJECTS_SUFFIX)
    longest = len((prefix + LONGEST_NAME).encode())
    if longest > MAX_KEY_BYTES:
        raise InvalidRequest(f"its cut-outs' keys could be {longest} bytes, over S3's {MAX_KEY_BYTES}-byte key limit")
    bucket = output_bucket(ref, settings)
    return CutoutWriter(lambda name, png: storage.put(bucket, prefix + name, png, "image/png"), options.cutouts)


def _stale(stored: storage.StoredObject, started: float, settings: Settings) -> Processed | None:
    """A skipped outcome when the object is no longer the version read (the HEAD just before writing). A job's
    upload is exempt: it holds its job's claim, and a later upload to the same form is never processed."""
    if jobstore.job_of(stored.key, settings) is not None or jobstore.current(stored) is not None:
        return None
    reason = "stale: the object was replaced or deleted while it was segmented; its newer upload has its own event"
    return Processed(
        stored.bucket, stored.key, "skipped", reason=reason, timings_ms=_since(started, total=time.perf_counter())
    )


def _error_record(
    ref: ObjectRef,
    settings: Settings,
    places: jobstore.OutputKeys,
    source: dict[str, Any],
    exc: ServiceError,
    started: float,
) -> Processed:
    metrics.record_error(entry_point(ref, settings), exc.code)
    key = jobstore.write_error(places, source, exc.code, exc.message)
    return Processed(
        ref.bucket,
        ref.key,
        "error_record",
        reason=f"{exc.code}: {exc.message}",
        outputs=[key],
        timings_ms=_since(started, total=time.perf_counter()),
    )


def _since(started: float, **marks: float) -> dict[str, float]:
    """Milliseconds from ``started`` to each mark (``read``, ``segment``, ``total``)."""
    return {name: round((mark - started) * 1000, 1) for name, mark in marks.items()}
