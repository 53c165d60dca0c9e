"""Runs through the real entry point on a chosen set of CPUs, for bench/cpu_scaling.py and bench/memory_sizes.py.

Each run is a fresh interpreter under ``taskset -c <cpus>`` that imports ``handler.lambda_function`` (Lambda's
init, timed) with ``SEG_TORCH_THREADS`` unset, so the threads follow the CPUs as in a deployed function, then
sends API Gateway HTTP API events (``POST /segment``, multipart, as bench/engine.py does) through
``lambda_handler`` and prints one JSON line: the init's seconds, and per request its wall seconds, the
process's CPU seconds (all threads) and the answer's ``timings_ms`` (decode, model, masks, total).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PHOTO = REPO / "tests" / "images" / "astronaut.jpg"


def photo_jpeg(width: int, height: int, source: Path = PHOTO, quality: int = 90) -> bytes:
    """A test photo resized to ``width`` x ``height`` (area or cubic interpolation), as JPEG bytes."""
    import cv2

    image = cv2.imread(str(source))
    shrink = width * height < image.shape[0] * image.shape[1]
    resized = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
    ok, jpeg = cv2.imencode(".jpg", resized, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return jpeg.tobytes()


def run_on_cpus(
    cpus: str,
    model: Path,
    requests: list[dict[str, Any]],
    rounds: int,
    warmup: bool = True,
    stages: Path | None = None,
) -> dict:
    """In a fresh interpreter on ``cpus`` (taskset list, e.g. "0" or "0,1"): the init, then ``rounds`` rounds
    of ``requests`` (each ``{"label", "jpeg" (a file path), "query"}``), after one untimed run of the first
    request when ``warmup``; with ``stages`` (a JPEG), also the model's four stages on it. Returns the child's
    report."""
    taskset = shutil.which("taskset")
    if taskset is None:
        raise SystemExit("taskset (util-linux) is needed to run on a chosen set of CPUs")
    env = {k: v for k, v in os.environ.items() if k != "SEG_TORCH_THREADS"}
    env |= {"SEG_MODEL_PATH": str(model), "SEG_DETECTION_SPEED": "normal", "PYTHONPATH": str(REPO)}
    env.pop("SEG_CONFIDENCE", None)  # the default confidence, as users get it
    spec = json.dumps({"requests": requests, "rounds": rounds, "warmup": warmup, "stages": str(stages or "")})
    out = subprocess.run(
        [taskset, "-c", cpus, sys.executable, __file__, spec],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode:
        raise SystemExit(f"the run on CPUs {cpus} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _child(spec: dict[str, Any]) -> dict[str, Any]:
    started = time.perf_counter()
    from handler.lambda_function import lambda_handler  # Lambda's init: imports and the model load

    init_s = time.perf_counter() - started
    import torch

    from bench.engine_workers import BenchContext
    from events.make_http_events import http_api_v2, multipart
    from handler.core.cpus import available_cpus

    events = {}
    for request in spec["requests"]:
        body = Path(request["jpeg"]).read_bytes()
        events[request["label"]] = http_api_v2(
            "POST", "/segment", request.get("query") or None, *multipart("image", "i.jpg", "image/jpeg", body)
        )
    runs: dict[str, list[dict[str, Any]]] = {label: [] for label in events}
    if spec["warmup"]:  # one untimed request: the first of the list (put the cheapest first)
        lambda_handler(next(iter(events.values())), BenchContext())
    for _ in range(spec["rounds"]):
        for label, event in events.items():
            began, cpu = time.perf_counter(), time.process_time()
            response = lambda_handler(event, BenchContext())
            wall, cpu = time.perf_counter() - began, time.process_time() - cpu
            if response["statusCode"] != 200:
                raise SystemExit(f"{label}: HTTP {response['statusCode']}: {response['body'][:500]}")
            answer = json.loads(response["body"])
            runs[label].append({"wall_s": wall, "cpu_s": cpu, "objects": len(answer["boxes"]), **answer["timings_ms"]})
    report = {"cpus": available_cpus(), "torch_threads": torch.get_num_threads(), "init_s": init_s, "runs": runs}
    if spec.get("stages"):
        from bench.stages import MATMUL_SIZE, matmul_flops_per_s
        from handler.model.torch_thread import torch_thread

        # On the one model thread, where the model runs: from any other thread this process would have a second
        # OpenMP team, and every stage would be timed under libgomp's throttled waits.
        report["stages"] = torch_thread().run(_model_stages, Path(spec["stages"]), spec["rounds"])
        # The control: a float32 matmul on torch's threads, what the host's CPUs gave this process meanwhile.
        report["stages"]["matmul (control)"] = 2 * MATMUL_SIZE**3 / torch_thread().run(matmul_flops_per_s)
    return report


def _model_stages(jpeg: Path, rounds: int) -> dict[str, float]:
    """The model's four stages (bench/stages.py's split) on the decoded ``jpeg``: best seconds of ``rounds``
    after one warm-up, on the loaded segmenter's threads."""
    import torch

    from bench.stages import STAGES, _stages, model_input
    from handler.engine import decode, get_segmenter

    segmenter = get_segmenter()
    image = model_input(segmenter, decode(jpeg.read_bytes(), max_bytes=1 << 30, max_pixels=1 << 30))
    best = dict.fromkeys(STAGES, float("inf"))
    with torch.inference_mode():
        for round_ in range(rounds + 1):
            *steps, _ = _stages(segmenter.model, image)
            for name, step in zip(STAGES, steps, strict=True):
                began = time.perf_counter()
                step()
                if round_:
                    best[name] = min(best[name], time.perf_counter() - began)
    return best


if __name__ == "__main__":
    print(json.dumps(_child(json.loads(sys.argv[1]))))
