"""The EMF metrics the handler prints: parsed from stdout after real invocations (HTTP, S3 through moto
server, failures), checked against the embedded metric format's structure, then for their values."""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest
from aws_lambda_powertools.metrics.provider.cold_start import reset_cold_start_flag
from conftest import IMAGES, FakeLambdaContext, read_event

from handler.api.admission import get_admission
from handler.core import metrics, storage
from handler.s3 import ObjectsFailed

BUCKET_IN_EVENTS = "pointrend-uploads-example"


def emf_blobs(stdout: str) -> list[dict[str, Any]]:
    """The EMF lines among the log lines, each checked against the format (one namespace, dimension names
    and metric names that all have top-level values); each metric's values as a list."""
    blobs = []
    for line in stdout.splitlines():
        if not line.startswith("{") or '"_aws"' not in line:
            continue
        blob = json.loads(line)
        (directive,) = blob["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == metrics.NAMESPACE
        (dimensions,) = directive["Dimensions"]
        assert all(isinstance(blob[name], str) for name in dimensions)
        assert all(name in blob for name in (m["Name"] for m in directive["Metrics"]))
        blob["dimensions"] = dimensions
        blob["metric_units"] = {m["Name"]: m["Unit"] for m in directive["Metrics"]}
        for name in blob["metric_units"]:  # EMF takes one value or a list of them
            blob[name] = blob[name] if isinstance(blob[name], list) else [blob[name]]
        blobs.append(blob)
    return blobs


def blob_with(blobs: list[dict[str, Any]], metric: str, **dimensions: str) -> dict[str, Any]:
    found = [b for b in blobs if metric in b and all(b.get(k) == v for k, v in dimensions.items())]
    assert len(found) == 1, (metric, dimensions, blobs)
    return found[0]


def test_an_http_request_prints_its_image_metrics(lambda_handler, capsys):
    event = read_event("apigw-http-multipart.json", **{'"rawQueryString": ""': '"rawQueryString": "confidence=0"'})
    capsys.readouterr()
    response = lambda_handler(event, FakeLambdaContext())
    assert response["statusCode"] == 200
    body = json.loads(response["body"])
    blob = blob_with(emf_blobs(capsys.readouterr().out), "ImagesSegmented", entry_point="http")
    assert sorted(blob["dimensions"]) == ["entry_point", "service"]
    assert blob["service"] == metrics.SERVICE
    assert blob["ImagesSegmented"] == [1.0]
    assert blob["ObjectsFound"] == [len(body["class_names"])]
    width, height = body["image"]["width"], body["image"]["height"]
    assert blob["ImageMegapixels"] == pytest.approx([width * height / 1e6])
    for name, stage in (("DecodeLatency", "decode"), ("ModelLatency", "model"), ("TotalLatency", "total")):
        assert blob["metric_units"][name] == "Milliseconds"
        assert blob[name] == pytest.approx([body["timings_ms"][stage]], abs=0.05)  # the body rounds to 0.1 ms
    assert blob["DecodeLatency"][0] < blob["TotalLatency"][0] and blob["ModelLatency"][0] < blob["TotalLatency"][0]


def test_a_refused_upload_is_counted_by_its_error_code(lambda_handler, capsys):
    capsys.readouterr()
    response = lambda_handler(read_event("apigw-http-bad-image.json"), FakeLambdaContext())
    code = json.loads(response["body"])["error"]["code"]
    blobs = emf_blobs(capsys.readouterr().out)
    blob = blob_with(blobs, "Errors", entry_point="http", error_code=code)
    assert sorted(blob["dimensions"]) == ["entry_point", "error_code", "service"]
    assert blob["Errors"] == [1.0]
    assert not [b for b in blobs if "ImagesSegmented" in b or "Refused" in b]


def test_busy_is_an_error_and_a_refusal(lambda_handler, capsys, monkeypatch):
    monkeypatch.setattr(get_admission(), "capacity", 0)
    capsys.readouterr()
    response = lambda_handler(read_event("apigw-http-multipart.json"), FakeLambdaContext())
    assert response["statusCode"] == 503
    blobs = emf_blobs(capsys.readouterr().out)
    assert blob_with(blobs, "Errors", entry_point="http", error_code="busy")["Errors"] == [1.0]
    assert blob_with(blobs, "Refused", entry_point="http")["Refused"] == [1.0]


JOB_KEY = "uploads/jobs/5d41402abc4b2a76b9719d911017c592/astronaut.jpg"  # as in events/s3-post-job.json


@pytest.mark.parametrize(
    ("event_file", "key", "entry_point"),
    [("s3-put.json", "uploads/astronaut.jpg", "s3"), ("s3-post-job.json", JOB_KEY, "jobs")],
)
def test_an_s3_object_prints_its_image_metrics(s3, bucket, lambda_handler, capsys, event_file, key, entry_point):
    s3.put_object(Bucket=bucket, Key=key, Body=(IMAGES / "astronaut.jpg").read_bytes())
    event = read_event(event_file, **{BUCKET_IN_EVENTS: bucket})
    capsys.readouterr()
    answer = lambda_handler(event, FakeLambdaContext())
    assert [item["outcome"] for item in answer["objects"]] == ["segmented"]
    blob = blob_with(emf_blobs(capsys.readouterr().out), "ImagesSegmented", entry_point=entry_point)
    assert blob["ObjectsFound"] == [answer["objects"][0]["objects"]]
    assert blob["TotalLatency"][0] > 0


def test_a_bad_s3_object_is_counted_by_its_error_code(s3, bucket, lambda_handler, capsys):
    s3.put_object(Bucket=bucket, Key="uploads/astronaut.jpg", Body=b"not an image")
    capsys.readouterr()
    answer = lambda_handler(read_event("s3-put.json", **{BUCKET_IN_EVENTS: bucket}), FakeLambdaContext())
    code = answer["objects"][0]["reason"].split(":")[0]
    blob = blob_with(emf_blobs(capsys.readouterr().out), "Errors", entry_point="s3", error_code=code)
    assert blob["Errors"] == [1.0]


def test_a_failed_invocation_still_prints_its_metrics(s3, bucket, lambda_handler, capsys):
    s3.put_object(Bucket=bucket, Key="uploads/astronaut.jpg", Body=(IMAGES / "astronaut.jpg").read_bytes())
    capsys.readouterr()
    with pytest.raises(ObjectsFailed):  # too little time left: raised so that Lambda retries
        lambda_handler(read_event("s3-put.json", **{BUCKET_IN_EVENTS: bucket}), FakeLambdaContext(remaining_ms=200))
    blobs = emf_blobs(capsys.readouterr().out)
    assert blob_with(blobs, "Errors", entry_point="s3", error_code="out_of_time")["Errors"] == [1.0]
    assert blob_with(blobs, "Refused", entry_point="s3")["Refused"] == [1.0]


BATCH_KEY_IN_EVENT = "uploads/Summer+2024/caf%C3%A9+%C3%BCber%2Balles+100%25.jpg"


def test_a_batch_operations_task_prints_its_image_metrics(s3, bucket, lambda_handler, capsys):
    s3.put_object(Bucket=bucket, Key="uploads/astronaut.jpg", Body=(IMAGES / "astronaut.jpg").read_bytes())
    event = read_event("s3-batch-v2.json", **{BUCKET_IN_EVENTS: bucket, BATCH_KEY_IN_EVENT: "uploads/astronaut.jpg"})
    capsys.readouterr()
    answer = lambda_handler(event, FakeLambdaContext())
    assert [result["resultCode"] for result in answer["results"]] == ["Succeeded"]
    blob = blob_with(emf_blobs(capsys.readouterr().out), "ImagesSegmented", entry_point="batch")
    assert blob["ImagesSegmented"] == [1.0]


def test_a_batch_task_s3_cannot_serve_counts_as_a_storage_error(bucket, lambda_handler, capsys, monkeypatch):
    event = read_event("s3-batch-v2.json", **{BUCKET_IN_EVENTS: bucket, BATCH_KEY_IN_EVENT: "uploads/astronaut.jpg"})
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # discard port: connection refused
    storage.s3_client.cache_clear()
    capsys.readouterr()
    try:
        (result,) = lambda_handler(event, FakeLambdaContext())["results"]
    finally:
        monkeypatch.undo()
        storage.s3_client.cache_clear()
    assert result["resultCode"] == "TemporaryFailure"  # Batch Operations retries it
    blobs = emf_blobs(capsys.readouterr().out)
    assert blob_with(blobs, "Errors", entry_point="batch", error_code="storage_error")["Errors"] == [1.0]


def test_a_missing_object_counts_by_its_error_code(bucket, lambda_handler, capsys):
    event = read_event("s3-batch-v2.json", **{BUCKET_IN_EVENTS: bucket, BATCH_KEY_IN_EVENT: "uploads/absent.jpg"})
    capsys.readouterr()
    (result,) = lambda_handler(event, FakeLambdaContext())["results"]
    assert (result["resultCode"], result["resultString"].split(":")[0]) == ("PermanentFailure", "not_found")
    blobs = emf_blobs(capsys.readouterr().out)
    assert blob_with(blobs, "Errors", entry_point="batch", error_code="not_found")["Errors"] == [1.0]


def test_cold_start_is_counted_on_the_first_invocation_only(lambda_handler, capsys):
    reset_cold_start_flag()  # as in a new execution environment
    capsys.readouterr()
    context = FakeLambdaContext(function_name="pointrend-http")
    for _ in range(2):
        assert lambda_handler(read_event("apigw-http-healthz.json"), context)["statusCode"] == 200
    cold = [blob for blob in emf_blobs(capsys.readouterr().out) if "ColdStart" in blob]
    assert len(cold) == 1
    assert (cold[0]["ColdStart"], cold[0]["function_name"]) == ([1.0], "pointrend-http")


def test_the_local_server_prints_metrics_only_when_asked(client, settings, capsys, monkeypatch):
    files = {"image": ("astronaut.jpg", (IMAGES / "astronaut.jpg").read_bytes(), "image/jpeg")}
    capsys.readouterr()
    assert client.post("/segment", files=files).status_code == 200
    assert emf_blobs(capsys.readouterr().out) == []
    assert not metrics.recorder.recording
    monkeypatch.setattr(settings, "metrics", True)
    assert client.post("/segment", files=files).status_code == 200
    refused = client.post("/segment", content=b"nope", headers={"content-type": "image/jpeg"})
    blobs = emf_blobs(capsys.readouterr().out)
    assert blob_with(blobs, "ImagesSegmented", entry_point="http")["ImagesSegmented"] == [1.0]
    assert blob_with(blobs, "Errors", error_code=refused.json()["error"]["code"])["Errors"] == [1.0]


def test_seg_metrics_false_leaves_the_handler_as_it_is(settings, monkeypatch):
    def handler(event: Any, context: Any) -> None:
        return None

    monkeypatch.setattr(settings, "metrics", False)
    assert metrics.invocation(handler) is handler
    monkeypatch.setattr(settings, "metrics", None)
    assert metrics.invocation(handler) is not handler


def test_recording_and_printing_make_no_network_call(monkeypatch, capsys):
    """EMF is a log line that CloudWatch Logs turns into metrics: no client, no connection (init, VPCs)."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a network connection was attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    with metrics.scope():
        metrics.record_error("s3", "not_an_image")
    assert blob_with(emf_blobs(capsys.readouterr().out), "Errors", entry_point="s3")["Errors"] == [1.0]


def test_a_snapstart_restore_is_counted_as_restores_not_cold_start(lambda_handler, capsys):
    reset_cold_start_flag()  # the snapshot's init leaves Powertools' flag set: no invocation ran in it
    metrics.mark_restored()  # what the after-restore hook does
    capsys.readouterr()
    context = FakeLambdaContext(function_name="pointrend-http")
    for _ in range(2):
        assert lambda_handler(read_event("apigw-http-healthz.json"), context)["statusCode"] == 200
    blobs = emf_blobs(capsys.readouterr().out)
    assert not [blob for blob in blobs if "ColdStart" in blob]
    restores = [blob for blob in blobs if "Restores" in blob]
    assert len(restores) == 1
    assert (restores[0]["Restores"], restores[0]["function_name"]) == ([1.0], "pointrend-http")
