"""One process, one image: its cost through ``lambda_handler`` (an HTTP API v2 event) and through the engine.

    SEG_MODEL_PATH=.cache/models/test_model_dense.pkl SEG_DETECTION_SPEED=rapid python tests/http_vs_engine.py

Imports ``handler.lambda_function`` as Lambda's init does, answers one warm-up request each way, then
``--rounds`` interleaved rounds (engine in the main thread, then the same bytes as an HTTP request, which
FastAPI runs on a worker thread). Prints one JSON line: per path, the process's CPU seconds (user + system,
all threads), wall seconds and minor page faults of each timed request. Run by tests/core/test_allocator.py in a
fresh interpreter, so no other test's threads or arenas come first.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--image", type=Path, default=REPO / "tests" / "images" / "astronaut.jpg")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    from events.make_http_events import http_api_v2, multipart
    from handler.core.settings import get_settings
    from handler.engine import get_segmenter, segment_bytes
    from handler.lambda_function import lambda_handler  # the init phase: imports and the model
    from tests.conftest import FakeLambdaContext

    data = args.image.read_bytes()
    event = http_api_v2("POST", "/segment", None, *multipart("image", args.image.name, "image/jpeg", data))
    segmenter, settings = get_segmenter(), get_settings()

    def engine() -> int:
        return len(segment_bytes(data, segmenter, settings).result)

    def http() -> int:
        response = lambda_handler(event, FakeLambdaContext())
        if response["statusCode"] != 200:
            raise SystemExit(f"HTTP {response['statusCode']}: {response['body'][:500]}")
        return len(json.loads(response["body"])["boxes"])

    def measure(run: Callable[[], int]) -> dict[str, float]:
        before, started = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        objects = run()
        wall, after = time.perf_counter() - started, resource.getrusage(resource.RUSAGE_SELF)
        cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
        return {"objects": objects, "cpu_s": cpu, "wall_s": wall, "minflt": after.ru_minflt - before.ru_minflt}

    paths = {"engine": engine, "http": http}
    for run in paths.values():
        run()  # warm-up: the first image pages in the buffers every later one reuses
    report: dict[str, list[dict[str, float]]] = {name: [] for name in paths}
    for _ in range(args.rounds):
        for name, run in paths.items():
            report[name].append(measure(run))
    print(json.dumps(report))


if __name__ == "__main__":
    main()
