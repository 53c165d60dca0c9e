"""S3 Batch Operations tasks through ``lambda_handler`` against moto server: both invocation schemas, the
exact response Batch Operations reads, and what each kind of object leaves in S3 and in the report.

The model is the real (random-weights) test model; S3 failures are moto's own answers or, where moto
cannot produce one, an error response injected into the handler's boto3 client (test_s3_events' helpers).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import pytest
from conftest import FakeLambdaContext, read_event
from test_s3_events import (
    ENCODED_SAMPLE_KEY,
    SAMPLE_BUCKET,
    SAMPLE_KEY,
    assert_error_record,
    assert_segmented,
    keys_in,
    read_json,
    s3_answers,
    s3_calls,
    upload,
)

pytestmark = pytest.mark.usefixtures("segmenter")

INVOCATION_ID = "YXNkbGZqYWRmaiBhc2RmdW9hZHNmZGpmaGFzbGtkaGZza2RmaAo"
TASK_ID = "dGFza2lkZ29lc2hlcmUK"
SAM = Path(sys.executable).parent / "sam"


def batch_event(bucket: str, key: str = SAMPLE_KEY, schema: str = "1.0", **user_arguments: str) -> dict[str, Any]:
    """events/s3-batch-v1.json or -v2.json naming ``bucket`` and ``key`` (URL-encoded as AWS sends it)."""
    name, sample_key = ("s3-batch-v1.json", SAMPLE_KEY) if schema == "1.0" else ("s3-batch-v2.json", ENCODED_SAMPLE_KEY)
    event = read_event(name, **{SAMPLE_BUCKET: bucket})
    (task,) = event["tasks"]
    assert task["s3Key"] == quote_plus(sample_key, safe="/")
    task["s3Key"] = quote_plus(key, safe="/")
    if schema == "2.0":
        event["job"]["userArguments"] = user_arguments
    return event


def answer(code: str, text: str, schema: str = "1.0") -> dict[str, Any]:
    """The whole response Batch Operations reads, for one task."""
    return {
        "invocationSchemaVersion": schema,
        "treatMissingKeysAs": "PermanentFailure",
        "invocationId": INVOCATION_ID,
        "results": [{"taskId": TASK_ID, "resultCode": code, "resultString": text}],
    }


def result_of(response: dict[str, Any]) -> tuple[str, str]:
    (result,) = response["results"]
    return result["resultCode"], result["resultString"]


@pytest.fixture
def backfill(bucket: str, settings, monkeypatch) -> str:
    """The worker's settings with ``bucket`` as BackfillBucket and ``photos/`` as BackfillPrefix."""
    monkeypatch.setattr(settings, "backfill_bucket", bucket)
    monkeypatch.setattr(settings, "backfill_prefix", "photos/")
    return bucket


# --- both schemas, the exact response ----------------------------------------------------------------


def test_schema_1_segments_the_object_and_answers_with_the_result_key(s3, bucket, lambda_handler):
    data = upload(s3, bucket, SAMPLE_KEY, "rocket.jpg")
    response = lambda_handler(batch_event(bucket), FakeLambdaContext())
    assert response == answer("Succeeded", f"s3://{bucket}/results/astronaut.jpg.json")
    assert_segmented(s3, bucket, SAMPLE_KEY, data)


def test_schema_2_decodes_the_key_and_applies_the_user_arguments(s3, bucket, lambda_handler):
    data = upload(s3, bucket, ENCODED_SAMPLE_KEY, "chelsea.jpg")
    event = batch_event(bucket, ENCODED_SAMPLE_KEY, "2.0", masks="polygons", confidence="0", overlay="false")
    response = lambda_handler(event, FakeLambdaContext())
    result_key = f"results/{ENCODED_SAMPLE_KEY.removeprefix('uploads/')}.json"
    assert response == answer("Succeeded", f"s3://{bucket}/{result_key}", schema="2.0")
    body = read_json(s3, bucket, result_key)
    assert body["source"]["key"] == ENCODED_SAMPLE_KEY and body["source"]["bucket"] == bucket
    assert "masks" not in body and len(body["polygons"]) == len(body["class_names"]) > 0  # confidence 0: detections
    assert keys_in(s3, bucket) == {ENCODED_SAMPLE_KEY, result_key}, "overlay=false: no PNG"
    assert len(data) > 0


def test_schema_2_without_user_arguments_uses_the_defaults(s3, bucket, lambda_handler):
    data = upload(s3, bucket, SAMPLE_KEY)
    response = lambda_handler(batch_event(bucket, schema="2.0"), FakeLambdaContext())
    assert result_of(response) == ("Succeeded", f"s3://{bucket}/results/astronaut.jpg.json")
    assert_segmented(s3, bucket, SAMPLE_KEY, data)


# --- objects that can never be segmented: PermanentFailure with an error record ------------------------


@pytest.mark.parametrize(
    ("key", "body", "code"),
    [
        ("uploads/notes.txt", b"plain text, not an image", "not_an_image"),
        ("uploads/empty.jpg", b"", "empty_image"),
        ("uploads/never uploaded.jpg", None, "not_found"),
    ],
)
def test_a_bad_object_is_a_permanent_failure_with_its_error_record(s3, bucket, lambda_handler, key, body, code):
    if body is not None:
        upload(s3, bucket, key, body)
    for schema in ("1.0", "2.0"):
        result_code, text = result_of(lambda_handler(batch_event(bucket, key, schema), FakeLambdaContext()))
        assert result_code == "PermanentFailure"
        record = assert_error_record(s3, bucket, key, code)
        assert text == f"{code}: {record['error']['message']}"


# --- skipped: Succeeded, saying why ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("results/astronaut.jpg.json", "an output of this function (under 'results/')"),
        ("test/key", "outside the input prefix 'uploads/'"),
        ("uploads/folder/", "a folder marker"),
    ],
)
def test_skipped_objects_succeed_with_the_reason_and_nothing_is_read(s3, bucket, lambda_handler, key, reason):
    with s3_calls(s3) as calls:
        response = lambda_handler(batch_event(bucket, key), FakeLambdaContext())
    assert response == answer("Succeeded", f"skipped: {reason}")
    assert calls == []


def test_a_backfill_bucket_is_segmented_with_results_beside_it(s3, backfill, lambda_handler):
    data = upload(s3, backfill, "photos/2019/cat.jpg", "chelsea.jpg")
    upload(s3, backfill, "elsewhere/cat.jpg", "chelsea.jpg")
    response = lambda_handler(batch_event(backfill, "photos/2019/cat.jpg"), FakeLambdaContext())
    assert result_of(response) == ("Succeeded", f"s3://{backfill}/results/photos/2019/cat.jpg.json")
    assert read_json(s3, backfill, "results/photos/2019/cat.jpg.json")["image"]["width"] > 0
    assert len(data) > 0
    response = lambda_handler(batch_event(backfill, "elsewhere/cat.jpg"), FakeLambdaContext())
    assert result_of(response) == (
        "Succeeded",
        f"skipped: outside the input prefix 'uploads/' or s3://{backfill}/photos/",
    )


# --- transient failures: TemporaryFailure, nothing written ---------------------------------------------


@pytest.mark.parametrize(
    ("operation", "status", "code"),
    [("HeadObject", 503, "SlowDown"), ("GetObject", 500, "InternalError"), ("PutObject", 503, "SlowDown")],
)
def test_s3_errors_are_temporary_failures(s3, bucket, lambda_handler, operation, status, code):
    upload(s3, bucket, SAMPLE_KEY)
    failing_key = "results/astronaut.jpg.png" if operation == "PutObject" else SAMPLE_KEY
    with s3_answers(s3, operation, failing_key, status, code) as failed:
        response = lambda_handler(batch_event(bucket, schema="2.0"), FakeLambdaContext())
    assert failed
    assert response == answer("TemporaryFailure", f"{code}: simulated", schema="2.0")
    assert keys_in(s3, bucket) == {SAMPLE_KEY}


def test_too_little_time_left_is_a_temporary_failure(s3, bucket, lambda_handler):
    upload(s3, bucket, SAMPLE_KEY)
    code, text = result_of(lambda_handler(batch_event(bucket), FakeLambdaContext(remaining_ms=200)))
    assert code == "TemporaryFailure" and text.startswith("out_of_time: ")
    assert keys_in(s3, bucket) == {SAMPLE_KEY}


# --- bad userArguments: every task fails permanently, naming the argument ------------------------------


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        ({"confidence": "2"}, "userArguments.confidence: Input should be less than or equal to 1"),
        ({"confidence": "high"}, "userArguments.confidence: Input should be a valid number"),
        ({"masks": "bitmap"}, "userArguments.masks: Input should be 'rle', 'polygons' or 'none'"),
        ({"overlay": "maybe"}, "userArguments.overlay: Input should be a valid boolean"),
        ({"confidance": "0.3"}, "userArguments.confidance: Extra inputs are not permitted"),
        ({"classes": "person,unicorn"}, "userArguments.classes: unknown class names"),
    ],
)
def test_a_bad_user_argument_fails_the_task_permanently_naming_it(s3, bucket, lambda_handler, arguments, named):
    upload(s3, bucket, SAMPLE_KEY)
    with s3_calls(s3) as calls:
        response = lambda_handler(batch_event(bucket, schema="2.0", **arguments), FakeLambdaContext())
    code, text = result_of(response)
    assert code == "PermanentFailure"
    assert text.startswith("invalid_request: invalid userArguments: ") and named in text, text
    assert calls == [], "the object is fine: nothing is read, no error record is written"
    assert keys_in(s3, bucket) == {SAMPLE_KEY}


# --- what sam local generate-event writes ---------------------------------------------------------------


def generated_event(*options: str) -> dict[str, Any]:
    command = [str(SAM), "local", "generate-event", "s3", "batch-invocation", *options]
    env = {**os.environ, "SAM_CLI_TELEMETRY": "0"}
    return json.loads(subprocess.run(command, capture_output=True, text=True, check=True, env=env).stdout)


@pytest.mark.slow
def test_sam_generated_batch_invocation_works_through_the_handler(s3, bucket, lambda_handler):
    default = generated_event()
    (task,) = default["tasks"]
    code, text = result_of(lambda_handler(default, FakeLambdaContext()))
    assert (code, text) == ("Succeeded", "skipped: outside the input prefix 'uploads/'")  # its key is test/key
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    data = upload(s3, bucket, SAMPLE_KEY)
    event = generated_event("--bucket-arn", f"arn:aws:s3:::{bucket}", "--key", SAMPLE_KEY)
    # SAM's sample names version "1", which no bucket has; a real task names the manifest's version.
    assert event["tasks"][0]["s3VersionId"] == "1"
    version = s3.head_object(Bucket=bucket, Key=SAMPLE_KEY)["VersionId"]
    event["tasks"][0]["s3VersionId"] = version
    response = lambda_handler(event, FakeLambdaContext())
    assert response == {
        "invocationSchemaVersion": "1.0",
        "treatMissingKeysAs": "PermanentFailure",
        "invocationId": event["invocationId"],
        "results": [
            {
                "taskId": task["taskId"],
                "resultCode": "Succeeded",
                "resultString": f"s3://{bucket}/results/astronaut.jpg.json",
            }
        ],
    }
    assert_segmented(s3, bucket, SAMPLE_KEY, data, version)


# --- malformed events ------------------------------------------------------------------------------------


def test_an_event_without_its_one_task_is_a_malformed_record(lambda_handler, bucket):
    from handler.s3 import MalformedRecord

    event = batch_event(bucket)
    with pytest.raises(MalformedRecord, match="exactly one result"):
        lambda_handler({**event, "tasks": []}, FakeLambdaContext())
    del event["tasks"][0]["s3Key"]
    with pytest.raises(MalformedRecord, match="s3Key"):
        lambda_handler(event, FakeLambdaContext())


# --- versions: the task's version is read, and a result is written only while it is the latest --------------


def versioned_task(s3: Any, bucket: str, version_id: str) -> dict[str, Any]:
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    event = batch_event(bucket)
    event["tasks"][0]["s3VersionId"] = version_id
    return event


def test_a_task_naming_a_version_reads_exactly_that_version(s3, bucket, lambda_handler):
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    upload(s3, bucket, SAMPLE_KEY, "rocket.jpg")
    version = s3.head_object(Bucket=bucket, Key=SAMPLE_KEY)["VersionId"]
    event = versioned_task(s3, bucket, version)
    versions: list[tuple[str, str | None]] = []

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        versions.append((model.name, params.get("VersionId")))

    s3.meta.events.register("before-parameter-build.s3", record)
    try:
        response = lambda_handler(event, FakeLambdaContext())
    finally:
        s3.meta.events.unregister("before-parameter-build.s3", record)
    assert result_of(response) == ("Succeeded", f"s3://{bucket}/results/astronaut.jpg.json")
    body = read_json(s3, bucket, "results/astronaut.jpg.json")
    assert body["source"]["version_id"] == version and body["image"] == {"width": 320, "height": 213}
    # HEAD and GET of the task's version; then HEAD of the latest (still that version?) before writing
    assert versions[:3] == [("HeadObject", version), ("GetObject", version), ("HeadObject", None)]


def test_a_task_naming_a_replaced_version_writes_nothing_over_the_latest(s3, bucket, lambda_handler):
    """The object was replaced after the manifest was made: the old version is not segmented into the key's
    results (they describe the latest version), and the latest is not read in its place."""
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    upload(s3, bucket, SAMPLE_KEY, "rocket.jpg")
    old = s3.head_object(Bucket=bucket, Key=SAMPLE_KEY)["VersionId"]
    upload(s3, bucket, SAMPLE_KEY, b"the latest version: not an image")
    code, text = result_of(lambda_handler(versioned_task(s3, bucket, old), FakeLambdaContext()))
    assert code == "Succeeded" and text.startswith("skipped: stale")
    assert keys_in(s3, bucket) == {SAMPLE_KEY}
