"""Large images: ``POST /jobs`` hands out an S3 presigned POST, ``GET /jobs/{job_id}`` says how the job is doing.

The client uploads straight to S3 (no 6 MB Lambda payload limit, no 29 s API limit); the S3 trigger
segments the upload like any other, with the job's options signed into its metadata. The keys, the job
record, the etag rule and the write order are ``handler.jobstore``'s (shared with the worker).

A done job answers ``result_url`` (a presigned GET of the result JSON) and inlines ``result`` only when the
stored result is at most ``SEG_INLINE_RESULT_BYTES`` (1 MiB, also its most: ``settings.MAX_INLINE_RESULT_BYTES``
says why); a job whose upload is older than the worker's whole retry
window with no outcome answers ``failed`` (``stalled``).

The job id is the only capability: 128 random bits, never listed, logged as its first 8 digits.
"""

from __future__ import annotations

import json
import mimetypes
import re
import secrets
import time
from typing import Annotated, Any

from fastapi import APIRouter, Body
from fastapi.responses import JSONResponse

import handler.api.video_jobs as video_jobs
from handler import jobstore
from handler.api.deps import SegmenterDep, SettingsDep
from handler.api.errors import error_response
from handler.api.models import ERROR_RESPONSES, ErrorResponse, JobCreated, JobRequest, JobStatus
from handler.core import storage
from handler.core.errors import JobNotFound, JobStalled, JobsUnavailable, UploadExpired
from handler.core.logs import logger
from handler.core.settings import Settings
from handler.engine import OBJECTS_SUFFIX, RequestOptions

CUTOUT_NAME = re.compile(r"[0-9]{2,}-[A-Za-z0-9_-]+\.png")
MAX_NAME_CHARS = 100
# A result too large to inline is still read when its cut-outs' links are asked for; this bounds a hostile one.
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
    return guessed if guessed.startswith(("image/", "video/")) else "image/jpeg"


def jobs_unavailable() -> JSONResponse:
    return error_response(
        JobsUnavailable("jobs are not configured on this server: set SEG_JOBS_BUCKET to the upload bucket")
    )


@router.post(
    "",
    status_code=201,
    response_model=JobCreated,
    responses={**ERROR_RESPONSES, 503: {"model": ErrorResponse, "description": "SEG_JOBS_BUCKET is not set"}},
)
def create_job(
    settings: SettingsDep,
    segmenter: SegmenterDep,
    request: Annotated[JobRequest, Body(default_factory=JobRequest)],
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
    key = jobstore.upload_key(settings, job_id, name)
    pinned = {f"x-amz-meta-{option}": value for option, value in options.metadata().items()}
    # Content-Type is a default the client may change, but only to another image/ type (video/ for a video).
    kind = content_type(request, name)
    video = video_jobs.is_video_type(kind)
    conditions = [["starts-with", "$Content-Type", "image/"], ["content-length-range", 1, settings.max_image_bytes]]
    if video:
        conditions = video_jobs.upload_conditions(settings)
    upload = storage.presigned_post(settings.jobs_bucket, key, pinned, conditions, settings.upload_expiry_s)
    upload["fields"]["Content-Type"] = kind
    now = time.time()
    record = {
        "key": key,
        "options": options.metadata(),
        "created_at": now,
        "expires_at": now + settings.upload_expiry_s,
    }
    if video:
        record["kind"] = video_jobs.KIND
    jobstore.write_record(settings, job_id, record)
    logger.info("job created", extra={"job": job_id[:8], "options": options.metadata()})
    return {
        "job_id": job_id,
        "status": "waiting_for_upload",
        "upload": upload,
        "expires_in": settings.upload_expiry_s,
        "max_bytes": settings.video_max_bytes if video else settings.max_image_bytes,
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
def job_status(job_id: str, settings: SettingsDep) -> Any:
    """`waiting_for_upload`, `processing`, `done` (with `result_url`, `result` when small and, if asked for,
    `overlay_url` and `cutouts`) or `failed` (with `error`)."""
    if not settings.jobs_bucket:
        return jobs_unavailable()
    unknown = JobNotFound("no such job: the id is mistyped, or the job has expired")
    if not jobstore.JOB_ID.fullmatch(job_id):
        raise unknown
    record = jobstore.read_record(settings, job_id)
    if record is None:
        raise unknown
    upload = storage.head_if_present(settings.jobs_bucket, record["key"])
    if upload is None:
        if time.time() < record["expires_at"]:
            return {"job_id": job_id, "status": "waiting_for_upload"}
        message = "nothing was uploaded before the upload form expired; create a new job"
        return {"job_id": job_id, "status": "failed", "error": {"code": UploadExpired.code, "message": message}}
    if record.get("kind") == video_jobs.KIND:
        return video_jobs.outcome(job_id, record, upload, settings)
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
    first one the worker read: a later upload to the same form is ignored, ``handler/jobstore.py``)."""
    outputs = jobstore.OutputKeys.of(settings.jobs_bucket or "", record["key"], settings)
    etag = jobstore.claimed(outputs.bucket, settings, job_id) or upload.etag
    found = jobstore.outcome(outputs, etag)
    if found is None:
        if jobstore.stalled(upload, settings, time.time()):
            window = jobstore.retry_window_s(settings) // 60
            message = (
                f"the upload has had no result for over {window} minutes, longer than the worker's every retry "
                "takes: its failure was lost; upload the image again with a new job"
            )
            return {"job_id": job_id, "status": "failed", "error": {"code": JobStalled.code, "message": message}}
        return {"job_id": job_id, "status": "processing"}
    if found.status == "failed":
        return {"job_id": job_id, "status": "failed", "error": found.error}
    expiry = settings.result_url_expiry_s
    answer: dict[str, Any] = {
        "job_id": job_id,
        "status": "done",
        "result_url": storage.presigned_get(outputs.bucket, outputs.key(jobstore.RESULT), expiry),
        "result_bytes": found.stored.size,
    }
    inline = found.stored.size <= settings.inline_result_bytes
    written = None
    if inline or record["options"].get("cutouts"):
        written = json.loads(storage.read(found.stored, MAX_RESULT_BYTES))
    if inline:
        answer["result"] = written
    if written is not None and record["options"].get("cutouts"):
        answer["cutouts"] = _cutout_links(outputs.bucket, outputs.key(OBJECTS_SUFFIX), written, settings)
    overlay = jobstore.overlay_of(outputs, etag) if record["options"].get("overlay") == "true" else None
    if overlay:
        answer["overlay_url"] = storage.presigned_get(outputs.bucket, overlay, expiry)
    return answer
