"""S3 throttling, S3 5xx and no connection at all, on the two routes that read S3 for the caller (`s3_uri`,
`/jobs`): a 503 `storage_unavailable` with `Retry-After`, never a 500; other S3 errors stay 500s. S3 is a
real local HTTP server answering S3's XML errors (tests/s3_faults.py): moto cannot be told to fail."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from conftest import IMAGES
from s3_faults import TransientS3, s3_at

TRANSIENT = [(503, "SlowDown"), (500, "InternalError"), (503, "ServiceUnavailable"), (429, "TooManyRequests")]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def serving(client: Any, configure: Any, moto_endpoint: str) -> Any:
    """The app reading s3_uri from, and signing jobs for, the bucket "photos"."""
    configure(allow_s3_uri=True, allowed_buckets=["photos"], jobs_bucket="photos")
    return client


def assert_retryable(response: Any) -> None:
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "storage_unavailable"
    assert int(response.headers["retry-after"]) >= 1
    assert "Traceback" not in response.text and "127.0.0.1" not in response.text


@pytest.mark.parametrize(("status", "code"), TRANSIENT)
def test_transient_s3_errors_on_s3_uri_and_jobs_are_503_with_retry_after(serving, status, code) -> None:
    with TransientS3(status, code) as s3, s3_at(s3.url):
        assert_retryable(serving.post("/segment", json={"s3_uri": "s3://photos/a.jpg"}))
        assert_retryable(serving.post("/jobs", json={"filename": "a.jpg"}))  # the job record's write
        assert_retryable(serving.get("/jobs/" + "a" * 32))  # the job record's read
    assert s3.requests >= 3


def test_no_connection_to_s3_is_a_503_too(serving) -> None:
    with s3_at(f"http://127.0.0.1:{free_port()}"):  # nothing listens there
        assert_retryable(serving.post("/segment", json={"s3_uri": "s3://photos/a.jpg"}))
        assert_retryable(serving.get("/jobs/" + "b" * 32))


def test_an_s3_error_that_a_retry_cannot_fix_stays_a_500(serving) -> None:
    with TransientS3(400, "InvalidArgument") as s3, s3_at(s3.url):
        response = serving.post("/segment", json={"s3_uri": "s3://photos/a.jpg"})
    assert response.status_code == 500 and response.json()["error"]["code"] == "internal_error"
    assert "retry-after" not in response.headers


def test_after_the_outage_the_same_request_succeeds(serving, s3: Any) -> None:
    s3.create_bucket(Bucket="photos")
    s3.put_object(Bucket="photos", Key="a.jpg", Body=(IMAGES / "rocket.jpg").read_bytes())
    with TransientS3() as down, s3_at(down.url):
        assert_retryable(serving.post("/segment?masks=none", json={"s3_uri": "s3://photos/a.jpg"}))
    assert serving.post("/segment?masks=none", json={"s3_uri": "s3://photos/a.jpg"}).status_code == 200
