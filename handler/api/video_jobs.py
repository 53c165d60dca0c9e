"""Video jobs: ``POST /jobs`` with a video content type, and what ``GET /jobs/{job_id}`` says of one.

The upload (a presigned POST, capped at ``SEG_VIDEO_MAX_BYTES``) starts one execution of the video state
machine through the S3 trigger (``handler/s3/video.py``). While it runs the job reads ``processing`` with
``progress`` (frames done of total, from the chunks written so far); done, it carries ``result_url`` (the
JSON Lines) and ``video_url`` (the overlay, WebM); failed, its ``error`` (refused input: the probe's reason,
``corrupt_video``, ``video_too_large``...; a failed run: the failed chunk's). Names and the etag rule:
``handler.jobstore``.
"""

from __future__ import annotations

import time
from typing import Any

from handler import jobstore
from handler.core import storage
from handler.core.errors import JobStalled
from handler.core.settings import Settings

KIND = "video"


def is_video_type(content_type: str) -> bool:
    return content_type.startswith("video/")


def upload_conditions(settings: Settings) -> list[Any]:
    """The presigned POST's terms: a video type, at most ``SEG_VIDEO_MAX_BYTES``."""
    return [["starts-with", "$Content-Type", "video/"], ["content-length-range", 1, settings.video_max_bytes]]


def outcome(job_id: str, record: dict[str, Any], upload: storage.StoredObject, settings: Settings) -> dict[str, Any]:
    outputs = jobstore.OutputKeys.of(settings.jobs_bucket or "", record["key"], settings)
    etag = jobstore.claimed(outputs.bucket, settings, job_id) or upload.etag
    found = jobstore.video_outcome(outputs, etag)
    if found is None:
        progress = jobstore.video_progress(outputs, etag)
        if progress is None and jobstore.stalled(upload, settings, time.time()):
            message = "the video's run never started (its upload event was lost): upload it again with a new job"
            return {"job_id": job_id, "status": "failed", "error": {"code": JobStalled.code, "message": message}}
        answer: dict[str, Any] = {"job_id": job_id, "status": "processing"}
        if progress is not None:
            answer["progress"] = progress
        return answer
    if found.status == "failed":
        return {"job_id": job_id, "status": "failed", "error": found.error}
    expiry = settings.result_url_expiry_s
    answer = {
        "job_id": job_id,
        "status": "done",
        "result_url": storage.presigned_get(outputs.bucket, outputs.key(jobstore.VIDEO_RESULT), expiry),
        "result_bytes": found.stored.size,
    }
    overlay = jobstore.video_overlay_of(outputs, etag)
    if overlay:
        answer["video_url"] = storage.presigned_get(outputs.bucket, overlay, expiry)
    return answer
