"""Write the sample S3 events in events/ (AWS's own shapes): `python events/make_s3_events.py`.

The events name tests/images/astronaut.jpg uploaded to s3://pointrend-uploads-example/uploads/ (the
docs/s3-uploads.md, "Try the S3 path locally" runs them against moto server). S3 notifications URL-encode the key
(spaces as "+", everything else outside [A-Za-z0-9_.-~/] as %XX); EventBridge events carry it as it is. S3 Batch
Operations tasks (schema 1.0 and 2.0, docs/bulk.md) URL-encode it as notifications do. ``sqs-failure-*.json``
are the worker's failure queue delivering Lambda's record of a failed asynchronous invocation of the job upload
(AWS's documented invocation record, one per case: out of memory, timeout, an error on every retry, too long in
the queue), which the worker turns into the upload's ``.error.json`` (docs/jobs.md).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

EVENTS = Path(__file__).resolve().parent
IMAGE = EVENTS.parent / "tests" / "images" / "astronaut.jpg"

REGION = "us-east-1"
ACCOUNT = "123456789012"
BUCKET = "pointrend-uploads-example"
KEY = "uploads/astronaut.jpg"
ENCODED_KEY = "uploads/Summer 2024/café über+alles 100%.jpg"
# A POST /jobs upload: <input prefix>jobs/<job id>/<safe file name> (an example id, not a real job's).
JOB_KEY = "uploads/jobs/5d41402abc4b2a76b9719d911017c592/astronaut.jpg"
QUEUE = "pointrend-uploads"
FAILURE_QUEUE = "pointrend-FailureQueue-1A2B3C4D5E6F"
WORKER_ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:pointrend-WorkerFunction-9Z8Y7X6W5V4U"
REQUEST_ID = "e4b46cbf-b738-4f0a-8880-a18cdf61200e"
TIME = "2026-11-27T10:15:30.123Z"


def image_facts() -> tuple[int, str]:
    data = IMAGE.read_bytes()
    return len(data), hashlib.md5(data).hexdigest()  # noqa: S324 (S3's ETag of a single-part upload)


def s3_record(bucket: str, key: str, size: int, etag: str, event_name: str = "ObjectCreated:Put") -> dict[str, Any]:
    """One record of an S3 event notification, as S3 sends it to Lambda or SQS."""
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": REGION,
        "eventTime": TIME,
        "eventName": event_name,
        "userIdentity": {"principalId": "AWS:AIDAJDPLRKLG7UEXAMPLE"},
        "requestParameters": {"sourceIPAddress": "198.51.100.7"},
        "responseElements": {
            "x-amz-request-id": "C3D13FE58DE4C810",
            "x-amz-id-2": "FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG4V5Wp6S7S/JRWeUWerMUE5JgHvANOjpD",
        },
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "pointrend-uploads",
            "bucket": {
                "name": bucket,
                "ownerIdentity": {"principalId": "A3NL1KOZZKExample"},
                "arn": f"arn:aws:s3:::{bucket}",
            },
            "object": {
                "key": quote_plus(key, safe="/"),
                "size": size,
                "eTag": etag,
                "sequencer": "0055AED6DCD90281E5",
            },
        },
    }


def s3_event(*records: dict[str, Any]) -> dict[str, Any]:
    return {"Records": list(records)}


def s3_test_event(bucket: str = BUCKET) -> dict[str, Any]:
    return {
        "Service": "Amazon S3",
        "Event": "s3:TestEvent",
        "Time": TIME,
        "Bucket": bucket,
        "RequestId": "5582815E1AEA5ADF",
        "HostId": "8cLeGAmw098X5cv4Zkwcmo8vvZa3eH3eKxsPzbB9wrR+YstdA6Knx4Ip8EXAMPLE",
    }


def sqs_message(message_id: str, body: dict[str, Any] | str, queue: str = QUEUE) -> dict[str, Any]:
    """One SQS record as Lambda's event source mapping delivers it; a dict ``body`` is sent as JSON."""
    text = body if isinstance(body, str) else json.dumps(body)
    return {
        "messageId": message_id,
        "receiptHandle": f"AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a{message_id.replace('-', '')}Example==",
        "body": text,
        "attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": "1795774530123",
            "SenderId": "AIDAJHIPRHEMV73VRJEBU",
            "ApproximateFirstReceiveTimestamp": "1795774530140",
        },
        "messageAttributes": {},
        "md5OfBody": hashlib.md5(text.encode()).hexdigest(),  # noqa: S324 (what SQS reports)
        "eventSource": "aws:sqs",
        "eventSourceARN": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{queue}",
        "awsRegion": REGION,
    }


def sqs_event(*messages: dict[str, Any]) -> dict[str, Any]:
    return {"Records": list(messages)}


def invocation_record(
    condition: str, request: dict[str, Any], attempts: int, response: dict[str, Any] | None
) -> dict[str, Any]:
    """Lambda's record of a failed asynchronous invocation, as its on-failure destination gets it
    (``condition`` RetriesExhausted or EventAgeExceeded). Without ``response`` the function never ran (the event
    aged out while throttled): the record then has no response parts."""
    record: dict[str, Any] = {
        "version": "1.0",
        "timestamp": TIME,
        "requestContext": {
            "requestId": REQUEST_ID,
            "functionArn": f"{WORKER_ARN}:$LATEST",
            "condition": condition,
            "approximateInvokeCount": attempts,
        },
        "requestPayload": request,
    }
    if response is not None:
        record["responseContext"] = {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"}
        record["responsePayload"] = response
    return record


def failure_message(record: dict[str, Any]) -> dict[str, Any]:
    """The failure queue's message of one invocation record, as the worker's event source mapping delivers it."""
    return sqs_event(sqs_message("8c0e3a58-5f1d-4c1e-9a57-3f5d2b7c9e10", record, FAILURE_QUEUE))


def failure_events(upload: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """One failure-queue message per way an upload's invocation can fail for good."""
    killed = f"RequestId: {REQUEST_ID} Error: Runtime exited with error: signal: killed"
    failed = (
        f"1 of 1 objects failed, to be retried: s3://{BUCKET}/{JOB_KEY}: ClientError: An error occurred "
        "(SlowDown) when calling the GetObject operation (reached max retries: 2): Please reduce your request rate."
    )
    cases = {
        "out-of-memory": ("RetriesExhausted", 3, {"errorType": "Runtime.ExitError", "errorMessage": killed}),
        "timeout": (
            "RetriesExhausted",
            3,
            {
                "errorType": "Sandbox.Timedout",
                "errorMessage": f"RequestId: {REQUEST_ID} Error: Task timed out after 300.00 seconds",
            },
        ),
        "retries-exhausted": ("RetriesExhausted", 3, {"errorType": "ObjectsFailed", "errorMessage": failed}),
        "event-age": ("EventAgeExceeded", 0, None),
    }
    return {
        f"sqs-failure-{name}.json": failure_message(invocation_record(condition, upload, attempts, response))
        for name, (condition, attempts, response) in cases.items()
    }


def eventbridge_event(bucket: str, key: str, size: int, etag: str) -> dict[str, Any]:
    """S3 "Object Created" as EventBridge delivers it (the key is not URL-encoded here)."""
    return {
        "version": "0",
        "id": "17793124-05d4-b198-2fde-7ededc63b103",
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": ACCOUNT,
        "time": TIME[:19] + "Z",
        "region": REGION,
        "resources": [f"arn:aws:s3:::{bucket}"],
        "detail": {
            "version": "0",
            "bucket": {"name": bucket},
            "object": {"key": key, "size": size, "etag": etag, "sequencer": "00617F08299329D189"},
            "request-id": "N4N7GDK58NMKJ12R",
            "requester": ACCOUNT,
            "source-ip-address": "198.51.100.7",
            "reason": "PutObject",
        },
    }


def batch_event(schema: str, bucket: str, key: str, user_arguments: dict[str, str] | None = None) -> dict[str, Any]:
    """An S3 Batch Operations ``LambdaInvoke`` payload, one task: 1.0 names the bucket by ARN, 2.0 by name
    and carries the job's ``userArguments``."""
    task: dict[str, Any] = {"taskId": "dGFza2lkZ29lc2hlcmUK", "s3Key": quote_plus(key, safe="/"), "s3VersionId": None}
    job: dict[str, Any] = {"id": "f3cc4f60-61f6-4a2b-8a21-d07600c373ce"}
    if schema == "1.0":
        task["s3BucketArn"] = f"arn:aws:s3:::{bucket}"
    else:
        task["s3Bucket"] = bucket
        job["userArguments"] = user_arguments or {}
    return {
        "invocationSchemaVersion": schema,
        "invocationId": "YXNkbGZqYWRmaiBhc2RmdW9hZHNmZGpmaGFzbGtkaGZza2RmaAo",
        "job": job,
        "tasks": [task],
    }


def sample_events() -> dict[str, dict[str, Any]]:
    size, etag = image_facts()
    not_a_notification = {"hello": "a message sent to the queue by hand, not by S3"}
    return {
        "s3-put.json": s3_event(s3_record(BUCKET, KEY, size, etag)),
        "s3-put-encoded-key.json": s3_event(s3_record(BUCKET, ENCODED_KEY, size, etag)),
        "s3-post-job.json": s3_event(s3_record(BUCKET, JOB_KEY, size, etag, "ObjectCreated:Post")),
        "sqs-s3.json": sqs_event(
            sqs_message("059f36b4-87a3-44ab-83d2-661975830a7d", s3_event(s3_record(BUCKET, KEY, size, etag))),
            sqs_message("2e1424d4-f796-459a-8184-9c92662be6da", not_a_notification),
        ),
        "eventbridge-s3.json": eventbridge_event(BUCKET, KEY, size, etag),
        "s3-test-event.json": s3_test_event(),
        "s3-batch-v1.json": batch_event("1.0", BUCKET, KEY),
        "s3-batch-v2.json": batch_event("2.0", BUCKET, ENCODED_KEY, {"confidence": "0.3", "masks": "polygons"}),
        **failure_events(s3_event(s3_record(BUCKET, JOB_KEY, size, etag, "ObjectCreated:Post"))),
    }


def render(event: dict[str, Any]) -> str:
    return json.dumps(event, indent=2, ensure_ascii=False) + "\n"


def main() -> None:
    for name, event in sample_events().items():
        (EVENTS / name).write_text(render(event), encoding="utf-8")
        print(EVENTS / name)


if __name__ == "__main__":
    main()
