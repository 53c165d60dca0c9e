"""The distributed video run's test bed, shared by the S3/jobs test and the page's browser test: moto server with
its Step Functions executor (its own venv, ``infra/moto_sfn.py``) and S3, every Lambda invocation forwarded to
``lambda_handler`` in the test process, the deployed state machine file, and a clip made with OpenCV.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import cv2
import numpy as np
import pytest
from conftest import EVENTS, FakeLambdaContext
from moto_fixtures import AWS_ENVIRONMENT, AWS_OVERRIDES

from handler.core import storage
from handler.core.errors import CorruptVideo
from handler.core.settings import get_settings
from handler.s3 import video_tasks
from handler.video.chunk import run_chunk as real_run_chunk
from handler.video.plan import Chunk
from infra.moto_sfn import MotoSfnServer, WorkerShim, definition

BUCKET = "video-distributed"
ACCOUNT, REGION = "123456789012", "us-east-1"
WORKER = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:worker:live"
FRAMES, CHUNK_FRAMES = 6, 2  # three chunks: [0, 2), [2, 4), [4, end)
CLIP_FPS = 10.0
CONFIDENCE = "0.3"  # the random test model finds a few objects a frame above it
EXECUTION_TIMEOUT_S = 240


def make_clip(path: Path, frames: int = FRAMES) -> Path:
    """An MPEG-4 clip of a bright square crossing a textured background (OpenCV writes it: no shared files)."""
    rng = np.random.default_rng(7)
    background = rng.integers(0, 90, (120, 160, 3), dtype=np.uint8)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), CLIP_FPS, (160, 120))
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
        self.failing: dict[str, int] = {}
        self.notified: set[str] = set()  # upload key -> the chunk whose every invocation fails

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
        self.notified.add(key)
        event = json.loads((EVENTS / "s3-put.json").read_text(encoding="utf-8"))
        record = event["Records"][0]
        record["s3"]["bucket"]["name"] = BUCKET
        record["s3"]["object"] = {"key": key, "size": 1, "eTag": "", "sequencer": "0"}
        return self.shim.invoke(event)["objects"][0]

    def started(self, listed: dict[str, Any]) -> bool:
        """Whether a listed upload's event was delivered already (by ``notify``)."""
        return listed["Key"] in self.notified

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


@contextmanager
def running_cloud(lambda_handler: Any, log: Path) -> Iterator[Cloud]:
    """Moto's executor and S3 (one server, its own venv), the worker shim over ``lambda_handler``, the worker's
    settings (chunk length, state machine) and the AWS environment pointed at them; all undone after."""
    holder: dict[str, Cloud] = {}

    def invoke(event: dict[str, Any]) -> Any:
        return lambda_handler(event, FakeLambdaContext())

    def run_chunk(source: str, chunk: Chunk, *args: Any, **kwargs: Any) -> int:
        """The chunk worker's own run, except that the failing chunk's frames cannot be decoded (every try)."""
        if any(key in source and chunk.index == index for key, index in holder["cloud"].failing.items()):
            raise CorruptVideo(f"frames {chunk.start} to {chunk.stop} cannot be decoded (injected fault)")
        return real_run_chunk(source, chunk, *args, **kwargs)

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
