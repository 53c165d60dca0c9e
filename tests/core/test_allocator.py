"""The allocator tuning holds on every thread: an HTTP request costs what the engine costs in the same process.

FastAPI runs the model on a worker thread for every HTTP request (Lambda and ``serve``). Without one malloc
arena for the process, that thread's arena mmaps and unmaps the mask head's large buffers on every request:
over a million minor page faults and seconds of system time per image with the dense model (100 objects).
The test compares page faults per request, which count work rather than time (no host is too slow or too
fast for it); both paths run in one fresh interpreter (tests/http_vs_engine.py). Without the one-arena rule
the HTTP path takes over a million page faults per request. The time ratio is bench/engine.py's
``http_vs_engine``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import REPO

# Page faults the HTTP path may take beyond the engine's per request: 25,000 pages are 100 MB paged in
# (with a thread's own arena it is over a million).
EXTRA_FAULTS_MAX = 25_000


def test_import_tunes_the_allocator_before_any_thread():
    program = "import handler.core.allocator as a, threading; print(a._MALLOC_TUNED, threading.active_count())"
    env = {key: value for key, value in os.environ.items() if key != "MALLOC_ARENA_MAX"}
    out = subprocess.run(
        [sys.executable, "-c", "import handler; " + program], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert out.stdout.split() == ["True", "1"], out.stderr


def test_http_request_costs_what_the_engine_costs(dense_model_path):
    # The code's own tuning, not the image's MALLOC_ARENA_MAX: the variable is removed here.
    env = {key: value for key, value in os.environ.items() if key != "MALLOC_ARENA_MAX"}
    env |= {"SEG_MODEL_PATH": str(dense_model_path), "SEG_DETECTION_SPEED": "rapid", "SEG_TORCH_THREADS": "1"}
    env["SEG_METRICS"] = "false"
    out = subprocess.run(
        [sys.executable, str(REPO / "tests" / "http_vs_engine.py")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    engine, http = report["engine"], report["http"]
    assert {run["objects"] for run in engine + http} == {100}
    engine_faults, http_faults = max(r["minflt"] for r in engine), min(r["minflt"] for r in http)
    assert http_faults <= engine_faults + EXTRA_FAULTS_MAX, report
