"""The failure queue's records back through ``lambda_handler`` against moto server: each failed invocation of an
upload (events/sqs-failure-*.json, AWS's invocation record) becomes the upload's ``.error.json``, in words a user
can act on, unless the upload was replaced since or already has its outcome."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from conftest import IMAGES, FakeLambdaContext, read_event

PHOTO = IMAGES / "astronaut.jpg"
KEY = "uploads/jobs/5d41402abc4b2a76b9719d911017c592/astronaut.jpg"
OUTPUT = "results/jobs/5d41402abc4b2a76b9719d911017c592/astronaut.jpg"

pytestmark = pytest.mark.usefixtures("segmenter")

CASES = {
    # event file: (code, what the message must tell the user)
    "sqs-failure-out-of-memory.json": ("out_of_memory", ["more memory", "smaller image", "WorkerMemorySize"]),
    "sqs-failure-timeout.json": ("timed_out", ["longer than the worker's timeout (300 s)", "WorkerTimeout"]),
    "sqs-failure-retries-exhausted.json": ("retries_exhausted", ["every attempt", "SlowDown", "tried 3 times"]),
    "sqs-failure-event-age.json": ("worker_busy", ["within the 60 minutes", "throttled", "again later"]),
}


def failure_event(name: str, bucket: str, etag: str | None = None) -> dict[str, Any]:
    """events/<name> naming ``bucket`` (in the record's request payload too), and the upload's real etag."""
    event = read_event(name, **{"pointrend-uploads-example": bucket})
    if etag is not None:
        (message,) = event["Records"]
        record = json.loads(message["body"])
        record["requestPayload"]["Records"][0]["s3"]["object"]["eTag"] = etag
        message["body"] = json.dumps(record)
    return event


def put(s3: Any, bucket: str, key: str, data: bytes) -> str:
    return s3.put_object(Bucket=bucket, Key=key, Body=data)["ETag"].strip('"')


def read_json(s3: Any, bucket: str, key: str) -> dict[str, Any]:
    return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def keys_in(s3: Any, bucket: str) -> set[str]:
    return {item["Key"] for item in s3.list_objects_v2(Bucket=bucket).get("Contents", [])}


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_failed_invocation_becomes_the_uploads_error_record(
    name: str, s3: Any, bucket: str, lambda_handler: Any
) -> None:
    code, words = CASES[name]
    etag = put(s3, bucket, KEY, PHOTO.read_bytes())
    assert etag == hashlib.md5(PHOTO.read_bytes()).hexdigest()  # noqa: S324 (the sample's eTag: the same upload)
    answer = lambda_handler(failure_event(name, bucket), FakeLambdaContext())
    assert answer == {"batchItemFailures": []}, "handled: the message leaves the queue"
    record = read_json(s3, bucket, f"{OUTPUT}.error.json")
    assert record["error"]["code"] == code
    for word in words:
        assert word in record["error"]["message"], record["error"]["message"]
    assert record["source"] == {"bucket": bucket, "key": KEY, "etag": etag, "version_id": None}
    sent = json.loads(read_event(name)["Records"][0]["body"])["requestContext"]
    assert record["invocation"]["condition"] == sent["condition"]
    assert record["invocation"]["attempts"] == sent["approximateInvokeCount"]
    head = s3.head_object(Bucket=bucket, Key=f"{OUTPUT}.error.json")
    assert head["Metadata"]["source-etag"] == etag, "the etag rule: a HEAD tells which upload it is about"
    assert keys_in(s3, bucket) == {KEY, f"{OUTPUT}.error.json"}


def test_an_upload_replaced_since_gets_no_record_of_the_old_ones_failure(
    s3: Any, bucket: str, lambda_handler: Any
) -> None:
    old = put(s3, bucket, KEY, b"the first upload, the one that failed")
    put(s3, bucket, KEY, PHOTO.read_bytes())  # the second: its own event is on its way
    answer = lambda_handler(failure_event("sqs-failure-out-of-memory.json", bucket, old), FakeLambdaContext())
    assert answer == {"batchItemFailures": []}
    assert keys_in(s3, bucket) == {KEY}


def test_an_upload_with_its_outcome_keeps_it(s3: Any, bucket: str, lambda_handler: Any) -> None:
    """An event naming two objects fails for one of them; the other's result stands."""
    etag = put(s3, bucket, KEY, PHOTO.read_bytes())
    result = json.dumps({"class_names": [], "source": {"etag": etag}}).encode()
    s3.put_object(Bucket=bucket, Key=f"{OUTPUT}.json", Body=result, Metadata={"source-etag": etag})
    answer = lambda_handler(failure_event("sqs-failure-timeout.json", bucket, etag), FakeLambdaContext())
    assert answer == {"batchItemFailures": []}
    assert keys_in(s3, bucket) == {KEY, f"{OUTPUT}.json"}


def test_an_earlier_uploads_outputs_are_removed_beside_the_error_record(
    s3: Any, bucket: str, lambda_handler: Any
) -> None:
    put(s3, bucket, KEY, b"an earlier upload to the same key")
    stale = {"source-etag": "0" * 32}
    s3.put_object(Bucket=bucket, Key=f"{OUTPUT}.json", Body=b"{}", Metadata=stale)
    s3.put_object(Bucket=bucket, Key=f"{OUTPUT}.png", Body=b"png", Metadata=stale)
    etag = put(s3, bucket, KEY, PHOTO.read_bytes())
    lambda_handler(failure_event("sqs-failure-out-of-memory.json", bucket, etag), FakeLambdaContext())
    assert keys_in(s3, bucket) == {KEY, f"{OUTPUT}.error.json"}


def test_a_record_without_its_request_is_reported_back(s3: Any, bucket: str, lambda_handler: Any) -> None:
    """Lambda drops the request payload of a record over the destination's size limit: no object can be named,
    so the message fails (and, after the queue's receive count, goes to its dead-letter queue)."""
    event = failure_event("sqs-failure-out-of-memory.json", bucket)
    record = json.loads(event["Records"][0]["body"])
    del record["requestPayload"]
    event["Records"][0]["body"] = json.dumps(record)
    answer = lambda_handler(event, FakeLambdaContext())
    assert answer == {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]}
    assert keys_in(s3, bucket) == set()


def test_the_upload_that_claimed_its_job_gets_the_record_although_a_later_one_replaced_it(
    s3: Any, bucket: str, lambda_handler: Any, settings: Any
) -> None:
    """One processed upload per job (handler/jobstore.py): a second upload to the form is never segmented, so the
    first one's failure must still end the job."""
    from handler import jobstore

    first = put(s3, bucket, KEY, PHOTO.read_bytes())
    assert jobstore.claim(bucket, settings, "5d41402abc4b2a76b9719d911017c592", first) == first
    put(s3, bucket, KEY, b"a second upload to the same form: ignored")
    answer = lambda_handler(failure_event("sqs-failure-out-of-memory.json", bucket, first), FakeLambdaContext())
    assert answer == {"batchItemFailures": []}
    record = read_json(s3, bucket, f"{OUTPUT}.error.json")
    assert record["error"]["code"] == "out_of_memory" and record["source"]["etag"] == first
