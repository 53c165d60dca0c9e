"""One uploaded S3 object through the engine: skip rules, read, segment, write the result or an error record.

For ``uploads/a/cat.jpg`` (input prefix ``uploads/``, output prefix ``results/``) the outputs are
``results/a/cat.jpg.png`` (the overlay) and then ``results/a/cat.jpg.json`` (the result schema plus a
``source`` block), so a ``.json`` present means both are; or, for a permanently bad object,
``results/a/cat.jpg.error.json``. Transient failures are raised, never recorded. ``options`` (a Batch
Operations job's) choose the mask encoding, threshold and classes as ``/segment``'s query does;
``overlay=false`` leaves out the PNG; ``cutouts=mask|box`` adds each object cut out as
``results/a/cat.jpg.objects/NN-<class>.png``, written while its mask is in hand (before the overlay and the
JSON, which lists them under ``cutouts``). Without them, the object's own ``x-amz-meta-*`` metadata may choose
them (a ``POST /jobs`` presigned POST signs them in); a bad value there is an error record.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from handler import jobclaim, metrics, storage
from handler.deadline import LambdaContext
from handler.engine import (
    LONGEST_NAME,
    OBJECTS_SUFFIX,
    CutoutWriter,
    Outputs,
    RequestOptions,
    Segmenter,
    segment_bytes,
)
from handler.errors import InvalidRequest, ServiceError
from handler.settings import Settings
from handler.storage import MAX_KEY_BYTES

Outcome = Literal["segmented", "error_record", "skipped"]

# The longest suffix an output key gets.
LONGEST_SUFFIX = ".error.json"

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
    outcome: Outcome
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


def output_bucket(ref: ObjectRef, settings: Settings) -> str:
    return settings.output_bucket or ref.bucket


def output_key(ref: ObjectRef, settings: Settings, suffix: str) -> str:
    return storage.output_key(ref.key, settings.input_prefix, settings.output_prefix, suffix)


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
    longest = len(output_key(ref, settings, LONGEST_SUFFIX).encode())
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
    source = {"bucket": ref.bucket, "key": ref.key, "etag": ref.etag, "version_id": ref.version_id}
    try:
        stored = storage.head(ref.bucket, ref.key)
        source.update(etag=stored.etag, version_id=stored.version_id)
        ignored = _second_upload(ref, stored, settings)
        if ignored:
            return Processed(ref.bucket, ref.key, "skipped", reason=ignored)
        options = options or RequestOptions.from_metadata(stored.metadata)
        writer = _cutout_writer(ref, settings, options)
        data = storage.read(stored, settings.max_image_bytes)
        read = time.perf_counter()
        overlay = options.overlay is not False
        consumers = [writer] if writer else []
        outputs = Outputs(options.masks, overlay, settings.overlay_max_side, consumers)
        segmented = segment_bytes(data, segmenter, settings, options.segment_options(), context, outputs)
    except ServiceError as exc:
        metrics.record_error(entry_point(ref, settings), exc.code)
        error = {"error": {"code": exc.code, "message": exc.message}, "source": source}
        key = _put_json(ref, settings, ".error.json", error)
        return Processed(
            ref.bucket,
            ref.key,
            "error_record",
            reason=f"{exc.code}: {exc.message}",
            outputs=[key],
            timings_ms=_since(started, total=time.perf_counter()),
        )
    segmented_at = time.perf_counter()
    metrics.record_image(entry_point(ref, settings), segmented.result)
    outputs = []
    png = segmented.result.overlay_png
    if png is not None:
        png_key = output_key(ref, settings, ".png")
        storage.put(output_bucket(ref, settings), png_key, png, "image/png")
        outputs.append(png_key)
    body = {**segmented.result.to_json(), "source": source}
    if writer:
        prefix = output_key(ref, settings, OBJECTS_SUFFIX)
        body["cutouts"] = {"mode": writer.mode, "prefix": prefix, "names": writer.names}
    json_key = _put_json(ref, settings, ".json", body)
    return Processed(
        ref.bucket,
        ref.key,
        "segmented",
        objects=len(segmented.result),
        outputs=[json_key, *outputs],
        timings_ms=_since(started, read=read, segment=segmented_at, total=time.perf_counter()),
    )


def _second_upload(ref: ObjectRef, stored: storage.StoredObject, settings: Settings) -> str | None:
    """Why this job upload is not processed (another upload claimed its job first), or None."""
    job_id = jobclaim.job_of(ref.key, settings)
    if job_id is None or jobclaim.claim(output_bucket(ref, settings), settings, job_id, stored.etag) == stored.etag:
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


def _put_json(ref: ObjectRef, settings: Settings, suffix: str, body: dict[str, Any]) -> str:
    key = output_key(ref, settings, suffix)
    storage.put(output_bucket(ref, settings), key, json.dumps(body).encode(), "application/json")
    return key


def _since(started: float, **marks: float) -> dict[str, float]:
    """Milliseconds from ``started`` to each mark (``read``, ``segment``, ``total``)."""
    return {name: round((mark - started) * 1000, 1) for name, mark in marks.items()}
