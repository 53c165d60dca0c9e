"""Failed invocations back as error records: what Lambda's on-failure destination (the failure queue, an SQS
event source of the worker) says about an upload the worker never finished.

After the last retry (``RetriesExhausted``) or when the event waited too long in Lambda's queue
(``EventAgeExceeded``), Lambda sends an invocation record to the failure queue; it comes back to the worker as
an SQS message whose body is (AWS's documented shape, events/failure-*.json):

    {"version": "1.0", "timestamp": "...",
     "requestContext": {"requestId", "functionArn", "condition": "RetriesExhausted", "approximateInvokeCount": 3},
     "requestPayload": <the S3 notification the worker got>,
     "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
     "responsePayload": {"errorType": "Runtime.ExitError",
                         "errorMessage": "RequestId: ... Error: Runtime exited with error: signal: killed"}}

Each object the request payload names gets an ``.error.json`` (``handler.jobstore``'s rules) whose code says
what happened in words a user can act on, unless the upload has an outcome already, or was replaced or
deleted since (then the record is about an upload nobody can ask for any more). A job's upload is judged by its
job's claim instead (``handler/jobstore.py``): the upload that claimed the job gets the record even when a later
upload to the same form (never processed) replaced the file.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from handler import jobstore
from handler.core import metrics, storage
from handler.core.errors import InvocationFailed
from handler.core.logs import logger
from handler.core.settings import Settings
from handler.s3.objects import ObjectRef, Processed, entry_point, outputs_of, skip_reason

CONDITIONS = ("RetriesExhausted", "EventAgeExceeded")
MAX_DETAIL_CHARS = 300  # of the function's own error message, quoted in the user's message


@dataclass(frozen=True)
class Failure:
    """What the invocation record says happened, as an error code and a message for the user."""

    code: str
    message: str
    invocation: dict[str, Any]  # the record's facts, kept in the error record for the operator


def infer(message: Any) -> bool:
    """An invocation record of a failed asynchronous invocation (not an API Gateway event, whose
    ``requestContext`` has no ``condition``)."""
    context = message.get("requestContext") if isinstance(message, dict) else None
    return isinstance(context, dict) and context.get("condition") in CONDITIONS


def describe(record: dict[str, Any], settings: Settings) -> Failure:
    context = record["requestContext"]
    response = record.get("responsePayload")
    response = response if isinstance(response, dict) else {}
    error_type = str(response.get("errorType") or "")
    detail = str(response.get("errorMessage") or "")[:MAX_DETAIL_CHARS]
    attempts = context.get("approximateInvokeCount")
    invocation = {
        "condition": context["condition"],
        "attempts": attempts,
        "error_type": error_type or None,
        "error_message": detail or None,
        "request_id": context.get("requestId"),
        "timestamp": record.get("timestamp"),
    }
    tried = f"; it was tried {attempts} times" if isinstance(attempts, int) and attempts > 1 else ""
    if context["condition"] == "EventAgeExceeded":
        minutes = settings.worker_max_event_age_s // 60
        message = (
            f"the worker could not start on the image within the {minutes} minutes an upload may wait (it was "
            f"busy: throttled, or its concurrency was used up){tried}: upload the image again later"
        )
        return Failure(InvocationFailed.WORKER_BUSY, message, invocation)
    if error_type == "Runtime.OutOfMemory" or (error_type == "Runtime.ExitError" and "signal: killed" in detail):
        message = (
            "the image needed more memory than the worker function has: try a smaller image "
            f"(fewer pixels) or raise WorkerMemorySize{tried}"
        )
        return Failure(InvocationFailed.OUT_OF_MEMORY, message, invocation)
    if error_type == "Sandbox.Timedout" or "Task timed out" in detail:
        message = (
            f"segmenting the image took longer than the worker's timeout ({settings.worker_timeout_s} s): "
            f"try a smaller image or raise WorkerTimeout{tried}"
        )
        return Failure(InvocationFailed.TIMED_OUT, message, invocation)
    if error_type.startswith("Runtime."):
        message = f"the worker process stopped while segmenting the image ({error_type}: {detail}){tried}"
        return Failure(InvocationFailed.WORKER_CRASHED, message, invocation)
    what = f"{error_type}: {detail}" if error_type else detail or "no error message"
    message = (
        f"the worker failed on every attempt ({what}){tried}: upload the image again later, and tell the "
        "operator if it keeps failing"
    )
    return Failure(InvocationFailed.code, message, invocation)


def record(refs: list[ObjectRef], failure: Failure, settings: Settings) -> list[Processed]:
    """An error record for each object the failed invocation named that has no outcome yet."""
    done = []
    for ref in refs:
        processed = _record_one(ref, failure, settings)
        logger.info(f"failure record: {processed.outcome}", extra={**vars(processed), "code": failure.code})
        done.append(processed)
    return done


def _record_one(ref: ObjectRef, failure: Failure, settings: Settings) -> Processed:
    started = time.perf_counter()
    skipped = skip_reason(ref, settings)
    if skipped:
        return Processed(ref.bucket, ref.key, "skipped", reason=skipped)
    outputs = outputs_of(ref, settings)
    job_id = jobstore.job_of(ref.key, settings)
    holder = jobstore.claimed(outputs.bucket, settings, job_id) if job_id else None
    if holder is not None and ref.etag:  # a job's upload: its claim, not the latest object, says whose outcome counts
        if holder != ref.etag:
            return Processed(ref.bucket, ref.key, "skipped", reason="not the upload that claimed its job")
        source: dict[str, Any] = {"bucket": ref.bucket, "key": ref.key, "etag": ref.etag, "version_id": ref.version_id}
    else:
        now = storage.head_if_present(ref.bucket, ref.key)
        if now is None:
            return Processed(ref.bucket, ref.key, "skipped", reason="stale: the object is gone")
        replaced = (ref.etag and now.etag != ref.etag) or (ref.version_id and now.version_id != ref.version_id)
        if replaced:
            reason = "stale: the object was replaced since; its newer upload has its own event"
            return Processed(ref.bucket, ref.key, "skipped", reason=reason)
        source = jobstore.source_of(now)
    existing = jobstore.outcome(outputs, source["etag"])
    if existing is not None:
        return Processed(ref.bucket, ref.key, "skipped", reason=f"it has its outcome already ({existing.status})")
    metrics.record_error(entry_point(ref, settings), failure.code)
    key = jobstore.write_error(outputs, source, failure.code, failure.message, invocation=failure.invocation)
    elapsed = round((time.perf_counter() - started) * 1000, 1)
    reason = f"{failure.code}: {failure.message}"
    return Processed(ref.bucket, ref.key, "error_record", reason=reason, outputs=[key], timings_ms={"total": elapsed})
