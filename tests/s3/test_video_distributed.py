"""The distributed video run, offline and for real: the state machine file that template.yaml deploys, run by
moto's Step Functions executor (its own venv, ``infra/moto_sfn.py``) with moto's S3 in the same server, every
Lambda invocation forwarded to ``lambda_handler`` in this process. A clip made here goes in as an S3 upload:
its results equal the local command's, tracks included; a chunk that fails every retry fails the execution
and leaves an error record and no result; a truncated clip is refused before any chunk runs.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import httpx
import pytest
from conftest import serve_app
from video_cloud import BUCKET, CONFIDENCE, FRAMES, Cloud, make_clip, running_cloud

from handler.cli.submit import submit_files
from handler.core.settings import get_settings
from handler.engine import RequestOptions
from handler.video import segment_video

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cloud(lambda_handler: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    with running_cloud(lambda_handler, tmp_path_factory.mktemp("moto") / "moto-sfn.log") as cloud:
        yield cloud


@pytest.fixture
def api(cloud: Cloud, client: Any) -> Iterator[Any]:
    """The HTTP app with SEG_JOBS_BUCKET naming the test's bucket (served by the same moto server)."""
    from handler.api import app

    settings = get_settings()
    app.dependency_overrides[get_settings] = lambda: settings.model_copy(update={"jobs_bucket": BUCKET})
    yield client
    app.dependency_overrides.pop(get_settings, None)


def without_timings(line: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in line.items() if name != "timings_ms"}


def test_distributed_run_equals_the_local_command(cloud: Cloud, tmp_path: Path):
    cloud.new_machine("video-clip")
    clip = make_clip(tmp_path / "clip.mp4")
    started = time.perf_counter()
    answer = cloud.upload("uploads/clip.mp4", clip.read_bytes())
    assert answer["outcome"] == "video_started", answer
    again = cloud.notify("uploads/clip.mp4")  # S3 delivers at least once: the repeat starts nothing
    assert again["outcome"] == "video_started" and "already" in again["reason"], again
    assert len(cloud.sfn.list_executions(stateMachineArn=cloud.machine)["executions"]) == 1
    done = cloud.wait(answer["outputs"][0])
    print(f"distributed run of {FRAMES} frames in 3 chunks: {time.perf_counter() - started:.1f} s wall")
    assert done["status"] == "SUCCEEDED", done

    local = segment_video(clip, tmp_path / "local", RequestOptions(confidence=float(CONFIDENCE)))
    expected = [json.loads(line) for line in local.written[0].read_text().splitlines()]
    body = cloud.read("results/clip.mp4.jsonl")
    assert body is not None
    got = [json.loads(line) for line in body.decode().splitlines()]
    assert [line["frame"] for line in got] == list(range(FRAMES))
    assert [without_timings(line) for line in got] == [without_timings(line) for line in expected]
    assert sum(len(line["track_ids"]) for line in got) > 0, "no objects: the tracks would not be tested"

    overlay = tmp_path / "overlay.webm"
    overlay.write_bytes(cloud.read("results/clip.mp4.webm") or b"")
    capture = cv2.VideoCapture(str(overlay))
    decoded = 0
    while capture.read()[0]:
        decoded += 1
    assert decoded == FRAMES
    tasks = [event.get("video_task") for event in cloud.shim.invocations if "video_task" in event]
    assert tasks.count("probe") == 1 and tasks.count("chunk") == 3 and tasks.count("assemble") == 1


def test_a_chunk_failing_every_retry_fails_the_job_and_writes_no_result(cloud: Cloud, api: Any, tmp_path: Path):
    cloud.new_machine("video-broken")
    job_id, key = cloud.create_job(api, "broken.mp4")
    cloud.failing["broken.mp4"] = 1
    answer = cloud.upload(key, make_clip(tmp_path / "broken.mp4").read_bytes())
    done = cloud.wait(answer["outputs"][0])
    assert done["status"] == "FAILED", done
    outputs = "results/" + key.removeprefix("uploads/")
    assert cloud.read(outputs + ".jsonl") is None and cloud.read(outputs + ".webm") is None
    job = api.get(f"/jobs/{job_id}").json()
    assert job["status"] == "failed" and job["error"]["code"] == "video_failed", job
    assert "chunk 1 (frames 2 to frame 4)" in job["error"]["message"]
    assert "corrupt_video: frames 2 to 4 cannot be decoded (injected fault)" in job["error"]["message"]
    attempts = [
        event
        for event in cloud.shim.invocations
        if event.get("video_task") == "chunk" and event["video"]["key"] == key and event["chunk"]["index"] == 1
    ]
    assert len(attempts) == 3  # the first try and the definition's two retries


def test_a_video_job_shows_progress_then_its_result_and_overlay(cloud: Cloud, api: Any, tmp_path: Path):
    cloud.new_machine("video-job")
    job_id, key = cloud.create_job(api, "clip.mp4")
    assert api.get(f"/jobs/{job_id}").json()["status"] == "waiting_for_upload"
    execution = cloud.upload(key, make_clip(tmp_path / "clip.mp4").read_bytes())["outputs"][0]
    seen: list[dict[str, Any]] = []
    while cloud.sfn.describe_execution(executionArn=execution)["status"] == "RUNNING":
        seen.append(api.get(f"/jobs/{job_id}").json())
        time.sleep(0.3)
    progress = [answer["progress"] for answer in seen if "progress" in answer]
    assert all(answer["status"] == "processing" for answer in seen[:-1])
    assert progress and all(step["frames_total"] == FRAMES and step["chunks"] == 3 for step in progress), seen
    assert [step["frames_done"] for step in progress] == sorted(step["frames_done"] for step in progress)
    job = api.get(f"/jobs/{job_id}").json()
    assert job["status"] == "done", job
    lines = httpx.get(job["result_url"]).text.splitlines()
    assert [json.loads(line)["frame"] for line in lines] == list(range(FRAMES))
    overlay = httpx.get(job["video_url"])
    assert overlay.status_code == 200 and overlay.content[:4] == b"\x1a\x45\xdf\xa3"  # EBML: WebM


def test_a_truncated_clip_is_refused_before_any_chunk(cloud: Cloud, tmp_path: Path):
    cloud.new_machine("video-cut")
    clip = make_clip(tmp_path / "cut.mp4").read_bytes()
    answer = cloud.upload("uploads/cut.mp4", clip[: len(clip) // 3])
    done = cloud.wait(answer["outputs"][0])
    assert done["status"] == "FAILED", done
    record = json.loads(cloud.read("results/cut.mp4.error.json") or b"{}")
    assert record["error"]["code"] in ("corrupt_video", "empty_video", "unsupported_video"), record
    assert not any(
        event.get("video_task") == "chunk" and event["video"]["key"] == "uploads/cut.mp4"
        for event in cloud.shim.invocations
    )
    assert cloud.read("results/cut.mp4.jsonl") is None


def test_submit_takes_a_video(cloud: Cloud, api: Any, tmp_path: Path):
    """``python -m handler submit clip.mp4``: a video job, its JSON Lines and overlay saved beside the others'."""
    from handler.api import app

    cloud.new_machine("video-submit")
    clip = make_clip(tmp_path / "clip.mp4")
    report: list[Any] = []
    with serve_app(app) as url:
        options = {"confidence": float(CONFIDENCE)}
        client = threading.Thread(target=lambda: report.append(submit_files(url, [clip], tmp_path / "out", options)))
        client.start()
        deadline = time.monotonic() + 120
        uploaded: list[dict[str, Any]] = []
        while not uploaded and time.monotonic() < deadline:
            listed = cloud.s3.list_objects_v2(Bucket=BUCKET, Prefix="uploads/jobs/").get("Contents", [])
            uploaded = [item for item in listed if item["Key"].endswith("/clip.mp4") and not cloud.started(item)]
            time.sleep(0.2)
        assert uploaded, "submit uploaded nothing"
        cloud.notify(uploaded[0]["Key"])  # the S3 trigger, in this process
        client.join(timeout=300)
    (done,) = report
    assert done.succeeded == 1 and not done.failed, done.failed
    lines = (tmp_path / "out" / "clip.mp4.jsonl").read_text().splitlines()
    assert [json.loads(line)["frame"] for line in lines] == list(range(FRAMES))
    assert (tmp_path / "out" / "clip.mp4.webm").read_bytes()[:4] == b"\x1a\x45\xdf\xa3"
