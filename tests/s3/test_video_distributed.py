"""The distributed video run, offline and for real: the state machine file that template.yaml deploys, run by
moto's Step Functions executor (its own venv, ``infra/moto_sfn.py``) with moto's S3 in the same server, every
Lambda invocation forwarded to ``lambda_handler`` in this process. A clip made here goes in as an S3 upload:
its results equal the local command's, tracks included; a chunk that fails every retry fails the execution
and leaves an error record and no result; a truncated clip is refused before any chunk runs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import cv2
import httpx
import numpy as np
import pytest
from conftest import EVENTS, FakeLambdaContext
from moto_fixtures import AWS_ENVIRONMENT, AWS_OVERRIDES

from handler.core import storage
from handler.core.errors import CorruptVideo
from handler.core.settings import get_settings
from handler.engine import RequestOptions
from handler.s3 import video_tasks
from handler.video import segment_video
from handler.video.chunk import run_chunk as real_run_chunk
from handler.video.plan import Chunk
from infra.moto_sfn import MotoSfnServer, WorkerShim, definition

pytestmark = pytest.mark.slow

BUCKET = "video-distributed"
ACCOUNT, REGION = "123456789012", "us-east-1"
WORKER = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:worker:live"
FRAMES, CHUNK_FRAMES = 6, 2  # three chunks: [0, 2), [2, 4), [4, end)
CONFIDENCE = "0.3"  # the random test model finds a few objects a frame above it
EXECUTION_TIMEOUT_S = 240


def make_clip(path: Path, frames: int = FRAMES) -> Path:
    """An MPEG-4 clip of a bright square crossing a textured background (OpenCV writes it: no shared files)."""
    rng = np.random.default_rng(7)
    background = rng.integers(0, 90, (120, 160, 3), dtype=np.uint8)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), 10.0, (160, 120))
    for index in range(frames):
        frame = background.copy()
        cv2.rectangle(frame, (10 + 8 * index, 30), (60 + 8 * index, 90), (40, 200, 250), -1)
        writer.write(frame)
    writer.release()
    return path


class Cloud:
    def __init__(self, shim: WorkerShim, endpoint: str, configure: Callable[[str], None]) -> None:
        self.shim, self.configure, self.machine = shim, configure, ""
        self.s3 = boto3.client("s3", endpoint_url=endpoint)
        self.sfn = boto3.client("stepfunctions", endpoint_url=endpoint)
        self.failing: dict[str, int] = {}  # upload key -> the chunk whose every invocation fails

    def new_machine(self, name: str) -> str:
        """A state machine from the deployed file, named in the worker's settings. One per test: moto's executor
        cannot start a second execution of a machine whose Distributed Map has run (its deepcopy of the machine
        meets a lock), which AWS of course can."""
        self.machine = self.sfn.create_state_machine(
            name=name,
            definition=definition({"WorkerFunctionArn": WORKER, "MaxConcurrency": "2"}),
            roleArn=f"arn:aws:iam::{ACCOUNT}:role/video",
        )["stateMachineArn"]
        self.configure(self.machine)
        return self.machine

    def create_job(self, client: Any, name: str) -> tuple[str, str]:
        """``POST /jobs`` for a video: the job id and the key its presigned POST names."""
        created = client.post("/jobs", json={"filename": name, "content_type": "video/mp4", "confidence": 0.3})
        assert created.status_code == 201, created.text
        body = created.json()
        assert body["upload"]["fields"]["Content-Type"] == "video/mp4"
        return body["job_id"], body["upload"]["fields"]["key"]

    def upload(self, key: str, body: bytes) -> dict[str, Any]:
        """Put the clip and deliver its S3 event to the worker, as S3 would; the worker's answer."""
        self.s3.put_object(
            Bucket=BUCKET, Key=key, Body=body, ContentType="video/mp4", Metadata={"confidence": CONFIDENCE}
        )
        return self.notify(key)

    def notify(self, key: str) -> dict[str, Any]:
        event = json.loads((EVENTS / "s3-put.json").read_text(encoding="utf-8"))
        record = event["Records"][0]
        record["s3"]["bucket"]["name"] = BUCKET
        record["s3"]["object"] = {"key": key, "size": 1, "eTag": "", "sequencer": "0"}
        return self.shim.invoke(event)["objects"][0]

    def wait(self, execution: str) -> dict[str, Any]:
        deadline = time.monotonic() + EXECUTION_TIMEOUT_S
        while time.monotonic() < deadline:
            described = self.sfn.describe_execution(executionArn=execution)
            if described["status"] != "RUNNING":
                return described
            time.sleep(0.5)
        raise AssertionError(f"{execution} still running after {EXECUTION_TIMEOUT_S} s")

    def read(self, key: str) -> bytes | None:
        try:
            return self.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        except self.s3.exceptions.NoSuchKey:
            return None


@pytest.fixture
def api(cloud: Cloud, client: Any) -> Iterator[Any]:
    """The HTTP app with SEG_JOBS_BUCKET naming the test's bucket (served by the same moto server)."""
    from handler.api import app

    settings = get_settings()
    app.dependency_overrides[get_settings] = lambda: settings.model_copy(update={"jobs_bucket": BUCKET})
    yield client
    app.dependency_overrides.pop(get_settings, None)


@pytest.fixture(scope="module")
def cloud(lambda_handler: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    holder: dict[str, Cloud] = {}

    def invoke(event: dict[str, Any]) -> Any:
        return lambda_handler(event, FakeLambdaContext())

    def run_chunk(source: str, chunk: Chunk, *args: Any, **kwargs: Any) -> int:
        """The chunk worker's own run, except that the failing chunk's frames cannot be decoded (every try)."""
        if any(key in source and chunk.index == index for key, index in holder["cloud"].failing.items()):
            raise CorruptVideo(f"frames {chunk.start} to {chunk.stop} cannot be decoded (injected fault)")
        return real_run_chunk(source, chunk, *args, **kwargs)

    log = tmp_path_factory.mktemp("moto") / "moto-sfn.log"
    with WorkerShim(invoke) as shim, MotoSfnServer(shim.url, log) as server, pytest.MonkeyPatch.context() as patch:
        for name, value in {**AWS_ENVIRONMENT, "AWS_ENDPOINT_URL": server.endpoint}.items():
            patch.setenv(name, value)
        for name in AWS_OVERRIDES:
            patch.delenv(name, raising=False)
        storage.s3_client.cache_clear()
        settings = get_settings()
        patch.setattr(settings, "video_chunk_frames", CHUNK_FRAMES)
        patch.setattr(video_tasks, "run_chunk", run_chunk)
        configure = lambda arn: patch.setattr(settings, "video_state_machine_arn", arn)  # noqa: E731
        holder["cloud"] = Cloud(shim, server.endpoint, configure)
        holder["cloud"].s3.create_bucket(Bucket=BUCKET)
        try:
            yield holder["cloud"]
        finally:
            storage.s3_client.cache_clear()


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
