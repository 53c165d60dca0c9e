"""``python -m handler submit`` against the app served for real (uvicorn on a free port) and moto server; the
S3 trigger is ``lambda_handler`` given each upload's notification while the client waits between polls."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import pytest
import uvicorn
from conftest import IMAGES, FakeLambdaContext, read_event
from PIL import Image

from handler.api import app
from handler.cli import main
from handler.cli.submit import submit_files
from handler.settings import get_settings

PHOTO = IMAGES / "astronaut.jpg"
EXAMPLE_KEY = "uploads/jobs/5d41402abc4b2a76b9719d911017c592/astronaut.jpg"


@pytest.fixture
def api(bucket: str, settings: Any, segmenter: Any) -> Iterator[str]:
    """The FastAPI app under uvicorn on a free loopback port, jobs in ``bucket``, images up to 400 kB."""
    app.dependency_overrides[get_settings] = lambda: settings.model_copy(
        update={"jobs_bucket": bucket, "max_image_bytes": 400_000}
    )
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                pytest.fail("uvicorn did not start")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        app.dependency_overrides.clear()


class S3Trigger:
    """Stands in for the client's sleep: each new upload's S3 notification goes through ``lambda_handler``."""

    def __init__(self, lambda_handler: Any, s3: Any, bucket: str) -> None:
        self.lambda_handler, self.s3, self.bucket = lambda_handler, s3, bucket
        self.delivered: list[str] = []
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        listed = self.s3.list_objects_v2(Bucket=self.bucket, Prefix="uploads/jobs/").get("Contents", [])
        for key in sorted(item["Key"] for item in listed if item["Key"] not in self.delivered):
            replace = {"pointrend-uploads-example": self.bucket, EXAMPLE_KEY: quote_plus(key, "/")}
            self.lambda_handler(read_event("s3-post-job.json", **replace), FakeLambdaContext())
            self.delivered.append(key)


def test_submit_writes_results_and_overlays_and_collects_failures(
    api: str, lambda_handler: Any, s3: Any, bucket: str, tmp_path: Path
) -> None:
    notes = tmp_path / "notes.jpg"
    notes.write_text("not a photo")
    trigger = S3Trigger(lambda_handler, s3, bucket)
    out = tmp_path / "out"
    options = {"confidence": 0, "overlay": True}
    report = submit_files(api, [PHOTO, notes], out, options, sleep=trigger)
    assert report.succeeded == 1 and list(report.failed) == [notes]
    assert report.failed[notes].startswith("not_an_image: ")
    assert sorted(path.name for path in out.iterdir()) == ["astronaut.json", "astronaut.png"]
    result = json.loads((out / "astronaut.json").read_text())
    width, height = Image.open(PHOTO).size
    assert result["mask_shape"] == [height, width, len(result["class_names"])] and result["class_names"]
    assert Image.open(out / "astronaut.png").size == (width, height)
    assert trigger.waits[0] == 1.0 and len(trigger.delivered) == 2


def test_submit_exits_1_with_each_error_code_and_message(api: str, tmp_path: Path, capsys: Any) -> None:
    big = tmp_path / "big.jpg"
    big.write_bytes(b"\xff" * 400_001)
    code = main(["submit", "--api", api, str(big), str(tmp_path / "missing.jpg"), "--out", str(tmp_path / "out")])
    summary = capsys.readouterr().out
    assert code == 1
    assert f"FAILED {big}: image_too_large: the file is 400001 bytes; the limit is 400000 bytes" in summary
    assert "missing.jpg: FileNotFoundError" in summary
    code = main(["submit", "--api", api, str(PHOTO), "--classes", "unicorn", "--out", str(tmp_path / "out")])
    assert code == 1 and "invalid_request: unknown class names ['unicorn']" in capsys.readouterr().out


def test_submit_to_an_unreachable_api_reports_the_connection_error(tmp_path: Path, segmenter: Any, capsys: Any) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code = main(["submit", "--api", f"http://127.0.0.1:{port}", str(PHOTO), "--out", str(tmp_path)])
    assert code == 1 and "ConnectError" in capsys.readouterr().out
