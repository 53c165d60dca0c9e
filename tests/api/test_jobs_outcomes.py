"""How every job ends, against moto server over real HTTP: a failed invocation's record through ``lambda_handler``
(the failure queue's message) reads as ``failed`` with its reason; a job with no outcome past the worker's retry
window reads ``stalled``; a done job answers ``result_url`` and inlines only a small result, so the Lambda response
fits whatever the result; a crossed overlay is never linked (stale results: tests/s3/test_outputs.py)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from conftest import IMAGES, FakeLambdaContext, read_event
from test_jobs import create, deliver, key_of, status, upload

from handler import jobstore
from handler.core.settings import MAX_INLINE_RESULT_BYTES as INLINE_RESULT_BYTES

PHOTO = IMAGES / "astronaut.jpg"
LAMBDA_RESPONSE_LIMIT = 6 * 1024 * 1024


def output(job: dict[str, Any], suffix: str) -> str:
    return f"results/jobs/{job['job_id']}/image{suffix}"


def keys_in(s3: Any, bucket: str, prefix: str) -> set[str]:
    return {item["Key"] for item in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])}


def failure_message(name: str, bucket: str, key: str, etag: str) -> dict[str, Any]:
    """The failure queue's message (events/<name>) about the upload at ``key`` whose etag is ``etag``."""
    event = read_event(name)
    (message,) = event["Records"]
    record = json.loads(message["body"])
    s3_object = record["requestPayload"]["Records"][0]["s3"]
    s3_object["bucket"]["name"] = bucket
    s3_object["object"].update(key=key, eTag=etag)
    message["body"] = json.dumps(record)
    return event


def http_get(lambda_handler: Any, path: str) -> dict[str, Any]:
    """``GET path`` as API Gateway (HTTP API) hands it to the function; returns Lambda's whole response."""
    event = read_event("apigw-http-healthz.json", **{"/healthz": path})
    return lambda_handler(event, FakeLambdaContext())


@pytest.mark.parametrize(
    ("name", "code", "words"),
    [
        ("sqs-failure-out-of-memory.json", "out_of_memory", "more memory than the worker function has"),
        ("sqs-failure-timeout.json", "timed_out", "longer than the worker's timeout"),
    ],
)
def test_a_killed_or_timed_out_worker_ends_the_job_failed_with_the_reason(
    client: Any, jobs_bucket: str, lambda_handler: Any, s3: Any, name: str, code: str, words: str
) -> None:
    job = create(client, confidence=0)
    upload(job, PHOTO.read_bytes())
    assert status(client, job)["status"] == "processing"
    etag = s3.head_object(Bucket=jobs_bucket, Key=key_of(job))["ETag"].strip('"')
    answer = lambda_handler(failure_message(name, jobs_bucket, key_of(job), etag), FakeLambdaContext())
    assert answer == {"batchItemFailures": []}
    failed = status(client, job)
    assert failed["status"] == "failed" and failed["error"]["code"] == code
    assert words in failed["error"]["message"]


def test_a_job_with_no_outcome_past_the_retry_window_reads_stalled(
    client: Any, jobs_bucket: str, s3: Any, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = create(client)
    upload(job, PHOTO.read_bytes())
    uploaded = s3.head_object(Bucket=jobs_bucket, Key=key_of(job))["LastModified"].timestamp()
    window = jobstore.retry_window_s(settings)
    # The template's defaults: an hour in Lambda's queue, 3 attempts of 300 s, the waits between them, the
    # failure record's way back.
    assert window == 3600 + 3 * 300 + 60 + 120 + 300
    monkeypatch.setattr("handler.api.jobs.time.time", lambda: uploaded + window - 1)
    assert status(client, job)["status"] == "processing"
    monkeypatch.setattr("handler.api.jobs.time.time", lambda: uploaded + window + 1)
    stalled = status(client, job)
    assert stalled["status"] == "failed" and stalled["error"]["code"] == "stalled"
    assert "upload the image again" in stalled["error"]["message"]


def test_a_done_job_links_its_result_and_inlines_it_when_small(
    client: Any, jobs_bucket: str, lambda_handler: Any
) -> None:
    job = create(client, confidence=0, overlay=True)
    upload(job, PHOTO.read_bytes())
    deliver(lambda_handler, jobs_bucket, key_of(job))
    done = status(client, job)
    assert done["status"] == "done" and done["result"]["class_names"]
    linked = httpx.get(done["result_url"], timeout=30)
    assert linked.status_code == 200 and linked.json() == done["result"]
    assert done["result_bytes"] == len(linked.content) <= INLINE_RESULT_BYTES


def big_result(etag: str, size: int, filler: str) -> bytes:
    """A stored result of exactly ``size`` bytes, its strings made of ``filler`` (a quote or a backslash is
    the worst case: each doubles when the answer goes into Lambda's JSON envelope)."""
    body = {"class_names": ["person"], "polygons": [[""]], "source": {"etag": etag}}
    bare = len(json.dumps(body).encode())
    escaped = len(json.dumps(filler)) - 2
    body["polygons"][0][0] = filler * ((size - bare) // escaped)
    data = json.dumps(body).encode()
    return data + b" " * (size - len(data))


@pytest.mark.parametrize(("size", "inline"), [(INLINE_RESULT_BYTES, True), (INLINE_RESULT_BYTES + 1, False)])
def test_the_lambda_response_fits_whatever_the_result(
    client: Any, jobs_bucket: str, lambda_handler: Any, s3: Any, size: int, inline: bool
) -> None:
    job = create(client, confidence=0)
    upload(job, PHOTO.read_bytes())
    deliver(lambda_handler, jobs_bucket, key_of(job))
    etag = s3.head_object(Bucket=jobs_bucket, Key=key_of(job))["ETag"].strip('"')
    stored = big_result(etag, size, "\\")
    assert len(stored) == size
    s3.put_object(Bucket=jobs_bucket, Key=output(job, ".json"), Body=stored, Metadata={"source-etag": etag})
    response = http_get(lambda_handler, job["status_url"])
    assert response["statusCode"] == 200
    assert len(json.dumps(response).encode()) < LAMBDA_RESPONSE_LIMIT / 2, "well under Lambda's 6 MB"
    body = json.loads(response["body"])
    assert body["status"] == "done" and ("result" in body) is inline
    assert body["result_bytes"] == size
    assert httpx.get(body["result_url"], timeout=30).content == stored


def test_an_overlay_of_another_upload_is_never_linked(
    client: Any, jobs_bucket: str, lambda_handler: Any, s3: Any
) -> None:
    """The worst interleaving of two workers: an overlay made from another upload beside this one's result."""
    job = create(client, confidence=0, overlay=True)
    upload(job, PHOTO.read_bytes())
    deliver(lambda_handler, jobs_bucket, key_of(job))
    s3.put_object(Bucket=jobs_bucket, Key=output(job, ".png"), Body=b"png", Metadata={"source-etag": "0" * 32})
    done = status(client, job)
    assert done["status"] == "done" and "overlay_url" not in done
