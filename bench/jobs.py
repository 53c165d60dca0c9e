"""The jobs flow end to end for one large photo: what it costs beyond segmenting the same bytes directly.

In one process: moto server (S3), the FastAPI app under uvicorn on a free loopback port, and the S3 side
(``lambda_handler`` given the upload's notification, events/s3-post-job.json, as soon as the upload is
listed). ``submit``'s client (handler/cli/submit.py) creates the job, uploads the file and polls. Then the
same bytes go through ``segment_bytes`` + the overlay directly, as the S3 side does, for the ratio.

Prints one JSON line: the phases in seconds (create, upload, upload to done, of which the S3 side), the
direct time, and ``flow_over_direct`` (whole flow / direct). Without an image it makes a 14-15 MB JPEG
(4032x3024 photo-like noise at quality 98).

Run (about a minute on 2 cores with the test model):
    SEG_MODEL_PATH=.cache/models/test_model.pkl .venv/bin/python bench/jobs.py [IMAGE]
"""

from __future__ import annotations

import json
import os
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote_plus

import numpy as np
from moto.server import ThreadedMotoServer
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
BUCKET = "bench-jobs"
# What the handler and its logger and metrics read of Lambda's context object: the worker's 600 s.
CONTEXT = SimpleNamespace(
    function_name="bench-worker",
    aws_request_id="bench",
    memory_limit_in_mb=3008,
    invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:bench-worker",
    get_remaining_time_in_millis=lambda: 600_000,
)


def photo_like(path: Path) -> Path:
    rng = np.random.default_rng(1)
    y, x = np.mgrid[0:3024, 0:4032]
    base = np.stack([x * 255 // 4032, y * 255 // 3024, (x + y) * 255 // 7056], axis=2)
    Image.fromarray(np.clip(base + rng.normal(0, 40, base.shape), 0, 255).astype(np.uint8)).save(path, quality=98)
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def main() -> None:
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": f"http://{host}:{port}",
            "SEG_JOBS_BUCKET": BUCKET,
            "SEG_MAX_IMAGE_BYTES": os.environ.get("SEG_MAX_IMAGE_BYTES", str(25 * 1024 * 1024)),
            "POWERTOOLS_LOG_LEVEL": "WARNING",
        }
    )
    sys.path.insert(0, str(REPO))
    import httpx
    import uvicorn

    from handler.api import app
    from handler.cli.submit import JobsClient
    from handler.core import storage
    from handler.core.settings import get_settings
    from handler.engine import Outputs, segment_bytes
    from handler.lambda_function import lambda_handler
    from handler.model import get_segmenter

    image = Path(sys.argv[1]) if len(sys.argv) > 1 else photo_like(Path(tempfile.mkdtemp()) / "photo.jpg")
    s3 = storage.s3_client()
    s3.create_bucket(Bucket=BUCKET)
    api_port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=api_port, lifespan="off", log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    worker: dict[str, Any] = {}

    def s3_side() -> None:
        """Lambda's S3 trigger: the upload's notification through the handler as soon as it is stored."""
        while not (listed := s3.list_objects_v2(Bucket=BUCKET, Prefix="uploads/jobs/").get("Contents")):
            time.sleep(0.1)
        event = json.loads((REPO / "events" / "s3-post-job.json").read_text())
        record = event["Records"][0]["s3"]
        record["bucket"]["name"], record["object"]["key"] = BUCKET, quote_plus(listed[0]["Key"], safe="/")
        started = time.perf_counter()
        (worker["processed"],) = lambda_handler(event, CONTEXT)["objects"]
        worker["s"] = time.perf_counter() - started

    s3_thread = threading.Thread(target=s3_side, daemon=True)
    s3_thread.start()
    with httpx.Client(timeout=httpx.Timeout(60, write=300)) as http:
        client = JobsClient(f"http://127.0.0.1:{api_port}", http)
        started = time.perf_counter()
        job = client.create(image, {"overlay": True})
        created = time.perf_counter()
        client.upload(job, image)
        uploaded = time.perf_counter()
        state = client.wait(job, 900)
        done = time.perf_counter()
    server.should_exit = True
    s3_thread.join()  # the result is visible a moment before the handler returns

    data = image.read_bytes()
    direct_started = time.perf_counter()
    settings = get_settings()
    # The S3 side writes the overlay too.
    outputs = Outputs(overlay=True, overlay_max_side=settings.overlay_max_side)
    segmented = segment_bytes(data, get_segmenter(), settings, outputs=outputs)
    direct = time.perf_counter() - direct_started
    moto.stop()
    print(
        json.dumps(
            {
                "file_bytes": len(data),
                "pixels": f"{segmented.rgb.shape[1]}x{segmented.rgb.shape[0]}",
                "create_s": round(created - started, 2),
                "upload_s": round(uploaded - created, 2),
                "upload_to_done_s": round(done - uploaded, 2),
                "s3_side_s": round(worker["s"], 2),
                "s3_side_timings_ms": worker["processed"]["timings_ms"],
                "flow_s": round(done - started, 2),
                "direct_s": round(direct, 2),
                "flow_over_direct": round((done - started) / direct, 2),
                "status": state["status"],
            }
        )
    )


if __name__ == "__main__":
    main()
