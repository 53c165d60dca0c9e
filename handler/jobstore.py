"""The storage contract of a processed object and of a job: names, the etag rule, the write order, the retry window.

Both sides use it: the worker (``s3/``) writes what it made of an object, the API (``api/jobs``) reads it back.

- Names: an input ``<SEG_INPUT_PREFIX>a/cat.jpg`` has its outputs at ``<SEG_OUTPUT_PREFIX>a/cat.jpg`` +
  ``.json`` (the result and a ``source`` block), ``.png`` (the overlay) or ``.error.json`` (``{"error":
  {code, message}, "source"}``), in ``SEG_OUTPUT_BUCKET`` when set, else beside the input. A job is
  ``<SEG_INPUT_PREFIX>jobs/<job_id>/<name>`` (the upload) and ``<SEG_OUTPUT_PREFIX>jobs/<job_id>/job.record``
  (the job as created: never ends in .json/.png, so no upload's outputs can take its name).
- The etag rule: every output carries the etag (and version) of the upload it was made from, as
  ``x-amz-meta-source-etag`` / ``source-version`` (a HEAD tells it, whatever the result's size) and in its
  ``source`` block. An output counts for an object only when that etag is the object's current one.
- The write order: a result writes ``.png`` then ``.json`` (a ``.json`` present means its ``.png`` is), then
  removes an ``.error.json`` and, when no overlay was asked for, an earlier ``.png``; an error record writes
  ``.error.json``, then removes ``.json`` and ``.png``. Just before writing, the worker checks (HEAD) that the
  object is still the version it read; a stale outcome is dropped, never written over a newer one's.
- The claim (one processed upload per job): a job's presigned POST can be used again until it expires, and S3
  cannot refuse a second POST to the same key (its conditional writes exist for PutObject and
  CompleteMultipartUpload, not for browser-form POSTs). So the worker claims the job before reading the
  upload, with a conditional PUT (``If-None-Match: *``) of ``<SEG_OUTPUT_PREFIX>jobs/<job_id>/job.claim``
  holding the upload's etag. Exactly one etag wins; a retry of the same upload finds its own etag and goes on;
  any other upload is skipped unread. ``GET /jobs/{job_id}`` reads the claim to know whose outputs count.
"""

from __future__ import annotations

import json
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from handler.core import storage
from handler.core.settings import Settings

JOB_ID = re.compile(r"[0-9a-f]{32}")
RECORD_NAME = "job.record"
RESULT, OVERLAY, ERROR = ".json", ".png", ".error.json"
LONGEST_SUFFIX = ERROR
SOURCE_ETAG, SOURCE_VERSION = "source-etag", "source-version"  # x-amz-meta-* of every output
# Records and error records are a few hundred bytes; this only bounds a hostile object.
MAX_RECORD_BYTES = 64 * 1024
# Lambda's waits between the retries of an asynchronous invocation (1 min, then 2 min).
RETRY_WAITS_S = (60, 120)
# For the failure record to reach the failure queue and the worker to turn it into an error record.
FAILURE_RECORD_GRACE_S = 300


@dataclass(frozen=True)
class OutputKeys:
    """Where the outputs of one input object go: ``key(RESULT)``, ``key(OVERLAY)``, ``key(ERROR)``."""

    bucket: str
    base: str  # the output key without its suffix

    @classmethod
    def of(cls, bucket: str, key: str, settings: Settings) -> OutputKeys:
        base = f"{settings.output_prefix}{key.removeprefix(settings.input_prefix)}"
        return cls(settings.output_bucket or bucket, base)

    def key(self, suffix: str) -> str:
        return self.base + suffix


def source_of(stored: storage.StoredObject) -> dict[str, Any]:
    """The ``source`` block of an output: which upload, exactly, it was made from."""
    return {"bucket": stored.bucket, "key": stored.key, "etag": stored.etag, "version_id": stored.version_id}


def _source_metadata(source: dict[str, Any]) -> dict[str, str]:
    named = {SOURCE_ETAG: source.get("etag"), SOURCE_VERSION: source.get("version_id")}
    return {name: str(value) for name, value in named.items() if value}


def current(stored: storage.StoredObject) -> storage.StoredObject | None:
    """The object as it is now when it is still the version ``stored`` saw, else None (replaced or deleted)."""
    now = storage.head_if_present(stored.bucket, stored.key)
    if now is None or now.etag != stored.etag:
        return None
    if stored.version_id and now.version_id and now.version_id != stored.version_id:
        return None
    return now


def write_result(outputs: OutputKeys, source: dict[str, Any], result: dict[str, Any], png: bytes | None) -> list[str]:
    """The result (and its overlay) in the write order; returns the keys written, the ``.json`` first."""
    metadata = _source_metadata(source)
    written = []
    if png is not None:
        storage.put(outputs.bucket, outputs.key(OVERLAY), png, "image/png", metadata)
        written.append(outputs.key(OVERLAY))
    body = json.dumps({**result, "source": source}).encode()
    storage.put(outputs.bucket, outputs.key(RESULT), body, "application/json", metadata)
    storage.delete(outputs.bucket, outputs.key(ERROR))
    if png is None:
        storage.delete(outputs.bucket, outputs.key(OVERLAY))  # an earlier attempt's, beside this result
    return [outputs.key(RESULT), *written]


def write_error(outputs: OutputKeys, source: dict[str, Any], code: str, message: str, **extra: Any) -> str:
    """The error record, then no result or overlay of an earlier attempt beside it; returns its key."""
    body = json.dumps({"error": {"code": code, "message": message}, "source": source, **extra}).encode()
    storage.put(outputs.bucket, outputs.key(ERROR), body, "application/json", _source_metadata(source))
    storage.delete(outputs.bucket, outputs.key(RESULT))
    storage.delete(outputs.bucket, outputs.key(OVERLAY))
    return outputs.key(ERROR)


@dataclass(frozen=True)
class RecordedOutcome:
    """What the outputs say of the upload with a given etag: its result (``stored`` is the ``.json``, not
    read) or its error record (``error`` read, it is small)."""

    status: Literal["done", "failed"]
    stored: storage.StoredObject
    error: dict[str, str] | None = None


def _made_from(outputs: OutputKeys, suffix: str, etag: str) -> storage.StoredObject | None:
    """The output when it is there and was made from the upload whose etag is ``etag``."""
    stored = storage.head_if_present(outputs.bucket, outputs.key(suffix))
    return stored if stored is not None and stored.metadata.get(SOURCE_ETAG) == etag else None


def outcome(outputs: OutputKeys, etag: str) -> RecordedOutcome | None:
    """The outcome for the upload whose etag is ``etag``, or None while there is none (outputs of another
    upload to the same key do not count)."""
    result = _made_from(outputs, RESULT, etag)
    if result is not None:
        return RecordedOutcome("done", result)
    error = _made_from(outputs, ERROR, etag)
    if error is not None:
        return RecordedOutcome("failed", error, json.loads(storage.read(error, MAX_RECORD_BYTES))["error"])
    return None


def overlay_of(outputs: OutputKeys, etag: str) -> str | None:
    """The overlay's key when the one stored was made from this upload (not an earlier attempt's)."""
    return outputs.key(OVERLAY) if _made_from(outputs, OVERLAY, etag) is not None else None


def job_prefix(prefix: str, job_id: str) -> str:
    return f"{prefix}jobs/{job_id}/"


def upload_key(settings: Settings, job_id: str, name: str) -> str:
    return job_prefix(settings.input_prefix, job_id) + name


def results_bucket(settings: Settings) -> str:
    """Where job records and job outputs go: the output bucket, else the jobs bucket."""
    return settings.output_bucket or str(settings.jobs_bucket)


def write_record(settings: Settings, job_id: str, record: dict[str, Any]) -> None:
    key = job_prefix(settings.output_prefix, job_id) + RECORD_NAME
    storage.put(results_bucket(settings), key, json.dumps(record).encode(), "application/json")


def read_record(settings: Settings, job_id: str) -> dict[str, Any] | None:
    key = job_prefix(settings.output_prefix, job_id) + RECORD_NAME
    return storage.read_json(results_bucket(settings), key, MAX_RECORD_BYTES)


def retry_window_s(settings: Settings) -> int:
    """The longest an upload can wait for its outcome: the event's maximum age in Lambda's queue, every
    attempt at the worker's full timeout, Lambda's waits between retries, and the failure record's way
    back through the failure queue. Past it with no outcome, something was lost: the job is stalled."""
    attempts = settings.worker_max_retries + 1
    waits = sum(RETRY_WAITS_S[: settings.worker_max_retries])
    return settings.worker_max_event_age_s + attempts * settings.worker_timeout_s + waits + FAILURE_RECORD_GRACE_S


def stalled(upload: storage.StoredObject, settings: Settings, now: float) -> bool:
    return upload.last_modified is not None and now - upload.last_modified > retry_window_s(settings)


# One processed upload per job.
CLAIM_NAME = "job.claim"
MAX_CLAIM_BYTES = 4096
_JOB_UPLOAD = re.compile(r"jobs/([0-9a-f]{32})/[^/]+")


def job_of(key: str, settings: Settings) -> str | None:
    """The job id when ``key`` is a job's upload (``<SEG_INPUT_PREFIX>jobs/<job_id>/<name>``), else None."""
    if not key.startswith(settings.input_prefix):
        return None
    match = _JOB_UPLOAD.fullmatch(key.removeprefix(settings.input_prefix))
    return match[1] if match else None


def claim_key(settings: Settings, job_id: str) -> str:
    return f"{settings.output_prefix}jobs/{job_id}/{CLAIM_NAME}"


def claimed(bucket: str, settings: Settings, job_id: str) -> str | None:
    """The etag of the upload that claimed the job, or None while no upload has been read."""
    claim = storage.read_json(bucket, claim_key(settings, job_id), MAX_CLAIM_BYTES)
    return None if claim is None else str(claim["etag"])


def claim(bucket: str, settings: Settings, job_id: str, etag: str) -> str:
    """Claim the job for the upload with ``etag`` unless another did first; the etag that holds the claim."""
    body = json.dumps({"etag": etag, "claimed_at": time.time()}).encode()
    if storage.put_new(bucket, claim_key(settings, job_id), body, "application/json"):
        return etag
    return claimed(bucket, settings, job_id) or etag


# Videos (docs/video.md#s3-and-jobs): an upload ``<input prefix>a/clip.mp4`` has its result at
# ``<output prefix>a/clip.mp4.jsonl`` (one line per frame), its overlay at ``.webm`` and, when refused or failed,
# ``.error.json`` as an image's. The run's working files lie under ``.video/``: ``probe.json`` (the clip and the
# plan's size), ``plan.json`` (the chunks: the Distributed Map's items), ``chunks/NNNNN.jsonl`` (each with
# ``x-amz-meta-frames``: its frames, the overlap left out) and ``chunk-error.json`` (the last chunk failure's
# reason). The write order: the overlay, then the ``.jsonl``: a ``.jsonl`` made from the upload's etag is the
# one sign of a done video; a failed run writes only its ``.error.json``.
VIDEO_RESULT, VIDEO_OVERLAY, VIDEO_WORK = ".jsonl", ".webm", ".video/"
CHUNK_FRAMES = "frames"  # x-amz-meta-* of a chunk's lines


def video_key(outputs: OutputKeys, name: str) -> str:
    """A working file of the video's run: ``probe.json``, ``plan.json``, ``chunk-error.json``."""
    return outputs.key(VIDEO_WORK + name)


def chunk_key(outputs: OutputKeys, index: int) -> str:
    return outputs.key(f"{VIDEO_WORK}chunks/{index:05d}.jsonl")


def write_video_result(outputs: OutputKeys, source: dict[str, Any], lines: Path, overlay: Path | None) -> list[str]:
    """The overlay video, then the JSON lines (the sign the video is done), then no error record beside them."""
    metadata = _source_metadata(source)
    written = []
    if overlay is not None:
        storage.put_file(outputs.bucket, outputs.key(VIDEO_OVERLAY), overlay, "video/webm", metadata)
        written.append(outputs.key(VIDEO_OVERLAY))
    storage.put_file(outputs.bucket, outputs.key(VIDEO_RESULT), lines, "application/jsonl", metadata)
    storage.delete(outputs.bucket, outputs.key(ERROR))
    return [outputs.key(VIDEO_RESULT), *written]


def video_outcome(outputs: OutputKeys, etag: str) -> RecordedOutcome | None:
    """As ``outcome``, for a video: done when its ``.jsonl`` was made from this upload."""
    result = _made_from(outputs, VIDEO_RESULT, etag)
    if result is not None:
        return RecordedOutcome("done", result)
    return outcome_error(outputs, etag)


def outcome_error(outputs: OutputKeys, etag: str) -> RecordedOutcome | None:
    error = _made_from(outputs, ERROR, etag)
    if error is None:
        return None
    return RecordedOutcome("failed", error, json.loads(storage.read(error, MAX_RECORD_BYTES))["error"])


def video_overlay_of(outputs: OutputKeys, etag: str) -> str | None:
    return outputs.key(VIDEO_OVERLAY) if _made_from(outputs, VIDEO_OVERLAY, etag) is not None else None


def video_progress(outputs: OutputKeys, etag: str, threads: int = 16) -> dict[str, int] | None:
    """``{"frames_done", "frames_total", "chunks_done", "chunks"}`` of the run made from the upload with
    ``etag``, or None before its probe wrote the plan. One HEAD per chunk (no listing: job ids are never listed)."""
    probed = storage.read_json(outputs.bucket, video_key(outputs, "probe.json"), MAX_RECORD_BYTES)
    if probed is None or probed.get("etag") != etag:
        return None
    chunks = int(probed["chunks"])
    with ThreadPoolExecutor(max_workers=max(1, min(threads, chunks))) as pool:
        heads = list(
            pool.map(lambda index: _made_from_key(outputs.bucket, chunk_key(outputs, index), etag), range(chunks))
        )
    done = [head for head in heads if head is not None]
    frames = sum(int(head.metadata.get(CHUNK_FRAMES, 0)) for head in done)
    return {"frames_done": frames, "frames_total": int(probed["frames"]), "chunks_done": len(done), "chunks": chunks}


def _made_from_key(bucket: str, key: str, etag: str) -> storage.StoredObject | None:
    stored = storage.head_if_present(bucket, key)
    return stored if stored is not None and stored.metadata.get(SOURCE_ETAG) == etag else None
