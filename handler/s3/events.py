"""S3 uploads arriving as Lambda events: which objects an event names, and what became of each.

One small class per event shape, each with ``infer(event)`` ("is this mine?"), as Mangum's handlers:
- ``S3Notification``: S3 -> Lambda, ``{"Records": [{"eventSource": "aws:s3", ...}]}``; keys URL-encoded.
- ``S3EventBridge``: EventBridge events from S3 (``"source": "aws.s3"``); keys NOT URL-encoded.
- ``S3TestEvent``: the ``s3:TestEvent`` S3 sends when a notification is configured; acknowledged.
- ``SQSMessages``: S3 -> SQS -> Lambda, each message body one of the above, or the record of a failed
  invocation that the worker's failure queue delivers (``failures``: it becomes the upload's error record);
  answered with a partial batch response, so only the failed messages come back.
- S3 Batch Operations tasks: one existing object per invocation, answered per task (``batch_operations``).
- The video state machine's tasks (``{"video_task": ...}``): probe, chunk, assemble, fail (``video_tasks``).

A permanently bad object gets an error record and counts as done (``s3_objects``). A transient failure
fails the invocation once every other object is done: Lambda retries the event and then sends it to the
on-failure destination (the failure queue), whose record comes back here; under SQS only the failed
message is reported in ``batchItemFailures``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes import S3Event, S3EventBridgeNotificationEvent
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

import handler.s3.batch_operations as batch_operations
import handler.s3.failures as failures
import handler.s3.objects as s3_objects
import handler.s3.video_tasks as video_tasks
from handler.core import metrics
from handler.core.deadline import LambdaContext
from handler.core.logs import logger, redact_job_ids
from handler.core.settings import get_settings
from handler.engine import get_segmenter
from handler.s3.objects import ObjectRef, Processed


class UnknownEvent(ValueError):
    """An event, or SQS message body, that is not an S3 notification."""


class MalformedRecord(UnknownEvent):
    """An S3 notification with a field missing or of the wrong type: no object can be named, so none is
    processed; raised (Lambda retries, then the on-failure destination keeps the event for inspection)."""


@contextmanager
def _well_formed(kind: str) -> Iterator[None]:
    try:
        yield
    except (KeyError, TypeError, AttributeError, IndexError, ValueError) as exc:
        raise MalformedRecord(f"malformed {kind}: {type(exc).__name__}: {exc}") from exc


class ObjectsFailed(RuntimeError):
    """Some objects failed transiently; raised so that Lambda (or SQS) delivers the event again."""


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise TypeError(f"expected a non-empty string, got {value!r:.80}")
    return value


def _record_source(event: dict[str, Any]) -> str | None:
    records = event.get("Records")
    if isinstance(records, list) and records and isinstance(records[0], dict):
        return records[0].get("eventSource")
    return None


class S3Notification:
    @staticmethod
    def infer(event: dict[str, Any]) -> bool:
        return _record_source(event) == "aws:s3"

    @staticmethod
    def objects(event: dict[str, Any]) -> list[ObjectRef]:
        with _well_formed("S3 notification record"):
            return [
                ObjectRef(
                    bucket=_text(record.s3.bucket.name),
                    key=unquote_plus(_text(record.s3.get_object.key)),  # powertools decodes only the first record's
                    event_name=_text(record.event_name),
                    etag=record.s3.get_object.etag or None,
                    version_id=record.s3.get_object.version_id,
                )
                for record in S3Event(event).records
            ]


class S3EventBridge:
    @staticmethod
    def infer(event: dict[str, Any]) -> bool:
        detail = event.get("detail")
        return event.get("source") == "aws.s3" and isinstance(detail, dict) and "object" in detail

    @staticmethod
    def objects(event: dict[str, Any]) -> list[ObjectRef]:
        with _well_formed("EventBridge S3 event"):
            parsed = S3EventBridgeNotificationEvent(event)
            stored = parsed.detail.object
            # EventBridge sends the key as it is; powertools' ``stored.key`` would unquote_plus it ("a+b" -> "a b").
            return [
                ObjectRef(
                    bucket=_text(parsed.detail.bucket.name),
                    key=_text(stored["key"]),
                    event_name=_text(parsed.detail_type),
                    etag=stored.etag or None,
                    version_id=stored.get("version-id"),
                )
            ]


class S3TestEvent:
    @staticmethod
    def infer(event: dict[str, Any]) -> bool:
        return event.get("Event") == "s3:TestEvent"

    @staticmethod
    def objects(event: dict[str, Any]) -> list[ObjectRef]:
        logger.info("s3 test event acknowledged", extra={"bucket": event.get("Bucket")})
        return []


NOTIFICATIONS = (S3Notification, S3EventBridge, S3TestEvent)


class SQSMessages:
    # Failures are always listed, never raised, even when every message failed: one contract for SQS.
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)

    @staticmethod
    def infer(event: dict[str, Any]) -> bool:
        return _record_source(event) == "aws:sqs"

    @classmethod
    def handle(cls, event: dict[str, Any], context: Any) -> dict[str, Any]:
        return dict(process_partial_response(event, _message, cls.processor, context))


def claims(event: dict[str, Any]) -> bool:
    """Whether ``handle`` takes this event (else it is an HTTP event, for Mangum)."""
    sources = (SQSMessages, batch_operations, video_tasks, *NOTIFICATIONS)
    return isinstance(event, dict) and any(source.infer(event) for source in sources)


def handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """SQS: ``{"batchItemFailures": [...]}``; S3 Batch Operations: its response (``batch_operations``);
    otherwise ``{"objects": [...]}``, one entry per object."""
    if SQSMessages.infer(event):
        return SQSMessages.handle(event, context)
    if batch_operations.infer(event):
        with _well_formed("S3 Batch Operations event"):
            return batch_operations.handle(event, context)
    if video_tasks.infer(event):  # the video state machine's tasks: errors raised fail the task, to be retried
        return video_tasks.handle(event, context)
    return {"objects": [asdict(processed) for processed in process_objects(objects_in(event), context)]}


def objects_in(message: Any) -> list[ObjectRef]:
    for source in NOTIFICATIONS:
        if isinstance(message, dict) and source.infer(message):
            return source.objects(message)
    raise UnknownEvent(f"not an S3 notification: {str(message)[:200]}")


def _message(record: SQSRecord, lambda_context: LambdaContext | None = None) -> None:
    logger.append_keys(message_id=record.message_id)
    try:
        body = record.json_body
        if failures.infer(body):
            failed = failures.describe(body, get_settings())
            failures.record(objects_in(body.get("requestPayload")), failed, get_settings())
            return
        process_objects(objects_in(body), lambda_context)
    except Exception:
        logger.exception("sqs message failed: reported in batchItemFailures", extra={"outcome": "failed"})
        raise
    finally:
        logger.remove_keys(["message_id"])


def process_objects(refs: list[ObjectRef], context: LambdaContext | None) -> list[Processed]:
    """Every object is attempted and logged; transient failures are raised together at the end."""
    settings = get_settings()
    done: list[Processed] = []
    failed: list[tuple[ObjectRef, Exception]] = []
    for ref in refs:
        try:
            processed = s3_objects.process(ref, get_segmenter(), settings, context)
        except Exception as exc:  # transient or unexpected: the event must come back, so raise below
            logger.exception("s3 object failed", extra={"bucket": ref.bucket, "key": ref.key, "outcome": "failed"})
            metrics.record_error(s3_objects.entry_point(ref, settings), metrics.error_code(exc))
            failed.append((ref, exc))
            continue
        logger.info(f"s3 object {processed.outcome}", extra=asdict(processed))
        done.append(processed)
    if failed:
        summary = redact_job_ids(
            "; ".join(f"s3://{ref.bucket}/{ref.key}: {type(exc).__name__}: {exc}" for ref, exc in failed)
        )
        raise ObjectsFailed(f"{len(failed)} of {len(refs)} objects failed, to be retried: {summary}") from failed[0][1]
    return done
