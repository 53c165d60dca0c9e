"""The S3 trigger end to end against moto server over HTTP: events/ samples in, results read back from S3.

The model is the real (random-weights) test model; S3 failures are real moto answers or, where moto
cannot produce one, an error response injected into the handler's own boto3 client by a botocore hook.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote_plus

import pytest
from botocore.exceptions import EndpointConnectionError
from conftest import EVENTS, IMAGES, FakeLambdaContext, read_event
from imaging import png_header_only
from PIL import Image, ImageOps
from pycocotools import mask as coco_mask
from s3_faults import s3_answers

from handler.core import storage
from handler.core.errors import OutOfTime
from handler.core.settings import Settings
from handler.s3 import events as s3_events
from handler.s3.objects import ObjectRef, output_key, skip_reason

SAMPLE_BUCKET = "pointrend-uploads-example"
SAMPLE_KEY = "uploads/astronaut.jpg"
ENCODED_SAMPLE_KEY = "uploads/Summer 2024/café über+alles 100%.jpg"
BAD_MESSAGE_ID = "2e1424d4-f796-459a-8184-9c92662be6da"

pytestmark = pytest.mark.usefixtures("segmenter")


# --- events -----------------------------------------------------------------------------------------


def sample_event(name: str, bucket: str, key: str = SAMPLE_KEY) -> dict[str, Any]:
    """events/<name> naming ``bucket`` and ``key``, the key URL-encoded wherever S3 encodes it."""
    text = (EVENTS / name).read_text(encoding="utf-8")
    in_event = key if name.startswith("eventbridge") else quote_plus(key, safe="/")
    return json.loads(text.replace(SAMPLE_BUCKET, bucket).replace(SAMPLE_KEY, in_event))


def s3_put(bucket: str, *keys: str, event_name: str = "ObjectCreated:Put") -> dict[str, Any]:
    """One S3 notification with a record per key (as events/s3-put.json)."""
    records = [sample_event("s3-put.json", bucket, key)["Records"][0] for key in keys]
    for record in records:
        record["eventName"] = event_name
    return {"Records": records}


def sqs_batch(*bodies: dict[str, Any] | str) -> dict[str, Any]:
    """Messages shaped as in events/sqs-s3.json, ids ``m0``, ``m1``, ..."""
    template = read_event("sqs-s3.json")["Records"][0]
    return {
        "Records": [
            {**template, "messageId": f"m{n}", "body": body if isinstance(body, str) else json.dumps(body)}
            for n, body in enumerate(bodies)
        ]
    }


# --- S3 ---------------------------------------------------------------------------------------------


def upload(s3: Any, bucket: str, key: str, data: bytes | str = "astronaut.jpg") -> bytes:
    """Put ``data`` (bytes, or the name of a file in tests/images) at ``key``; returns the bytes."""
    body = (IMAGES / data).read_bytes() if isinstance(data, str) else data
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    return body


def keys_in(s3: Any, bucket: str, prefix: str = "") -> set[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return {item["Key"] for page in pages for item in page.get("Contents", [])}


def read_json(s3: Any, bucket: str, key: str) -> dict[str, Any]:
    return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def assert_segmented(s3: Any, bucket: str, key: str, data: bytes, version_id: str | None = None) -> dict[str, Any]:
    """The .json (schema, RLE, source) and .png (overlay) of ``key`` are in S3 and fit the image."""
    relative = key.removeprefix("uploads/")
    body = read_json(s3, bucket, f"results/{relative}.json")
    width, height = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).size
    count = len(body["class_names"])
    assert body["image"] == {"width": width, "height": height}
    assert body["mask_shape"] == [height, width, count]
    assert len(body["boxes"]) == len(body["scores"]) == len(body["class_ids"]) == len(body["masks"]) == count
    assert sum(body["object_counts"].values()) == count
    for rle in body["masks"]:
        mask = coco_mask.decode({"size": rle["size"], "counts": rle["counts"].encode()})
        assert mask.shape == (height, width)
    assert body["model"]["name"] == "pointrend_resnet50"
    assert body["source"] == {
        "bucket": bucket,
        "key": key,
        "etag": hashlib.md5(data).hexdigest(),  # noqa: S324 (S3's ETag of a single-part upload)
        "version_id": version_id,
    }
    overlay = Image.open(io.BytesIO(s3.get_object(Bucket=bucket, Key=f"results/{relative}.png")["Body"].read()))
    assert (overlay.format, overlay.size) == ("PNG", (width, height))
    return body


def assert_error_record(s3: Any, bucket: str, key: str, code: str) -> dict[str, Any]:
    record = read_json(s3, bucket, f"results/{key.removeprefix('uploads/')}.error.json")
    assert record["error"]["code"] == code
    assert record["error"]["message"]
    assert (record["source"]["bucket"], record["source"]["key"]) == (bucket, key)
    return record


@contextmanager
def after(s3: Any, operation: str, action: Callable[[], None]) -> Iterator[None]:
    def hook(**_: Any) -> None:
        action()

    s3.meta.events.register(f"after-call.s3.{operation}", hook)
    try:
        yield
    finally:
        s3.meta.events.unregister(f"after-call.s3.{operation}", hook)


@contextmanager
def s3_calls(s3: Any) -> Iterator[list[tuple[str, str]]]:
    """(operation, key) of every S3 call made in the block."""
    seen: list[tuple[str, str]] = []

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        seen.append((model.name, params.get("Key", "")))

    s3.meta.events.register("before-parameter-build.s3", record)
    try:
        yield seen
    finally:
        s3.meta.events.unregister("before-parameter-build.s3", record)


@pytest.fixture
def log_lines() -> Iterator[list[dict[str, Any]]]:
    """The handler's structured log lines, parsed."""
    lines: list[dict[str, Any]] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(json.loads(self.format(record)))

    collector = Collect()
    collector.setFormatter(s3_events.logger.registered_formatter)
    s3_events.logger.addHandler(collector)
    yield lines
    s3_events.logger.removeHandler(collector)


# --- each event kind --------------------------------------------------------------------------------


def test_s3_put_event_writes_result_json_and_overlay_png(s3, bucket, lambda_handler):
    data = upload(s3, bucket, SAMPLE_KEY, "rocket.jpg")
    with s3_calls(s3) as calls:
        answer = lambda_handler(sample_event("s3-put.json", bucket), FakeLambdaContext())
    body = assert_segmented(s3, bucket, SAMPLE_KEY, data)
    assert body["masks"], "the test model finds objects in rocket.jpg: the RLE check above must not be empty"
    [processed] = answer["objects"]
    assert processed["outcome"] == "segmented"
    assert processed["objects"] == len(body["masks"])
    assert processed["outputs"] == ["results/astronaut.jpg.json", "results/astronaut.jpg.png"]
    assert keys_in(s3, bucket) == {SAMPLE_KEY, "results/astronaut.jpg.json", "results/astronaut.jpg.png"}
    # HEAD before GET; HEAD again just before writing (still the object read?); the PNG before the JSON (a
    # .json present means the .png is too); then no error record of an earlier attempt beside them
    assert calls == [
        ("HeadObject", SAMPLE_KEY),
        ("GetObject", SAMPLE_KEY),
        ("HeadObject", SAMPLE_KEY),
        ("PutObject", "results/astronaut.jpg.png"),
        ("PutObject", "results/astronaut.jpg.json"),
        ("DeleteObject", "results/astronaut.jpg.error.json"),
    ]


def test_encoded_key_event_file_names_the_decoded_key(s3, bucket, lambda_handler):
    data = upload(s3, bucket, ENCODED_SAMPLE_KEY)
    event = read_event("s3-put-encoded-key.json", **{SAMPLE_BUCKET: bucket})
    lambda_handler(event, FakeLambdaContext())
    assert_segmented(s3, bucket, ENCODED_SAMPLE_KEY, data)


def test_many_records_with_awkward_keys_each_get_their_result(s3, bucket):
    keys = ["uploads/a+b c.jpg", "uploads/100%25 %.jpg", "uploads/写真/ünïcode (1).jpg"]
    uploaded = {key: upload(s3, bucket, key) for key in keys}
    answer = s3_events.handle(s3_put(bucket, *keys), None)
    assert [item["outcome"] for item in answer["objects"]] == ["segmented"] * len(keys)
    for key, data in uploaded.items():
        assert_segmented(s3, bucket, key, data)


def test_eventbridge_object_created_key_is_taken_as_it_is(s3, bucket, lambda_handler):
    key = "uploads/a+b c%41.jpg"  # EventBridge does not URL-encode: "+" and "%41" are literal here
    data = upload(s3, bucket, key)
    lambda_handler(sample_event("eventbridge-s3.json", bucket, key), FakeLambdaContext())
    assert_segmented(s3, bucket, key, data)


def test_s3_test_event_is_acknowledged_and_writes_nothing(s3, bucket, lambda_handler):
    with s3_calls(s3) as calls:
        assert lambda_handler(sample_event("s3-test-event.json", bucket), FakeLambdaContext()) == {"objects": []}
        test_in_sqs = sqs_batch(sample_event("s3-test-event.json", bucket))
        assert lambda_handler(test_in_sqs, FakeLambdaContext()) == {"batchItemFailures": []}
    assert calls == []


def test_sqs_sample_batch_reports_exactly_the_bad_message(s3, bucket, lambda_handler, log_lines):
    data = upload(s3, bucket, SAMPLE_KEY)
    answer = lambda_handler(sample_event("sqs-s3.json", bucket), FakeLambdaContext())
    assert answer == {"batchItemFailures": [{"itemIdentifier": BAD_MESSAGE_ID}]}
    assert_segmented(s3, bucket, SAMPLE_KEY, data)
    [failed] = [line for line in log_lines if line.get("outcome") == "failed"]
    assert (failed["level"], failed["message_id"]) == ("ERROR", BAD_MESSAGE_ID)
    assert "UnknownEvent" in failed["exception"]


def test_sqs_bad_objects_are_recorded_and_only_transient_failures_reported(s3, bucket):
    good = upload(s3, bucket, "uploads/good.jpg")
    upload(s3, bucket, "uploads/notes.txt", b"not an image")
    upload(s3, bucket, "uploads/flaky.jpg")
    batch = sqs_batch(
        s3_put(bucket, "uploads/good.jpg"),
        s3_put(bucket, "uploads/notes.txt"),
        sample_event("eventbridge-s3.json", bucket, "uploads/flaky.jpg"),  # S3 -> EventBridge -> SQS
        "{truncated",
    )
    with s3_answers(s3, "GetObject", "uploads/flaky.jpg", 503, "SlowDown") as failed:
        answer = s3_events.handle(batch, None)
    assert failed == ["uploads/flaky.jpg"]
    assert answer == {"batchItemFailures": [{"itemIdentifier": "m2"}, {"itemIdentifier": "m3"}]}
    assert_segmented(s3, bucket, "uploads/good.jpg", good)
    assert_error_record(s3, bucket, "uploads/notes.txt", "not_an_image")
    assert not keys_in(s3, bucket, "results/flaky")


# --- permanently bad objects: an error record, and the invocation succeeds --------------------------


def test_bad_objects_get_error_records_and_the_good_one_its_result(s3, bucket, settings):
    good = upload(s3, bucket, "uploads/good.jpg")
    bad = {
        "uploads/empty.jpg": (b"", "empty_image"),
        "uploads/notes.txt": (b"hello, not an image", "not_an_image"),
        "uploads/cut.jpg": (good[: len(good) // 2], "corrupt_image"),
        "uploads/huge.png": (png_header_only(20_000, 20_000), "too_many_pixels"),
        "uploads/big.jpg": (b"\xff" * (settings.max_image_bytes + 1), "image_too_large"),
    }
    for key, (data, _) in bad.items():
        upload(s3, bucket, key, data)
    with s3_calls(s3) as calls:
        answer = s3_events.handle(s3_put(bucket, "uploads/good.jpg", *bad, "uploads/deleted.jpg"), None)

    outcomes = {item["key"]: item["outcome"] for item in answer["objects"]}
    assert outcomes == {"uploads/good.jpg": "segmented"} | dict.fromkeys([*bad, "uploads/deleted.jpg"], "error_record")
    assert_segmented(s3, bucket, "uploads/good.jpg", good)
    for key, (data, code) in bad.items():
        record = assert_error_record(s3, bucket, key, code)
        assert record["source"]["etag"] == hashlib.md5(data).hexdigest()  # noqa: S324
    assert_error_record(s3, bucket, "uploads/deleted.jpg", "not_found")
    assert ("GetObject", "uploads/big.jpg") not in calls  # refused on HEAD's size, never downloaded


def test_unreadable_object_gets_an_error_record(s3, bucket):
    upload(s3, bucket, "uploads/locked.jpg")
    with s3_answers(s3, "HeadObject", "uploads/locked.jpg", 403, "AccessDenied"):
        s3_events.handle(s3_put(bucket, "uploads/locked.jpg"), None)
    assert_error_record(s3, bucket, "uploads/locked.jpg", "forbidden")


# --- transient failures: raise, so that Lambda retries ----------------------------------------------


@pytest.mark.parametrize(
    ("operation", "status", "code"),
    [("HeadObject", 500, "InternalError"), ("GetObject", 503, "SlowDown"), ("PutObject", 503, "SlowDown")],
)
def test_s3_errors_fail_the_invocation_after_the_other_records(s3, bucket, operation, status, code):
    upload(s3, bucket, "uploads/flaky.jpg")
    upload(s3, bucket, "uploads/notes.txt", b"the other record: done, although the first one failed")
    failing_key = "results/flaky.jpg.png" if operation == "PutObject" else "uploads/flaky.jpg"
    with s3_answers(s3, operation, failing_key, status, code), pytest.raises(s3_events.ObjectsFailed) as failure:
        s3_events.handle(s3_put(bucket, "uploads/flaky.jpg", "uploads/notes.txt"), None)
    assert "1 of 2 objects failed" in str(failure.value)
    assert f"s3://{bucket}/uploads/flaky.jpg: ClientError" in str(failure.value)
    assert_error_record(s3, bucket, "uploads/notes.txt", "not_an_image")
    assert not keys_in(s3, bucket, "results/flaky.jpg.")


def test_eventbridge_transient_failure_raises(s3, bucket):
    upload(s3, bucket, SAMPLE_KEY)
    with s3_answers(s3, "HeadObject", SAMPLE_KEY, 503, "SlowDown"), pytest.raises(s3_events.ObjectsFailed):
        s3_events.handle(sample_event("eventbridge-s3.json", bucket), None)


def test_object_replaced_between_head_and_get_is_retried_not_recorded(s3, bucket):
    upload(s3, bucket, SAMPLE_KEY)
    with (
        after(s3, "HeadObject", lambda: upload(s3, bucket, SAMPLE_KEY, "coffee.png")),
        pytest.raises(s3_events.ObjectsFailed, match="PreconditionFailed"),
    ):
        s3_events.handle(sample_event("s3-put.json", bucket), None)
    assert keys_in(s3, bucket) == {SAMPLE_KEY}


def test_too_little_time_left_fails_the_object_for_a_retry(s3, bucket):
    upload(s3, bucket, SAMPLE_KEY)
    with pytest.raises(s3_events.ObjectsFailed) as failure:
        s3_events.handle(s3_put(bucket, SAMPLE_KEY), FakeLambdaContext(remaining_ms=200))
    assert isinstance(failure.value.__cause__, OutOfTime)
    assert s3_events.handle(sqs_batch(s3_put(bucket, SAMPLE_KEY)), FakeLambdaContext(remaining_ms=200)) == {
        "batchItemFailures": [{"itemIdentifier": "m0"}]
    }
    assert keys_in(s3, bucket) == {SAMPLE_KEY}


def test_unreachable_s3_raises(monkeypatch, bucket):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # discard port: connection refused
    storage.s3_client.cache_clear()
    try:
        with pytest.raises(s3_events.ObjectsFailed) as failure:
            s3_events.handle(s3_put(bucket, SAMPLE_KEY), None)
    finally:
        monkeypatch.undo()
        storage.s3_client.cache_clear()
    assert isinstance(failure.value.__cause__, EndpointConnectionError)


# --- what is skipped ---------------------------------------------------------------------------------


def test_skipped_keys_produce_nothing(s3, bucket):
    skipped = ["other/cat.jpg", "results/astronaut.jpg.json", "results/astronaut.jpg.png", "uploads/"]
    for key in skipped:
        upload(s3, bucket, key)
    with s3_calls(s3) as calls:
        answer = s3_events.handle(s3_put(bucket, *skipped), None)
        removed = s3_events.handle(s3_put(bucket, SAMPLE_KEY, event_name="ObjectRemoved:Delete"), None)
    assert [item["outcome"] for item in answer["objects"] + removed["objects"]] == ["skipped"] * 5
    assert keys_in(s3, bucket) == set(skipped)
    assert calls == []


@pytest.mark.parametrize(
    ("input_prefix", "output_bucket", "bucket", "key", "skipped"),
    [
        ("uploads/", None, "in", "uploads/results/a.jpg.json", True),  # own output, under the input prefix
        ("uploads/", None, "in", "uploads/a.jpg", False),
        ("uploads/", "out", "in", "uploads/results/a.jpg", False),  # outputs go elsewhere: an input
        ("uploads/", "out", "out", "uploads/results/a.jpg.json", True),
        ("uploads/", "out", "out", "uploads/a.jpg", False),
        ("", None, "in", "uploads/results/a.jpg.png", True),  # the whole bucket is input
        ("", None, "in", "cat.jpg", False),
    ],
)
def test_own_outputs_are_skipped_wherever_the_prefixes_are(input_prefix, output_bucket, bucket, key, skipped):
    # Nested prefixes in one bucket are refused at init (test_settings); the skip rules still hold without it.
    settings = Settings.model_construct(
        input_prefix=input_prefix, output_prefix="uploads/results/", output_bucket=output_bucket
    )
    reason = skip_reason(ObjectRef(bucket, key, "ObjectCreated:Put"), settings)
    assert (reason is not None) == skipped, reason


def test_output_keys_mirror_the_input_key_under_the_output_prefix():
    settings = Settings(input_prefix="uploads/", output_prefix="results/")
    ref = ObjectRef("b", "uploads/x/y z.jpg", "ObjectCreated:Put")
    assert output_key(ref, settings, ".json") == "results/x/y z.jpg.json"
    assert output_key(ref, settings, ".error.json") == "results/x/y z.jpg.error.json"


def test_a_key_whose_result_keys_would_pass_s3s_limit_is_skipped():
    settings = Settings(input_prefix="uploads/", output_prefix="results/")
    fits = "uploads/" + "k" * (1024 - len("results/.error.json"))
    assert skip_reason(ObjectRef("b", fits, "ObjectCreated:Put"), settings) is None
    reason = skip_reason(ObjectRef("b", fits + "k", "ObjectCreated:Put"), settings)
    assert reason is not None and "1025 bytes" in reason


# --- routing, logs, samples --------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(path.name for path in EVENTS.glob("*.json") if "s3" in path.name))
def test_every_sample_event_is_claimed(name):
    assert s3_events.claims(read_event(name))


@pytest.mark.parametrize(
    "event",
    [
        {"version": "2.0", "routeKey": "POST /segment", "rawPath": "/segment", "requestContext": {"http": {}}},
        {"Records": []},
        {"source": "aws.s3", "detail-type": "AWS API Call via CloudTrail", "detail": {"eventName": "PutObject"}},
        {"Records": [{"eventSource": "aws:sns"}]},
    ],
)
def test_other_events_are_not_claimed(event):
    assert not s3_events.claims(event)


def test_one_structured_log_line_per_object(s3, bucket, log_lines):
    upload(s3, bucket, SAMPLE_KEY)
    upload(s3, bucket, "uploads/notes.txt", b"text")
    s3_events.handle(s3_put(bucket, SAMPLE_KEY, "uploads/notes.txt", "elsewhere/x.jpg"), None)
    by_key = {line["key"]: line for line in log_lines if "key" in line}
    assert set(by_key) == {SAMPLE_KEY, "uploads/notes.txt", "elsewhere/x.jpg"}
    segmented = by_key[SAMPLE_KEY]
    assert (segmented["level"], segmented["outcome"], segmented["bucket"]) == ("INFO", "segmented", bucket)
    written = read_json(s3, bucket, f"results/{SAMPLE_KEY.removeprefix('uploads/')}.json")
    assert segmented["objects"] == len(written["boxes"])  # what the model found, as the result says
    assert set(segmented["timings_ms"]) == {"read", "segment", "total"}
    assert by_key["uploads/notes.txt"]["outcome"] == "error_record"
    assert by_key["uploads/notes.txt"]["reason"].startswith("not_an_image: ")
    assert by_key["elsewhere/x.jpg"]["outcome"] == "skipped"


def test_sample_events_are_what_make_s3_events_writes():
    spec = importlib.util.spec_from_file_location("make_s3_events", EVENTS / "make_s3_events.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for name, event in module.sample_events().items():
        assert (EVENTS / name).read_text(encoding="utf-8") == module.render(event), f"rerun make_s3_events.py: {name}"
