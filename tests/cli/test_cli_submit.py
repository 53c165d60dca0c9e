"""``python -m handler submit`` against the app served for real (uvicorn on a free port) and moto server; the
S3 trigger is ``lambda_handler`` given each upload's notification while the client waits between polls."""

from __future__ import annotations

import email.utils
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import httpx
import pytest
from conftest import IMAGES, FakeLambdaContext, read_event, serve_app
from flaky_http import Failure, Rule, flaky
from PIL import Image

from handler.api import app
from handler.cli import main
from handler.cli.backoff import Backoff, retry_after
from handler.cli.submit import submit_files
from handler.core import storage

PHOTO = IMAGES / "astronaut.jpg"
EXAMPLE_KEY = "uploads/jobs/5d41402abc4b2a76b9719d911017c592/astronaut.jpg"


@pytest.fixture
def api(bucket: str, configure: Any, segmenter: Any) -> Iterator[str]:
    """The FastAPI app under uvicorn on a free loopback port, jobs in ``bucket``, images up to 400 kB."""
    configure(jobs_bucket=bucket, max_image_bytes=400_000)
    with serve_app(app) as url:
        yield url


class S3Trigger:
    """Stands in for the client's sleep: each new upload's S3 notification goes through ``lambda_handler``."""

    def __init__(self, lambda_handler: Any, s3: Any, bucket: str) -> None:
        self.lambda_handler, self.s3, self.bucket = lambda_handler, s3, bucket
        self.delivered: list[str] = []
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        listed = self.s3.list_objects_v2(Bucket=self.bucket, Prefix="uploads/jobs/").get("Contents", [])
        for key in sorted(item["Key"] for item in listed if item["Key"] not in self.delivered):
            replace = {"pointrend-uploads-example": self.bucket, EXAMPLE_KEY: quote_plus(key, "/")}
            self.lambda_handler(read_event("s3-post-job.json", **replace), FakeLambdaContext())
            self.delivered.append(key)


def test_submit_writes_results_and_overlays_and_collects_failures(
    api: str, lambda_handler: Any, s3: Any, bucket: str, tmp_path: Path
) -> None:
    notes = tmp_path / "notes.jpg"
    notes.write_text("not a photo")
    photo = tmp_path / PHOTO.name  # beside notes.jpg: outputs are named relative to the inputs' common folder
    photo.write_bytes(PHOTO.read_bytes())
    trigger = S3Trigger(lambda_handler, s3, bucket)
    out = tmp_path / "out"
    options = {"confidence": 0, "overlay": True}
    report = submit_files(api, [photo, notes], out, options, sleep=trigger)
    assert report.succeeded == 1 and list(report.failed) == [notes]
    assert report.failed[notes].startswith("not_an_image: ")
    assert sorted(path.name for path in out.iterdir()) == ["astronaut.jpg.json", "astronaut.jpg.png"]
    result = json.loads((out / "astronaut.jpg.json").read_text())
    width, height = Image.open(PHOTO).size
    assert result["mask_shape"] == [height, width, len(result["class_names"])] and result["class_names"]
    assert Image.open(out / "astronaut.jpg.png").size == (width, height)
    assert trigger.waits[0] == 1.0 and len(trigger.delivered) == 2


def test_submit_exits_1_with_each_error_code_and_message(api: str, tmp_path: Path, capsys: Any) -> None:
    big = tmp_path / "big.jpg"
    big.write_bytes(b"\xff" * 400_001)
    code = main(["submit", "--api", api, str(big), str(tmp_path / "missing.jpg"), "--out", str(tmp_path / "out")])
    summary = capsys.readouterr().out
    assert code == 1
    assert f"FAILED {big}: image_too_large: the file is 400001 bytes; the limit is 400000 bytes" in summary
    assert "missing.jpg: FileNotFoundError" in summary
    code = main(["submit", "--api", api, str(PHOTO), "--classes", "unicorn", "--out", str(tmp_path / "out")])
    assert code == 1 and "invalid_request: unknown class names ['unicorn']" in capsys.readouterr().out


def test_submit_to_an_unreachable_api_reports_the_connection_error(tmp_path: Path, segmenter: Any, capsys: Any) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code = main(["submit", "--api", f"http://127.0.0.1:{port}", str(PHOTO), "--out", str(tmp_path)])
    assert code == 1 and "ConnectError" in capsys.readouterr().out


THROTTLED = Failure(429, b'{"message":"Too Many Requests"}', {"Retry-After": "1", "Content-Type": "application/json"})
BUSY = Failure(
    503,
    b'{"error": {"code": "storage_unavailable", "message": "retry"}}',
    {"Retry-After": "2", "Content-Type": "application/json"},
)
SLOW_DOWN = Failure(503, b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>")


def test_submit_retries_429_and_503_honouring_retry_after_and_says_so(
    api: str, lambda_handler: Any, s3: Any, bucket: str, tmp_path: Path, capsys: Any, monkeypatch: Any
) -> None:
    # The API throttled (429) then busy (503) on every route once each; S3 slowing down the upload twice.
    rules = [Rule(r"POST /jobs", [THROTTLED, BUSY]), Rule(r"GET /jobs/\w+", [BUSY, THROTTLED])]
    s3_rules = [Rule(rf"POST /{bucket}/?", [SLOW_DOWN, SLOW_DOWN])]
    with flaky(api, rules) as front, flaky(os.environ["AWS_ENDPOINT_URL"], s3_rules) as s3_front:
        monkeypatch.setenv("AWS_ENDPOINT_URL", s3_front.url)  # the presigned form points at the flaky S3
        storage.s3_client.cache_clear()
        trigger = S3Trigger(lambda_handler, s3, bucket)
        report = submit_files(front.url, [PHOTO], tmp_path, {"confidence": 0}, sleep=trigger)
    storage.s3_client.cache_clear()
    assert report.succeeded == 1 and not report.failed, report.summary()
    assert json.loads((tmp_path / "astronaut.jpg.json").read_text())["class_names"]
    statuses = [status for request, status in front.answered]
    assert statuses[:3] == [429, 503, 201] and statuses.count(429) == 2 and statuses.count(503) == 2
    assert [status for _, status in s3_front.answered if status == 503] == [503, 503]
    assert trigger.waits[:2] == [1.0, 2.0]  # create: Retry-After 1, then 2, honoured exactly
    assert 2.0 in trigger.waits[2:] and 1.0 in trigger.waits[2:]  # polling: the same
    said = capsys.readouterr().err
    assert "create a job for astronaut.jpg: 429, retrying in 1 s (1 of 6)" in said
    assert "create a job for astronaut.jpg: 503 storage_unavailable, retrying in 2 s (2 of 6)" in said
    # S3's SlowDown has no Retry-After: the backoff's own waits (1 s, then 2 s, each with jitter)
    assert said.count("upload astronaut.jpg: 503 SlowDown, retrying in") == 2


def test_submit_gives_up_after_the_retries_with_the_last_answer(api: str, tmp_path: Path, capsys: Any) -> None:
    rules = [Rule(r"POST /jobs", [BUSY] * 7)]
    waits: list[float] = []
    with flaky(api, rules) as front:
        report = submit_files(front.url, [PHOTO], tmp_path, {}, sleep=waits.append)
    assert report.failed[PHOTO] == "storage_unavailable: retry"
    assert waits == [2.0] * 6 and len(front.answered) == 7
    assert capsys.readouterr().err.count("retrying in 2 s") == 6


def test_backoff_doubles_up_to_its_cap_with_jitter_and_reads_retry_after_dates() -> None:
    backoff = Backoff(first_s=1.0, cap_s=30.0)
    bare = httpx.Response(503)
    for attempt, ceiling in enumerate([1, 2, 4, 8, 16, 30, 30]):
        assert ceiling / 2 <= backoff.delay(attempt, bare) <= ceiling
    assert backoff.delay(0, httpx.Response(429, headers={"Retry-After": "120"})) == 30.0  # capped
    soon = email.utils.formatdate(time.time() + 10, usegmt=True)
    assert 8 <= backoff.delay(0, httpx.Response(503, headers={"Retry-After": soon})) <= 10
    assert retry_after(httpx.Response(503, headers={"Retry-After": "soon"})) is None


def test_submit_follows_result_url_when_the_result_is_not_inlined(
    api: str, lambda_handler: Any, s3: Any, bucket: str, configure: Any, tmp_path: Path
) -> None:
    configure(jobs_bucket=bucket, max_image_bytes=400_000, inline_result_bytes=0)
    trigger = S3Trigger(lambda_handler, s3, bucket)
    report = submit_files(api, [PHOTO], tmp_path, {"confidence": 0}, sleep=trigger)
    assert report.succeeded == 1 and not report.failed
    (key,) = [
        item["Key"]
        for item in s3.list_objects_v2(Bucket=bucket, Prefix="results/jobs/")["Contents"]
        if item["Key"].endswith(".json")
    ]
    stored = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    assert json.loads((tmp_path / "astronaut.jpg.json").read_text()) == stored
    assert report.objects == len(stored["class_names"]) > 0


def test_submit_replaces_an_existing_output_only_with_overwrite(tmp_path: Path) -> None:
    """Names are planned as ``segment`` plans them (cli/naming.py), before any request: the API is never asked."""
    photo = tmp_path / "a" / "x.jpg"
    photo.parent.mkdir()
    photo.write_bytes(PHOTO.read_bytes())
    existing = tmp_path / "out" / "x.jpg.json"
    existing.parent.mkdir()
    existing.write_text("{}")
    unreachable = "http://127.0.0.1:9"  # nothing listens: a request would fail with a connection error
    report = submit_files(unreachable, [photo], tmp_path / "out", {})
    assert "already exists; pass --overwrite" in report.failed[photo] and existing.read_text() == "{}"
    report = submit_files(unreachable, [photo], tmp_path / "out", {}, overwrite=True)
    assert report.failed[photo].startswith("ConnectError")  # allowed to replace it: the job was asked for
