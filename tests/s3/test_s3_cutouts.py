"""The ``cutouts`` option on the S3 side against moto server: an upload's metadata and a Batch Operations job's
userArguments write ``<output>.objects/NN-<class>.png`` (checked against the result's decoded masks) before the
JSON, which lists them; a bad value is an error record; a key too long for them is refused up front."""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import IMAGES, FakeLambdaContext
from cutout_checks import assert_cutouts
from test_s3_options import put_and_deliver, read_json

from handler.engine import decode

pytestmark = pytest.mark.usefixtures("segmenter")

PHOTO = IMAGES / "astronaut.jpg"
RGB = decode(PHOTO.read_bytes(), max_bytes=10**8, max_pixels=10**8)


def objects_under(s3: Any, bucket: str, prefix: str) -> dict[str, bytes]:
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    files = {}
    for item in listed:
        stored = s3.get_object(Bucket=bucket, Key=item["Key"])
        assert stored["ContentType"] == "image/png"
        files[item["Key"][len(prefix) :]] = stored["Body"].read()
    return files


@pytest.mark.parametrize("mode", ["mask", "box"])
def test_metadata_cutouts_write_each_object_beside_the_result(lambda_handler: Any, s3: Any, bucket: str, mode) -> None:
    processed = put_and_deliver(lambda_handler, s3, bucket, "uploads/a b/cat.jpg", {"confidence": "0", "cutouts": mode})
    assert processed["outcome"] == "segmented"
    result = read_json(s3, bucket, "results/a b/cat.jpg.json")
    assert result["class_names"], "at confidence 0 the test model finds objects"
    assert result["timings_ms"]["cutouts"] > 0
    prefix = "results/a b/cat.jpg.objects/"
    assert result["cutouts"] == {"mode": mode, "prefix": prefix, "names": sorted(result["cutouts"]["names"])}
    files = objects_under(s3, bucket, prefix)
    assert sorted(files) == result["cutouts"]["names"]
    assert_cutouts({name: files[name] for name in result["cutouts"]["names"]}, result, RGB, mode)


def test_without_the_option_no_cutouts_are_written(lambda_handler: Any, s3: Any, bucket: str) -> None:
    put_and_deliver(lambda_handler, s3, bucket, "uploads/plain.jpg", {"confidence": "0"})
    assert "cutouts" not in read_json(s3, bucket, "results/plain.jpg.json")
    assert objects_under(s3, bucket, "results/plain.jpg.objects/") == {}


def test_a_bad_cutouts_value_is_an_error_record(lambda_handler: Any, s3: Any, bucket: str) -> None:
    processed = put_and_deliver(lambda_handler, s3, bucket, "uploads/bad.jpg", {"cutouts": "outline"})
    assert processed["outcome"] == "error_record"
    message = read_json(s3, bucket, "results/bad.jpg.error.json")["error"]["message"]
    assert "x-amz-meta-cutouts" in message


def test_a_key_too_long_for_its_cutouts_is_an_error_record_before_the_model_runs(
    lambda_handler: Any, s3: Any, bucket: str
) -> None:
    key = "uploads/" + "k" * 960 + ".jpg"  # its .json and .error.json fit in 1024 bytes; .objects/NN-... do not
    processed = put_and_deliver(lambda_handler, s3, bucket, key, {"confidence": "0", "cutouts": "mask"})
    assert processed["outcome"] == "error_record"
    record = read_json(s3, bucket, "results/" + key[len("uploads/") :] + ".error.json")
    assert "cut-outs" in record["error"]["message"] and "1024" in record["error"]["message"]


def test_batch_operations_user_arguments_write_cutouts(lambda_handler: Any, s3: Any, bucket: str) -> None:
    from test_batch_operations import batch_event

    s3.put_object(Bucket=bucket, Key="uploads/old.jpg", Body=PHOTO.read_bytes())
    event = batch_event(bucket, "uploads/old.jpg", schema="2.0", confidence="0", cutouts="box")
    answer = lambda_handler(event, FakeLambdaContext())
    assert answer["results"][0]["resultCode"] == "Succeeded", json.dumps(answer)
    result = read_json(s3, bucket, "results/old.jpg.json")
    files = objects_under(s3, bucket, "results/old.jpg.objects/")
    assert_cutouts({name: files[name] for name in result["cutouts"]["names"]}, result, RGB, "box")
