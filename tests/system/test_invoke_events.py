"""Every events/*.json through the real Lambda runtime, as ``sam local invoke -e`` would run it.

The image's ENTRYPOINT + CMD (``python -m awslambdaric handler.lambda_function.lambda_handler``) under
AWS's Runtime Interface Emulator (infra.rie), with the random test model. One warm runtime takes every
event, in one ``invoke`` call: a cold start costs ~10 s here, mostly importing torch.

- HTTP events: status and body, the expectation derived from the request the event carries (route,
  query, whether the bytes sent are an image).
- S3, SQS, EventBridge, S3 test and S3 Batch Operations events: against moto server. Each event gets a
  bucket of its own (the bucket name in the file is replaced, as the S3 tests do), so that each event's
  results are checked apart; the objects it names are uploaded first (the file in tests/images whose md5
  is the event's ETag; the first one for Batch Operations tasks, which carry none), and afterwards each
  bucket must hold exactly the uploads and their results/ outputs.

A new event file is picked up by the glob: it either fits one of these shapes or its test fails with
"no expectation". Also through the real handler, started beside the events' runtime so that the cold
starts overlap: an init failure (SEG_MODEL_PATH names a missing file) through ``invoke`` and through
``python -m infra invoke``, and ``python -m infra invoke EVENT.json --repeat 2`` as a user runs it.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import itertools
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote_plus

import pytest
from conftest import EVENTS, IMAGES, REPO, read_event
from moto_fixtures import AWS_ENVIRONMENT
from PIL import Image, ImageOps
from pycocotools import mask as coco_mask

from handler import jobstore
from handler.api.models import ErrorResponse, HealthResponse, SeedResponse, SegmentResponse
from handler.core import storage
from handler.engine.results import SEED_KEYS
from infra import image_spec, rie

EVENT_FILES = sorted(path.name for path in EVENTS.glob("*.json"))
TEMPLATE_ENV = image_spec.function_spec().environment  # the function's environment in template.yaml
INPUT_PREFIX, OUTPUT_PREFIX = TEMPLATE_ENV["SEG_INPUT_PREFIX"], TEMPLATE_ENV["SEG_OUTPUT_PREFIX"]
MODEL_NOT_FOUND = "ModelFileError: model file not found: "  # handler.model's message for a missing file
# The failure queue's messages (a failed invocation's record each): the error code the upload then reads.
FAILURE_CODES = {
    "sqs-failure-out-of-memory.json": "out_of_memory",
    "sqs-failure-timeout.json": "timed_out",
    "sqs-failure-retries-exhausted.json": "retries_exhausted",
    "sqs-failure-event-age.json": "worker_busy",
}

pytestmark = pytest.mark.slow


# --- what an S3-side event names ---------------------------------------------------------------------


def notification_objects(message: Any) -> list[tuple[str, str, str | None]] | None:
    """(bucket, key, etag) of each object an S3 notification names ([] for S3's test event); None if
    ``message`` is not an S3 notification."""
    if not isinstance(message, dict):
        return None
    context = message.get("requestContext")
    if isinstance(context, dict) and "condition" in context:  # a failed invocation's record: what it was about
        return notification_objects(message.get("requestPayload"))
    records = message.get("Records")
    if isinstance(records, list) and records and all(r.get("eventSource") == "aws:s3" for r in records):
        return [
            (r["s3"]["bucket"]["name"], unquote_plus(r["s3"]["object"]["key"]), r["s3"]["object"].get("eTag"))
            for r in records
        ]
    detail = message.get("detail")
    if message.get("source") == "aws.s3" and isinstance(detail, dict):  # EventBridge: the key as it is
        return [(detail["bucket"]["name"], detail["object"]["key"], detail["object"].get("etag"))]
    if message.get("Event") == "s3:TestEvent":
        return []
    if "invocationSchemaVersion" in message:  # S3 Batch Operations: bucket by ARN (1.0) or name (2.0)
        return [
            (task.get("s3Bucket") or task["s3BucketArn"].split(":::")[-1], unquote_plus(task["s3Key"]), None)
            for task in message["tasks"]
        ]
    return None


def buckets_named(message: Any) -> set[str]:
    if isinstance(message, dict) and message.get("Event") == "s3:TestEvent":
        return {message["Bucket"]}
    return {bucket for bucket, _, _ in notification_objects(message) or []}


def sqs_bodies(event: dict[str, Any]) -> list[tuple[str, Any]] | None:
    """(messageId, parsed body) of each SQS message; None if ``event`` is not an SQS batch."""
    records = event.get("Records")
    if not (isinstance(records, list) and records and all(r.get("eventSource") == "aws:sqs" for r in records)):
        return None
    out = []
    for record in records:
        try:
            body = json.loads(record["body"])
        except json.JSONDecodeError:
            body = record["body"]
        out.append((record["messageId"], body))
    return out


_bucket_numbers = itertools.count()


@dataclass
class S3Plan:
    """An S3-side event with its buckets renamed: what to upload first and what must come back."""

    event: dict[str, Any]
    buckets: set[str] = field(default_factory=set)
    objects: list[tuple[str, str, str | None]] = field(default_factory=list)  # (bucket, key, etag)
    sqs: bool = False
    bad_messages: list[str] = field(default_factory=list)  # SQS messages that carry no S3 notification


def s3_plan(name: str) -> S3Plan | None:
    """None when events/<name> is neither an S3 notification nor a batch of SQS messages."""
    text = (EVENTS / name).read_text(encoding="utf-8")
    event = json.loads(text)
    messages = sqs_bodies(event)
    if messages is None and notification_objects(event) is None:
        return None
    named = set().union(*(buckets_named(body) for _, body in messages or [("", event)]))
    slug = re.sub(r"[^a-z0-9]+", "-", Path(name).stem.lower())
    for old in sorted(named, key=len, reverse=True):  # the name also sits in ARNs and in SQS bodies
        text = text.replace(old, f"invoke-{next(_bucket_numbers)}-{slug}"[:63].rstrip("-"))
    plan = S3Plan(event=json.loads(text))
    messages = sqs_bodies(plan.event)
    plan.sqs = messages is not None
    for message_id, body in messages or [("", plan.event)]:
        objects = notification_objects(body)
        if objects is None:
            plan.bad_messages.append(message_id)
            continue
        plan.objects.extend(objects)
        plan.buckets |= buckets_named(body)
    return plan


def image_with_etag(etag: str | None) -> Path:
    """The file in tests/images the event's ETag (md5 of a single-part upload) names."""
    for path in sorted(IMAGES.glob("*.*")):
        md5 = hashlib.md5(path.read_bytes()).hexdigest()  # noqa: S324 (S3's ETag of a single-part upload)
        if path.suffix != ".md" and (etag is None or md5 == etag.strip('"')):
            return path
    raise AssertionError(f"no file in {IMAGES} has the md5 {etag}: the event names an unknown upload")


# --- one warm runtime for every event -------------------------------------------------------------------


@dataclass
class Run:
    report: rie.InvokeReport
    responses: dict[str, Any]  # event file name -> the function's answer
    plans: dict[str, S3Plan]
    uploads: dict[tuple[str, str], bytes]  # (bucket, key) -> the bytes put there
    s3: Any


@pytest.fixture(scope="module")
def runtime_env(moto_endpoint: str, test_model_path: Path) -> dict[str, str]:
    """The runtime's environment: moto server for AWS, the test model at the tests' speed."""
    return {
        **AWS_ENVIRONMENT,
        "AWS_ENDPOINT_URL": moto_endpoint,
        "SEG_MODEL_PATH": str(test_model_path),
        "SEG_DETECTION_SPEED": "rapid",
        # One runtime for every event, so both sides: deployed, each function imports only its own
        # (template.yaml's SEG_SERVES; `python -m infra invoke` picks the function per event).
        "SEG_SERVES": "all",
        # The init phase counts against the function timeout (template.yaml: 29 s); cold starts run side
        # by side here on a shared machine, so give them room. The deadline logic has tests of its own.
        "AWS_LAMBDA_FUNCTION_TIMEOUT": "120",
    }


@pytest.fixture(scope="module")
def run(runtime_env: dict[str, str], background: Background) -> Run:
    """Every event through one runtime; the init failure and the command lines run meanwhile."""
    s3 = storage.s3_client()  # points at moto server (the moto_endpoint fixture set the environment)
    events: dict[str, dict[str, Any]] = {}
    plans: dict[str, S3Plan] = {}
    uploads: dict[tuple[str, str], bytes] = {}
    for name in EVENT_FILES:
        plan = s3_plan(name)
        if plan is None:
            events[name] = read_event(name)
            continue
        plans[name] = plan
        events[name] = plan.event
        for bucket in sorted(plan.buckets):
            s3.create_bucket(Bucket=bucket)
        for bucket, key, etag in plan.objects:
            data = image_with_etag(etag).read_bytes()
            s3.put_object(Bucket=bucket, Key=key, Body=data)
            uploads[bucket, key] = data
    report = rie.invoke(list(events.values()), env=runtime_env, timeout=180)
    assert report.stopped, "the emulator and the runtime are stopped"
    assert report.init_error is None, report.init_error + "\n" + report.logs[-4000:]
    assert len(report.invocations) == len(events), report.error
    assert report.invocations[0].cold and not any(i.cold for i in report.invocations[1:]), "one warm runtime"
    responses = dict(zip(events, report.responses, strict=True))
    return Run(report=report, responses=responses, plans=plans, uploads=uploads, s3=s3)


@pytest.mark.parametrize("name", EVENT_FILES)
def test_event_through_the_runtime(run: Run, name: str) -> None:
    invocation = run.report.invocations[EVENT_FILES.index(name)]
    assert invocation.status == 200
    assert invocation.ok, f"{invocation.error}\n{run.report.logs[-4000:]}"
    event = read_event(name)
    if name in FAILURE_CODES:
        check_failure_record(run, run.plans[name], run.responses[name], FAILURE_CODES[name])
    elif name in run.plans:
        check_s3(run, run.plans[name], run.responses[name])
    elif "requestContext" in event and ("version" in event or "resource" in event or "elb" in event["requestContext"]):
        check_http(event, run.responses[name])
    else:
        pytest.fail(f"no expectation for events/{name}: neither an HTTP request nor an S3 event")


# --- HTTP ----------------------------------------------------------------------------------------------


def request_of(event: dict[str, Any]) -> tuple[str, str, dict[str, str]]:
    """(method, path, query) of an API Gateway v1/v2, function URL or ALB event."""
    if "httpMethod" in event:
        method, path = event["httpMethod"], event["path"]
    else:
        method, path = event["requestContext"]["http"]["method"], event["rawPath"]
    multi = {name: values[-1] for name, values in (event.get("multiValueQueryStringParameters") or {}).items()}
    query = event.get("queryStringParameters") or multi or dict(parse_qsl(event.get("rawQueryString", "")))
    return method, path, query


def single_headers(message: dict[str, Any]) -> dict[str, str]:
    """Headers by lowercase name, from ``headers`` or (an ALB with multi-value headers) ``multiValueHeaders``."""
    if "headers" in message:
        return {name.lower(): value for name, value in message["headers"].items()}
    return {name.lower(): values[-1] for name, values in message["multiValueHeaders"].items()}


def sent_image(event: dict[str, Any]) -> bytes | None:
    """The file the request sends: the one file of a multipart form, or the raw body."""
    if not event.get("body"):
        return None
    body = base64.b64decode(event["body"]) if event.get("isBase64Encoded") else event["body"].encode()
    content_type = single_headers(event).get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        return body
    boundary = content_type.split("boundary=", 1)[1].encode()
    part = body.split(b"--" + boundary)[1]
    return part.split(b"\r\n\r\n", 1)[1].removesuffix(b"\r\n")


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) as the service sees it (EXIF orientation applied); None if not an image."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return ImageOps.exif_transpose(image).size
    except (OSError, SyntaxError, ValueError):
        return None


def json_body(response: dict[str, Any]) -> dict[str, Any]:
    assert single_headers(response)["content-type"] == "application/json"
    assert response.get("isBase64Encoded") is False
    return json.loads(response["body"])


def check_http(event: dict[str, Any], response: dict[str, Any]) -> None:
    method, path, query = request_of(event)
    sent = sent_image(event)
    size = image_size(sent) if sent is not None else None
    status = response["statusCode"]
    if (method, path) == ("GET", "/healthz"):
        assert status == 200
        health = HealthResponse.model_validate(json_body(response))
        assert health.model.loaded
        assert health.defaults.detection_speed == "rapid", "the caller's environment reaches the runtime"
    elif method == "POST" and sent is not None and size is None:
        assert 400 <= status < 500, f"not an image: expected a 4xx, got {status}: {response['body'][:300]}"
        ErrorResponse.model_validate(json_body(response))
    elif (method, path) == ("POST", "/segmentapi"):
        assert status == 200, response["body"][:500]
        body = json_body(response)
        assert tuple(sorted(body)) == SEED_KEYS, "the seed route's keys, exactly"
        SeedResponse.model_validate(body)
        assert body["mask_shape"][:2] == [size[1], size[0]]
    elif (method, path) == ("POST", "/segment") and query.get("format") == "png":
        assert status == 200, response["body"][:500]
        assert single_headers(response)["content-type"] == "image/png"
        assert response["isBase64Encoded"] is True
        overlay = Image.open(io.BytesIO(base64.b64decode(response["body"], validate=True)))
        assert (overlay.format, overlay.size) == ("PNG", size)
    elif (method, path) == ("POST", "/segment"):
        assert status == 200, response["body"][:500]
        body = json_body(response)
        result = SegmentResponse.model_validate(body)
        assert (result.image.width, result.image.height) == size
        count = len(result.class_names)
        assert result.mask_shape == [size[1], size[0], count]
        assert len(result.boxes) == len(result.scores) == len(result.class_ids) == count
        assert result.model.name == "pointrend_resnet50"
        if query.get("masks") == "polygons":
            assert "masks" not in body and len(body["polygons"]) == count
        else:
            assert len(result.masks) == count
            for rle in result.masks:
                assert coco_mask.decode({"size": rle.size, "counts": rle.counts.encode()}).shape == (size[1], size[0])
    else:
        pytest.fail(f"no expectation for an HTTP event {method} {path}: add one to check_http")


# --- S3, SQS, EventBridge --------------------------------------------------------------------------------


def keys_in(s3: Any, bucket: str) -> set[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return {item["Key"] for page in pages for item in page.get("Contents", [])}


def output_of(key: str, suffix: str) -> str:
    return f"{OUTPUT_PREFIX}{key.removeprefix(INPUT_PREFIX)}{suffix}"


def check_segmented(s3: Any, bucket: str, key: str, data: bytes, masks: str = "rle") -> None:
    """results/<key>.json (the result schema, with its source) and results/<key>.png (the overlay)."""
    width, height = image_size(data)
    body = json.loads(s3.get_object(Bucket=bucket, Key=output_of(key, ".json"))["Body"].read())
    source = body.pop("source")
    assert (source["bucket"], source["key"]) == (bucket, key)
    assert source["etag"] == hashlib.md5(data).hexdigest()  # noqa: S324 (S3's ETag)
    result = SegmentResponse.model_validate(body)
    assert (result.image.width, result.image.height) == (width, height)
    assert result.mask_shape == [height, width, len(result.class_names)]
    assert len(body["polygons"] if masks == "polygons" else result.masks) == len(result.class_names)
    overlay = Image.open(io.BytesIO(s3.get_object(Bucket=bucket, Key=output_of(key, ".png"))["Body"].read()))
    assert (overlay.format, overlay.size) == ("PNG", (width, height))


def check_s3(run: Run, plan: S3Plan, response: dict[str, Any]) -> None:
    if plan.sqs:
        # Exactly the messages that are no S3 notification; the good ones are done.
        failures = [item["itemIdentifier"] for item in response["batchItemFailures"]]
        assert sorted(failures) == sorted(plan.bad_messages)
    elif "invocationSchemaVersion" in plan.event:
        assert response["invocationSchemaVersion"] == plan.event["invocationSchemaVersion"]
        assert [(r["taskId"], r["resultCode"], r["resultString"]) for r in response["results"]] == [
            (task["taskId"], "Succeeded", f"s3://{bucket}/{output_of(key, '.json')}")
            for task, (bucket, key, _) in zip(plan.event["tasks"], plan.objects, strict=True)
        ]
    else:
        assert [(o["bucket"], o["key"], o["outcome"]) for o in response["objects"]] == [
            (bucket, key, "segmented") for bucket, key, _ in plan.objects
        ]
    masks = plan.event.get("job", {}).get("userArguments", {}).get("masks", "rle")
    for bucket, key, _ in plan.objects:
        check_segmented(run.s3, bucket, key, run.uploads[bucket, key], masks)
    for bucket in plan.buckets:
        uploaded = {key for b, key in run.uploads if b == bucket}
        outputs = {output_of(key, suffix) for key in uploaded for suffix in (".json", ".png")}
        # A job's upload claims its job first (handler/jobstore.py: one processed upload per job).
        jobs = [re.fullmatch(rf"{re.escape(INPUT_PREFIX)}jobs/([0-9a-f]{{32}})/[^/]+", key) for key in uploaded]
        claims = {f"{OUTPUT_PREFIX}jobs/{job[1]}/{jobstore.CLAIM_NAME}" for job in jobs if job}
        assert keys_in(run.s3, bucket) == uploaded | outputs | claims, "the uploads and their results, nothing else"


def check_failure_record(run: Run, plan: S3Plan, response: dict[str, Any], code: str) -> None:
    """The failure queue's message is handled (not reported back), and the upload it names reads as failed
    with ``code``: its .error.json, made from exactly that upload, and nothing else beside it."""
    assert response == {"batchItemFailures": []}
    for bucket, key, _ in plan.objects:
        record = json.loads(run.s3.get_object(Bucket=bucket, Key=output_of(key, ".error.json"))["Body"].read())
        assert record["error"]["code"] == code and record["error"]["message"]
        assert record["source"]["etag"] == hashlib.md5(run.uploads[bucket, key]).hexdigest()  # noqa: S324
        assert record["invocation"]["condition"] in ("RetriesExhausted", "EventAgeExceeded")
        assert keys_in(run.s3, bucket) == {key, output_of(key, ".error.json")}


# --- init failure, and the command line --------------------------------------------------------------


@dataclass
class Background:
    """What runs beside the events' runtime: every cold start here is mostly torch's import, on 2 cores."""

    missing_model: Path
    init_failure: Future[rie.InvokeReport]  # infra.rie.invoke with SEG_MODEL_PATH naming a missing file
    init_failure_cli: subprocess.Popen[str]  # python -m infra invoke events/apigw-http-healthz.json, same env
    repeat_cli: subprocess.Popen[str]  # python -m infra invoke events/apigw-http-multipart.json --repeat 2


def cli(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "infra", "invoke", *args],
        cwd=REPO,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(command: subprocess.Popen[str], timeout: float = 150) -> tuple[str, str]:
    """Its output, once it has exited; interrupted (so that it stops its emulator) if it overstays."""
    try:
        return command.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        command.send_signal(signal.SIGINT)  # KeyboardInterrupt: infra.rie stops its processes
        try:
            command.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            command.kill()
            command.communicate()
        raise


@pytest.fixture(scope="module")
def background(runtime_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Background]:
    missing = tmp_path_factory.mktemp("init-failure") / "no-such-dir" / "model.pkl"
    broken_env = {**runtime_env, "SEG_MODEL_PATH": str(missing)}
    healthz = read_event("apigw-http-healthz.json")
    with ThreadPoolExecutor(max_workers=1) as pool:
        started = Background(
            missing_model=missing,
            init_failure=pool.submit(rie.invoke, [healthz], repeat=2, env=broken_env, timeout=150),
            init_failure_cli=cli("events/apigw-http-healthz.json", env=broken_env),
            repeat_cli=cli("events/apigw-http-multipart.json", "--repeat", "2", env=runtime_env),
        )
        try:
            yield started
        finally:
            for command in (started.init_failure_cli, started.repeat_cli):
                if command.poll() is None:
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        finish(command, timeout=0)


def test_init_failure_of_the_real_handler_is_reported(background: Background) -> None:
    report = background.init_failure.result(timeout=150)
    expected = f"{MODEL_NOT_FOUND}{background.missing_model}"
    assert not report.ok
    assert report.init_error is not None, report.logs[-4000:]
    assert report.init_error.startswith(expected)
    assert report.error.startswith(f"init failed: {expected}")
    assert [i.status for i in report.invocations] == [502], "an init failure stops the run"
    assert "INIT RTDONE(status: error)" in report.logs
    assert report.stopped


def test_init_failure_makes_invoke_exit_non_zero_with_the_message(background: Background) -> None:
    stdout, stderr = finish(background.init_failure_cli)
    assert background.init_failure_cli.returncode == 1, stderr[-3000:]
    assert json.loads(stdout)["errorType"] == "ModelFileError"
    assert f"invoke: init failed: {MODEL_NOT_FOUND}{background.missing_model}" in stderr


def test_invoke_command_line_repeat_prints_the_answer_and_cold_and_warm_timings(background: Background) -> None:
    stdout, stderr = finish(background.repeat_cli)
    assert background.repeat_cli.returncode == 0, stderr[-3000:]
    response = json.loads(stdout)
    assert response["statusCode"] == 200
    SegmentResponse.model_validate_json(response["body"])
    timings = re.search(
        r"invoke \(SegmentFunction\): cold ([0-9.]+) s \(init ([0-9.]+) s\), "
        r"warm median ([0-9.]+) s \(min [0-9.]+, max [0-9.]+, n=1\)",
        stderr,
    )
    assert timings, stderr[-3000:]
    cold, init, warm = map(float, timings.groups())
    assert 0 < init < cold and 0 < warm < cold
    print(f"invoke --repeat 2 (beside the other runtimes): cold {cold:.2f} s (init {init:.2f} s), warm {warm:.2f} s")
