"""A video upload starts one execution of the video state machine (``SEG_VIDEO_STATE_MACHINE_ARN``).

The execution is named from the object's key and etag, so a repeated S3 event (at-least-once delivery,
Lambda's retries) starts nothing new: Step Functions answers ``ExecutionAlreadyExists`` for a name it has
seen with another input, and returns the running execution for the same input; moto's executor answers a
500. So the worker describes the execution first (one there: nothing to start), and a start that loses a race
with a twin event is recognised by either answer. A video over the byte limit, or arriving
where no state machine is configured, gets its error record at once: nothing is started.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import boto3
from botocore.exceptions import ClientError

from handler import jobstore
from handler.core import storage
from handler.core.errors import ServiceError, VideosDisabled, VideoTooLarge
from handler.core.logs import logger
from handler.core.settings import Settings
from handler.video import VIDEO_SUFFIXES

VIDEO_TYPE = re.compile(r"video/[A-Za-z0-9.+-]+")
MAX_NAME_CHARS = 80  # Step Functions' execution name limit


def is_video(stored: storage.StoredObject, content_type: str | None = None) -> bool:
    """A video by its content type (``video/...``) or, failing that, its name's suffix."""
    if content_type and VIDEO_TYPE.fullmatch(content_type.split(";")[0].strip()):
        return True
    return any(stored.key.lower().endswith(suffix) for suffix in VIDEO_SUFFIXES)


def execution_name(stored: storage.StoredObject) -> str:
    """``<key's tail>-<hash of bucket and key>-<etag>``: [A-Za-z0-9_-], at most 80 characters."""
    where = hashlib.sha256(f"{stored.bucket}/{stored.key}".encode()).hexdigest()[:12]
    etag = re.sub(r"[^A-Za-z0-9]", "_", stored.etag)[:40]
    room = MAX_NAME_CHARS - len(where) - len(etag) - 2
    tail = re.sub(r"[^A-Za-z0-9_-]", "_", stored.key.rsplit("/", 1)[-1])[-room:]
    return f"{tail}-{where}-{etag}"


def video_of(stored: storage.StoredObject) -> dict[str, Any]:
    """The execution's input: which upload, exactly (the tasks check the etag before each step)."""
    return {"video": jobstore.source_of(stored)}


def sfn_client() -> Any:
    return boto3.client("stepfunctions")


def start(stored: storage.StoredObject, settings: Settings) -> tuple[str, str]:
    """Start the upload's execution unless it was started already: ``(outcome, detail)`` where outcome is
    ``started``, ``already_started`` or ``error_record`` (detail: the execution's ARN or the error record's key)."""
    outputs = jobstore.OutputKeys.of(stored.bucket, stored.key, settings)
    try:
        if not settings.video_state_machine_arn:
            raise VideosDisabled("videos are not enabled here: SEG_VIDEO_STATE_MACHINE_ARN is not set")
        if stored.size > settings.video_max_bytes:
            raise VideoTooLarge(
                f"the video is {stored.size} bytes, over SEG_VIDEO_MAX_BYTES ({settings.video_max_bytes} bytes)"
            )
    except ServiceError as exc:
        return "error_record", jobstore.write_error(outputs, jobstore.source_of(stored), exc.code, exc.message)
    arn, name = settings.video_state_machine_arn, execution_name(stored)
    client = sfn_client()
    execution = arn.replace(":stateMachine:", ":execution:", 1) + ":" + name
    if _exists(client, execution):
        logger.info("video execution already started", extra={"execution": execution, "key": stored.key})
        return "already_started", execution
    try:
        started = client.start_execution(stateMachineArn=arn, name=name, input=json.dumps(video_of(stored)))
    except ClientError as exc:  # a twin event won the race: AWS says ExecutionAlreadyExists, moto a 500
        if exc.response.get("Error", {}).get("Code") != "ExecutionAlreadyExists" and not _exists(client, execution):
            raise
        return "already_started", execution
    logger.info("video execution started", extra={"execution": started["executionArn"], "key": stored.key})
    return "started", str(started["executionArn"])


def _exists(client: Any, execution: str) -> bool:
    try:
        client.describe_execution(executionArn=execution)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ExecutionDoesNotExist":
            return False
        raise
    return True
