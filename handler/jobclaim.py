"""One processed upload per job: the first upload of a job that the worker reads claims it; later ones are
skipped unread.

A job's presigned POST can be used again until it expires, and S3 cannot refuse a second POST to the same
key: its conditional writes (``If-None-Match``) exist for PutObject and CompleteMultipartUpload, not for
browser-form POSTs. So the worker claims the job before reading the upload, with a conditional PUT
(``If-None-Match: *``) of ``<SEG_OUTPUT_PREFIX>jobs/<job_id>/job.claim`` holding the upload's etag. Exactly one
etag wins; a retry of the same upload finds its own etag there and goes on; any other upload is skipped
without being read or segmented (a few S3 requests, no model time). ``GET /jobs/{job_id}`` reads the claim
to know whose outputs count. Both sides use this module; the claim's name, like ``job.record``'s, never
ends in ``.json``/``.png``.
"""

from __future__ import annotations

import json
import re
import time

from handler import storage
from handler.settings import Settings

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
