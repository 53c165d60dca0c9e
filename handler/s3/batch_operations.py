"""S3 Batch Operations ``LambdaInvoke`` tasks: one existing object per invocation, answered for the job's
completion report.

Invocation schema 1.0 names the bucket by ARN (``tasks[].s3BucketArn``), 2.0 by name (``tasks[].s3Bucket``)
and carries ``job.userArguments``; Powertools' ``S3BatchOperationEvent`` reads both, and its ``s3_key``
URL-decodes the key (``unquote_plus``, as AWS's own examples do for both schemas).

Each task is answered with the ``resultString`` the completion report shows:
- ``Succeeded``: ``s3://<bucket>/<result key>.json``, or ``skipped: <reason>`` (not an image key, our own output);
- ``PermanentFailure``: ``<code>: <message>`` for an object that can never be segmented (its ``.error.json``
  is written, as for uploads) or for a bad ``userArguments`` value (then every task fails, naming it);
- ``TemporaryFailure``: ``<code>: <message>`` for throttling, S3 5xx, timeouts, too little time left: Batch
  Operations retries the task.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools.utilities.data_classes import (
    S3BatchOperationEvent,
    S3BatchOperationResponse,
    S3BatchOperationResponseRecord,
)
from aws_lambda_powertools.utilities.data_classes.s3_batch_operation_event import S3BatchOperationTask
from botocore.exceptions import BotoCoreError, ClientError

import handler.s3.objects as s3_objects
from handler.core import metrics
from handler.core.deadline import LambdaContext
from handler.core.errors import InvalidRequest, RetryableError
from handler.core.logs import logger
from handler.core.settings import get_settings
from handler.engine import RequestOptions, get_segmenter
from handler.s3.objects import BATCH_TASK, ObjectRef

# Result strings go into the completion report CSV, one row per object: kept to a readable length.
MAX_RESULT_STRING = 1000


def infer(event: Any) -> bool:
    return isinstance(event, dict) and "invocationSchemaVersion" in event and "tasks" in event


def handle(event: dict[str, Any], context: LambdaContext | None) -> dict[str, Any]:
    """``{invocationSchemaVersion, treatMissingKeysAs, invocationId, results: [{taskId, resultCode, resultString}]}``"""
    parsed = S3BatchOperationEvent(event)
    # A task left out of the results must never read as done.
    response = S3BatchOperationResponse(parsed.invocation_schema_version, parsed.invocation_id, "PermanentFailure")
    logger.append_keys(batch_job_id=parsed.job.get_id)
    options: RequestOptions | InvalidRequest
    try:
        options = job_options(parsed.job.user_arguments)
    except InvalidRequest as exc:
        options = exc
    try:
        for task in parsed.tasks:
            response.add_result(task_result(task, options, context))
    finally:
        logger.remove_keys(["batch_job_id"])
    return response.asdict()  # exactly one task per invocation, as AWS sends them (else a ValueError)


def job_options(user_arguments: Mapping[str, Any]) -> RequestOptions:
    """The job's ``userArguments`` (schema 2.0), validated as ``/segment``'s query parameters are; class
    names are checked here, so that a typo fails the job's tasks rather than record an error per object."""
    options = RequestOptions.parse(user_arguments, source="userArguments")
    try:
        get_segmenter().validate_classes(options.class_list)
    except InvalidRequest as exc:
        raise InvalidRequest(f"invalid userArguments: userArguments.classes: {exc.message}") from None
    return options


def task_result(
    task: S3BatchOperationTask, options: RequestOptions | InvalidRequest, context: LambdaContext | None
) -> S3BatchOperationResponseRecord:
    if isinstance(options, InvalidRequest):
        return _answer(task, "PermanentFailure", f"{options.code}: {options.message}")
    ref = ObjectRef(bucket=task.s3_bucket, key=task.s3_key, event_name=BATCH_TASK, version_id=task.s3_version_id)
    where = {"bucket": ref.bucket, "key": ref.key, "task_id": task.task_id}
    try:
        processed = s3_objects.process(ref, get_segmenter(), get_settings(), context, options)
    except (RetryableError, ClientError, BotoCoreError) as exc:  # throttling, 5xx, timeouts, out of time: retried
        logger.warning("batch task failed, to be retried", extra={**where, "outcome": "failed", "error": str(exc)})
        metrics.record_error("batch", metrics.error_code(exc))
        return _answer(task, "TemporaryFailure", _describe(exc))
    except Exception as exc:  # a bug: logged with its traceback, retried, and in the report if it persists
        logger.exception("batch task failed unexpectedly", extra={**where, "outcome": "failed"})
        metrics.record_error("batch", metrics.error_code(exc))
        return _answer(task, "TemporaryFailure", f"internal_error: {type(exc).__name__}")
    logger.info(f"batch task {processed.outcome}", extra={**where, "outcome": processed.outcome})
    if processed.outcome == "skipped":
        return _answer(task, "Succeeded", f"skipped: {processed.reason}")
    if processed.outcome == "error_record":
        return _answer(task, "PermanentFailure", processed.reason or "")
    bucket = s3_objects.output_bucket(ref, get_settings())
    return _answer(task, "Succeeded", f"s3://{bucket}/{processed.outputs[0]}")


def _describe(exc: Exception) -> str:
    if isinstance(exc, RetryableError):
        return f"{exc.code}: {exc.message}"
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', 'ClientError')}: {error.get('Message', exc)}"
    return f"{type(exc).__name__}: {exc}"


def _answer(task: S3BatchOperationTask, code: Any, text: str) -> S3BatchOperationResponseRecord:
    return task.build_task_batch_response(code, text[:MAX_RESULT_STRING])
