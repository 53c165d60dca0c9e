"""Large images: ``POST /jobs`` hands out an S3 presigned POST, ``GET /jobs/{job_id}`` says how the job is doing.

The client uploads straight to S3 (no 6 MB Lambda payload limit, no 29 s API limit); the S3 trigger
segments the upload like any other, with the job's options signed into its metadata. Keys, in the jobs
bucket (``SEG_JOBS_BUCKET``; results in ``SEG_OUTPUT_BUCKET`` when set):

- ``<SEG_INPUT_PREFIX>jobs/<job_id>/<safe name>``: the upload (the policy pins this exact key);
- ``<SEG_OUTPUT_PREFIX>jobs/<job_id>/<safe name>.json`` / ``.png`` / ``.error.json``, and with the
  ``cutouts`` option ``.objects/NN-<class>.png``: what the S3 side wrote;
- ``<SEG_OUTPUT_PREFIX>jobs/<job_id>/job.record``: the job as created (never ends in .json/.png, so no
  upload's outputs can take its name). Without it the id is unknown: 404.

The job id is the only capability: 128 random bits, never listed, logged as its first 8 digits.
"""

from __future__ import annotations

import json
import mimetypes
import re
import secrets
import time
from typing import Any

from fastapi import APIRouter, Body, Depends
from fastapi.responses import JSONResponse

from handler import jobclaim, storage
from handler.api.errors import error_response
from handler.api.models import ERROR_RESPONSES, ErrorResponse, JobCreated, JobRequest, JobStatus
from handler.engine import OBJECTS_SUFFIX, RequestOptions, Segmenter, get_segmenter
from handler.errors import JobNotFound
from handler.logs import logger
from handler.settings import Settings, get_settings

JOB_ID = re.compile(r"[0-9a-f]{32}")
CUTOUT_NAME = re.compile(r"[0-9]{2,}-[A-Za-z0-9_-]+\.png")
RECORD_NAME = "job.record"
MAX_NAME_CHARS = 100
# Results of images up to SEG_MAX_IMAGE_BYTES stay far below this; it only bounds a hostile object.
MAX_RESULT_BYTES = 256 * 1024 * 1024
# Python's table lacks the formats phones save in.
EXTRA_IMAGE_TYPES = {".heic": "image/heic", ".heif": "image/heif", ".avif": "image/avif"}

router = APIRouter(prefix="/jobs", tags=["jobs"])


def safe_name(filename: str | None) -> str:
    """The last path part of ``filename``, with only [A-Za-z0-9._-] kept: an S3 key part safe to show."""
    base = re.split(r"[/\\]", filename or "")[-1]
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", base).strip("._")
    return cleaned[-MAX_NAME_CHARS:] or "image"


def content_type(request: JobRequest, name: str) -> str:
    if request.content_type:
        return request.content_type
    suffix = ("." + name.rsplit(".", 1)[-1].lower()) if "." in name else ""
    guessed = EXTRA_IMAGE_TYPES.get(suffix) or mimetypes.guess_type(name)[0] or ""
    return guessed if guessed.startswith("image/") else "image/jpeg"


def job_prefix(prefix: str, job_id: str) -> str:
    return f"{prefix}jobs/{job_id}/"


def results_bucket(settings: Settings) -> str:
    return settings.output_bucket or str(settings.jobs_bucket)


def jobs_unavailable() -> JSONResponse:
    return error_response(
        503, "jobs_unavailable", "jobs are not configured on this server: set SEG_JOBS_BUCKET to the upload bucket"
    )


@router.post(
    "",
    status_code=201,
    response_model=JobCreated,
    responses={**ERROR_RESPONSES, 503: {"model": ErrorResponse, "description": "SEG_JOBS_BUCKET is not set"}},
)
def create_job(
    request: JobRequest = Body(default_factory=JobRequest),
    settings: Settings = Depends(get_settings),
    segmenter: Segmenter = Depends(get_segmenter),
) -> Any:
    """A job for one image too large for `/segment`: POST the file to `upload.url` with `upload.fields`
    (straight to S3), then poll `status_url`."""
    if not settings.jobs_bucket:
        return jobs_unavailable()
    options = RequestOptions(**request.model_dump(include=set(RequestOptions.model_fields)))
    segmenter.validate_classes(options.class_list)
    options = options.model_copy(update={"overlay": bool(options.overlay)})  # signed either way
    job_id = secrets.token_hex(16)
    name = safe_name(request.filename)
    key = job_prefix(settings.input_prefix, job_id) + name
    pinned = {f"x-amz-meta-{option}": value for option, value in options.metadata().items()}
    # Content-Type is a default the client may change, but only to another image/ type.
    conditions = [["starts-with", "$Content-Type", "image/"], ["content-length-range", 1, settings.max_image_bytes]]
    upload = storage.presigned_post(settings.jobs_bucket, key, pinned, conditions, settings.upload_expiry_s)
    upload["fields"]["Content-Type"] = content_type(request, name)
    now = time.time()
    record = {
        "key": key,
        "options": options.metadata(),
        "created_at": now,
        "expires_at": now + settings.upload_expiry_s,
    }
    record_key = job_prefix(settings.output_prefix, job_id) + RECORD_NAME
    storage.put(results_bucket(settings), record_key, json.dumps(record).encode(), "application/json")
    logger.info("job created", extra={"job": job_id[:8], "options": options.metadata()})
    return {
        "job_id": job_id,
        "status": "waiting_for_upload",
        "upload": upload,
        "expires_in": settings.upload_expiry_s,
        "max_bytes": settings.max_image_bytes,
        "status_url": f"/jobs/{job_id}",
    }


@router.get(
    "/{job_id}",
    response_model=JobStatus,
    response_model_exclude_none=True,
    responses={
        404: {"model": ErrorResponse, "description": "malformed, unknown or expired job id"},
        503: {"model": ErrorResponse, "description": "SEG_JOBS_BUCKET is not set"},
    },
)
def job_status(job_id: str, settings: Settings = Depends(get_settings)) -> Any:
    """`waiting_for_upload`, `processing`, `done` (with `result` and, if asked for, `overlay_url` and
    `cutouts`) or `failed` (with `error`)."""
    if not settings.jobs_bucket:
        return jobs_unavailable()
    unknown = JobNotFound("no such job: the id is mistyped, or the job has expired")
    if not JOB_ID.fullmatch(job_id):
        raise unknown
    outputs = job_prefix(settings.output_prefix, job_id)
    record = storage.read_json(results_bucket(settings), outputs + RECORD_NAME, MAX_RESULT_BYTES)
    if record is None:
        raise unknown
    upload = storage.head_if_present(settings.jobs_bucket, record["key"])
    if upload is None:
        if time.time() < record["expires_at"]:
            return {"job_id": job_id, "status": "waiting_for_upload"}
        message = "nothing was uploaded before the upload form expired; create a new job"
        return {"job_id": job_id, "status": "failed", "error": {"code": "upload_expired", "message": message}}
    return _outcome(job_id, record, upload, settings)


def _cutout_links(bucket: str, prefix: str, written: dict[str, Any], settings: Settings) -> list[dict[str, str]]:
    """A GET URL per cut-out the result names (the worker wrote them before the result), in result order."""
    names = written.get("cutouts", {}).get("names", [])
    return [
        {"name": name, "url": storage.presigned_get(bucket, prefix + name, settings.result_url_expiry_s, name)}
        for name in names
        if CUTOUT_NAME.fullmatch(name)
    ]


def _outcome(job_id: str, record: dict[str, Any], upload: storage.StoredObject, settings: Settings) -> dict[str, Any]:
    """Done, failed or still processing: only outputs made from the upload that claimed the job count (the
    first one the worker read: a later upload to the same form is ignored, ``handler/jobclaim.py``)."""
    bucket = results_bucket(settings)
    etag = jobclaim.claimed(bucket, settings, job_id) or upload.etag
    output = storage.output_key(record["key"], settings.input_prefix, settings.output_prefix, "")
    for suffix in (".json", ".error.json"):
        written = storage.read_json(bucket, output + suffix, MAX_RESULT_BYTES)
        if written is None or written.get("source", {}).get("etag") != etag:
            continue
        if suffix == ".error.json":
            return {"job_id": job_id, "status": "failed", "error": written["error"]}
        answer = {"job_id": job_id, "status": "done", "result": written}
        overlay = output + ".png"
        if record["options"].get("overlay") == "true" and storage.head_if_present(bucket, overlay):
            answer["overlay_url"] = storage.presigned_get(bucket, overlay, settings.result_url_expiry_s)
        if record["options"].get("cutouts"):
            answer["cutouts"] = _cutout_links(bucket, output + OBJECTS_SUFFIX, written, settings)
        return answer
    return {"job_id": job_id, "status": "processing"}
