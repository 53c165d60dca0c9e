"""The video state machine's tasks (``infra/video_state_machine.asl.json``), each a worker invocation whose
payload names its task: ``{"video_task": "probe" | "chunk" | "assemble" | "fail", "video": {bucket, key,
etag, version_id}, ...}``.

- probe: the clip checked against the limits through a presigned URL (OpenCV's FFmpeg reads by ranges, nothing
  is downloaded whole: SnapStart's /tmp is 512 MB); a bad clip gets its error record and ``VideoRefused`` is
  raised (the machine does not retry it); else the chunk plan is written and named for the Distributed Map.
- chunk: one frame range through the engine, its lines written to S3; a failure leaves its reason in
  ``chunk-error.json`` and is raised (the machine retries, then fails the execution).
- assemble: lines linked and in frame order, the overlay encoded, the result written last.
- fail: the upload's error record with the reason (kept when the probe already wrote one).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from handler import jobstore
from handler.core import storage
from handler.core.errors import ServiceError
from handler.core.logs import logger
from handler.core.settings import Settings, get_settings
from handler.engine import RequestOptions, get_segmenter
from handler.video import probe
from handler.video.assemble import assemble
from handler.video.chunk import run_chunk
from handler.video.plan import Chunk, chunk_length, plan_chunks

TASKS = ("probe", "chunk", "assemble", "fail")
MAX_PLAN_BYTES = 16 * 1024 * 1024
URL_EXPIRY_S = 3600


class VideoRefused(RuntimeError):
    """The video cannot be segmented (bad input, or replaced since the execution started): not retried."""


def infer(event: Any) -> bool:
    return isinstance(event, dict) and event.get("video_task") in TASKS and isinstance(event.get("video"), dict)


def handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = get_settings()
    video = event["video"]
    stored = storage.StoredObject(video["bucket"], video["key"], 0, video["etag"], video.get("version_id"))
    outputs = jobstore.OutputKeys.of(stored.bucket, stored.key, settings)
    task = event["video_task"]
    logger.info("video task", extra={"task": task, "key": stored.key})
    if task == "fail":
        return fail(stored, outputs, event.get("error") or {})
    current = jobstore.current(stored)
    if current is None:
        raise VideoRefused(
            "the video was replaced or deleted since its execution started; the newer upload has its own"
        )
    if task == "probe":
        return probe_video(current, outputs, settings)
    if task == "chunk":
        return segment_chunk(current, outputs, Chunk.from_json(event["chunk"]))
    return assemble_video(current, outputs, event["plan"])


def _url(stored: storage.StoredObject) -> str:
    return storage.presigned_get(stored.bucket, stored.key, URL_EXPIRY_S)


def probe_video(stored: storage.StoredObject, outputs: jobstore.OutputKeys, settings: Settings) -> dict[str, Any]:
    try:
        info = probe(_url(stored), settings, size_bytes=stored.size)
    except ServiceError as exc:
        jobstore.write_error(outputs, jobstore.source_of(stored), exc.code, exc.message)
        raise VideoRefused(f"{exc.code}: {exc.message}") from exc
    length = chunk_length(
        info.width, info.height, settings.detection_speed, settings.worker_timeout_s, settings.video_chunk_frames
    )
    chunks = plan_chunks(info.frames, length)
    plan_key = jobstore.video_key(outputs, "plan.json")
    body = json.dumps([chunk.to_json() for chunk in chunks]).encode()
    storage.put(outputs.bucket, plan_key, body, "application/json")
    probed = {
        "etag": stored.etag,
        "frames": info.frames,
        "chunks": len(chunks),
        "fps": info.fps,
        "chunk_frames": length,
    }
    storage.put(
        outputs.bucket, jobstore.video_key(outputs, "probe.json"), json.dumps(probed).encode(), "application/json"
    )
    return {"bucket": outputs.bucket, "key": plan_key, **probed}


def segment_chunk(stored: storage.StoredObject, outputs: jobstore.OutputKeys, chunk: Chunk) -> dict[str, int]:
    options = RequestOptions.from_metadata(stored.metadata)
    try:
        with tempfile.TemporaryDirectory(prefix="chunk-") as folder:
            path = Path(folder) / "lines.jsonl"
            with path.open("w", encoding="utf-8") as out:
                lines = run_chunk(_url(stored), chunk, get_segmenter(), out, options)
            frames = lines - (1 if chunk.read_from < chunk.start and lines else 0)
            metadata = {**_source(stored), jobstore.CHUNK_FRAMES: str(frames)}
            storage.put_file(
                outputs.bucket, jobstore.chunk_key(outputs, chunk.index), path, "application/jsonl", metadata
            )
    except Exception as exc:
        reason = {
            "etag": stored.etag,
            "chunk": chunk.to_json(),
            "error": {"code": getattr(exc, "code", type(exc).__name__), "message": str(exc)},
        }
        storage.put(
            outputs.bucket,
            jobstore.video_key(outputs, "chunk-error.json"),
            json.dumps(reason).encode(),
            "application/json",
        )
        raise
    return {"frames": frames}


def _source(stored: storage.StoredObject) -> dict[str, str]:
    return {jobstore.SOURCE_ETAG: stored.etag}


def _chunk_lines(outputs: jobstore.OutputKeys, chunk: Chunk, etag: str) -> Any:
    body = storage.s3_client().get_object(Bucket=outputs.bucket, Key=jobstore.chunk_key(outputs, chunk.index))
    if body.get("Metadata", {}).get(jobstore.SOURCE_ETAG) != etag:
        raise VideoRefused(f"chunk {chunk.index}'s lines were made from another upload")
    for raw in body["Body"].iter_lines():
        if raw:
            yield json.loads(raw)


def assemble_video(stored: storage.StoredObject, outputs: jobstore.OutputKeys, plan: dict[str, Any]) -> dict[str, Any]:
    items = storage.read_json(outputs.bucket, jobstore.video_key(outputs, "plan.json"), MAX_PLAN_BYTES)
    chunks = [Chunk.from_json(item) for item in items]
    _all_chunks_done(stored, outputs, chunks)
    with tempfile.TemporaryDirectory(prefix="assemble-") as folder:
        lines, overlay = Path(folder) / "lines.jsonl", Path(folder) / "overlay.webm"
        with lines.open("w", encoding="utf-8") as out:
            done = assemble(
                _url(stored),
                ((chunk, _chunk_lines(outputs, chunk, stored.etag)) for chunk in chunks),
                float(plan["fps"]),
                out,
                overlay,
            )
        if jobstore.current(stored) is None:
            raise VideoRefused("the video was replaced or deleted while it was assembled")
        written = jobstore.write_video_result(
            outputs, jobstore.source_of(stored), lines, overlay if overlay.exists() else None
        )
    return {"frames": done.frames, "objects": done.objects, "tracks": done.tracks, "written": written}


def _all_chunks_done(stored: storage.StoredObject, outputs: jobstore.Outputs, chunks: list[Chunk]) -> None:
    """Every chunk's lines are there, made from this upload: else ``VideoRefused`` (nothing partial is assembled).
    Step Functions fails the Map when a child fails (no tolerated failures), but this holds whatever ran the plan."""
    for chunk in chunks:
        stored_chunk = storage.head_if_present(outputs.bucket, jobstore.chunk_key(outputs, chunk.index))
        if stored_chunk is None or stored_chunk.metadata.get(jobstore.SOURCE_ETAG) != stored.etag:
            missing = f"chunk {chunk.index} has no lines: it did not finish"
            raise VideoRefused(_chunk_failure(stored, outputs) or missing)


def _chunk_failure(stored: storage.StoredObject, outputs: jobstore.Outputs) -> str | None:
    """The last chunk failure's reason for this upload, if one was left."""
    key = jobstore.video_key(outputs, "chunk-error.json")
    found = storage.read_json(outputs.bucket, key, jobstore.MAX_RECORD_BYTES)
    if found is None or found.get("etag") != stored.etag:
        return None
    chunk = found["chunk"]
    stop = "the end" if chunk["stop"] is None else f"frame {chunk['stop']}"
    error = found["error"]
    return f"chunk {chunk['index']} (frames {chunk['start']} to {stop}) failed: {error['code']}: {error['message']}"


def fail(stored: storage.StoredObject, outputs: jobstore.OutputKeys, error: dict[str, Any]) -> dict[str, Any]:
    """The upload's error record, unless the probe already wrote one (its reason is the better one)."""
    if jobstore.outcome_error(outputs, stored.etag) is not None:
        return {"error_record": outputs.key(jobstore.ERROR), "kept": True}
    message = _reason(error)
    chunk_failure = _chunk_failure(stored, outputs)
    if chunk_failure is not None and chunk_failure not in message:
        message = f"{chunk_failure} ({message})"
    code = "video_failed"
    key = jobstore.write_error(outputs, jobstore.source_of(stored), code, message)
    return {"error_record": key, "kept": False}


def _reason(error: dict[str, Any]) -> str:
    """Step Functions' ``{"Error", "Cause"}``; a Lambda error's cause is its JSON ``errorMessage``."""
    cause = error.get("Cause") or ""
    try:
        parsed = json.loads(cause)
        cause = parsed.get("errorMessage", cause) if isinstance(parsed, dict) else cause
    except (TypeError, ValueError):
        pass
    return f"{error.get('Error', 'States.Failed')}: {cause}".strip(": ")
