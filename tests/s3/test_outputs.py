"""The outputs of an object always describe its latest upload, through ``lambda_handler`` against moto server: an
outcome for an upload replaced while it was segmented is dropped (HEAD just before writing), and the latest
outcome removes an earlier attempt's outputs that disagree with it (handler/jobstore.py's write order)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import IMAGES, FakeLambdaContext
from test_s3_events import keys_in, s3_put

pytestmark = pytest.mark.usefixtures("segmenter")

KEY = "uploads/photo.jpg"
OUTPUTS = {suffix: f"results/photo.jpg{suffix}" for suffix in (".json", ".png", ".error.json")}


def deliver(lambda_handler: Any, bucket: str) -> dict[str, Any]:
    (processed,) = lambda_handler(s3_put(bucket, KEY), FakeLambdaContext())["objects"]
    return processed


def test_an_outcome_for_a_replaced_upload_is_dropped(s3: Any, bucket: str, lambda_handler: Any) -> None:
    s3.put_object(Bucket=bucket, Key=KEY, Body=(IMAGES / "astronaut.jpg").read_bytes())
    replaced: list[str] = []

    def second_upload(**_: Any) -> None:  # right after the worker read the first upload
        if not replaced:
            replaced.append(s3.put_object(Bucket=bucket, Key=KEY, Body=(IMAGES / "rocket.jpg").read_bytes())["ETag"])

    s3.meta.events.register("after-call.s3.GetObject", second_upload)
    try:
        processed = deliver(lambda_handler, bucket)
    finally:
        s3.meta.events.unregister("after-call.s3.GetObject", second_upload)
    assert processed["outcome"] == "skipped" and processed["reason"].startswith("stale"), processed
    assert keys_in(s3, bucket) == {KEY}, "nothing written for the replaced upload"
    assert deliver(lambda_handler, bucket)["outcome"] == "segmented"  # the second upload's own event
    result = json.loads(s3.get_object(Bucket=bucket, Key=OUTPUTS[".json"])["Body"].read())
    assert result["source"]["etag"] == replaced[0].strip('"') and result["image"]["width"] == 320


def test_the_latest_outcome_replaces_the_earlier_ones_outputs(s3: Any, bucket: str, lambda_handler: Any) -> None:
    s3.put_object(Bucket=bucket, Key=KEY, Body=(IMAGES / "astronaut.jpg").read_bytes())
    deliver(lambda_handler, bucket)
    assert keys_in(s3, bucket) == {KEY, OUTPUTS[".json"], OUTPUTS[".png"]}
    s3.put_object(Bucket=bucket, Key=KEY, Body=b"not a photo")
    assert deliver(lambda_handler, bucket)["outcome"] == "error_record"
    assert keys_in(s3, bucket) == {KEY, OUTPUTS[".error.json"]}, "no earlier result beside the error record"
    s3.put_object(Bucket=bucket, Key=KEY, Body=(IMAGES / "rocket.jpg").read_bytes(), Metadata={"overlay": "false"})
    assert deliver(lambda_handler, bucket)["outcome"] == "segmented"
    assert keys_in(s3, bucket) == {KEY, OUTPUTS[".json"]}, "no earlier error record, nor an earlier overlay"
    etag = s3.head_object(Bucket=bucket, Key=KEY)["ETag"].strip('"')
    assert s3.head_object(Bucket=bucket, Key=OUTPUTS[".json"])["Metadata"]["source-etag"] == etag
