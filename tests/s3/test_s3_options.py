"""An uploaded object's ``x-amz-meta-*`` options (what a job's presigned POST signs in), through the S3 trigger
against moto server: honoured when valid, an error record when not (validated as /segment's query)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote_plus

import pytest
from conftest import IMAGES, FakeLambdaContext, read_event

pytestmark = pytest.mark.usefixtures("segmenter")

PHOTO = IMAGES / "astronaut.jpg"


def put_and_deliver(lambda_handler: Any, s3: Any, bucket: str, key: str, metadata: dict[str, str]) -> dict[str, Any]:
    s3.put_object(Bucket=bucket, Key=key, Body=PHOTO.read_bytes(), Metadata=metadata)
    event = read_event("s3-put.json", **{"pointrend-uploads-example": bucket, "uploads/astronaut.jpg": quote_plus(key)})
    (processed,) = lambda_handler(event, FakeLambdaContext())["objects"]
    return processed


def read_json(s3: Any, bucket: str, key: str) -> dict[str, Any]:
    return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def test_metadata_options_are_honoured(lambda_handler: Any, s3: Any, bucket: str) -> None:
    metadata = {"confidence": "0", "masks": "polygons", "overlay": "false", "classes": "person", "camera": "x100"}
    processed = put_and_deliver(lambda_handler, s3, bucket, "uploads/meta.jpg", metadata)
    assert processed["outcome"] == "segmented" and processed["outputs"] == ["results/meta.jpg.json"]
    result = read_json(s3, bucket, "results/meta.jpg.json")
    assert "polygons" in result and "masks" not in result
    assert set(result["class_names"]) <= {"person"}


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ({"confidence": "lots"}, "x-amz-meta-confidence"),
        ({"confidence": "1.5"}, "x-amz-meta-confidence"),
        ({"masks": "bitmap"}, "x-amz-meta-masks"),
        ({"overlay": "maybe"}, "x-amz-meta-overlay"),
        ({"classes": "person,unicorn"}, "unicorn"),
    ],
)
def test_bad_metadata_options_get_an_error_record(
    lambda_handler: Any, s3: Any, bucket: str, metadata: dict[str, str], expected: str
) -> None:
    processed = put_and_deliver(lambda_handler, s3, bucket, "uploads/bad.jpg", metadata)
    assert processed["outcome"] == "error_record"
    record = read_json(s3, bucket, "results/bad.jpg.error.json")
    assert record["error"]["code"] == "invalid_request" and expected in record["error"]["message"]
    assert s3.head_object(Bucket=bucket, Key="uploads/bad.jpg")["ContentLength"] == PHOTO.stat().st_size
