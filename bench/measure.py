"""The deadline's cost model and the engine's seconds per image, measured here and written to
``handler/core/measured.json`` (sections "deadline" and "engine"), which the deadline and the backfill estimate
read.

    python bench/measure.py [--rounds 3] [--dry-run]

Every figure is timed through the real entry point: ``lambda_handler`` with an API Gateway HTTP API v2
multipart ``POST /segment`` event, in a fresh process per model and speed (one warm-up request, then the
median of ``--rounds``; the image's ``timings_ms.total`` is the engine's time, the call's wall time the
HTTP path's). Photos are tests/images/astronaut.jpg scaled; models are the random test model, the dense one
(100 objects) and the worst one (whole-image boxes). The fit:

- per object: the dense model against the random one on the same 1333x800 photo at ``normal``, over the
  difference in objects (mask head, point head, paste and RLE of ordinary boxes);
- per megapixel: the random model at ``rapid`` on a 12 MP photo against a 640x480 one;
- forward per speed: the random model on the 640x480 photo less its pixels' and objects' share;
- per object-megapixel: the worst model on a 4 MP photo (masks and the overlay of whole-image boxes) less the
  random model on it and the per-object share, over objects x megapixels.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from provenance import REPO, record

PHOTO = REPO / "tests" / "images" / "astronaut.jpg"
MODELS = REPO / ".cache" / "models"
SIZES = {"small": (640, 480), "engine": (1333, 800), "4mp": (2309, 1732), "12mp": (4032, 3024)}


def model(kind: str) -> Path:
    path = MODELS / {"random": "test_model.pkl", "dense": "test_model_dense.pkl", "worst": "test_model_worst.pkl"}[kind]
    if not path.exists():
        flags = {"random": [], "dense": ["--dense"], "worst": ["--worst"]}[kind]
        subprocess.run([sys.executable, "-m", "handler", "make-test-model", str(path), *flags], cwd=REPO, check=True)
    return path


def photos(folder: Path) -> dict[str, Path]:
    from PIL import Image

    paths = {}
    with Image.open(PHOTO) as photo:
        for name, size in SIZES.items():
            paths[name] = folder / f"{name}.jpg"
            photo.convert("RGB").resize(size, Image.Resampling.LANCZOS).save(paths[name], "JPEG", quality=90)
    return paths


def worker(jobs: list[dict[str, Any]], rounds: int) -> list[dict[str, float]]:
    """In this process (its model and speed from the environment): each job's median engine and wall ms."""
    sys.path.insert(0, str(REPO))
    from bench.engine_workers import BenchContext
    from events.make_http_events import http_api_v2, multipart
    from handler.lambda_function import lambda_handler

    results = []
    for job in jobs:
        upload = multipart("image", "photo.jpg", "image/jpeg", Path(job["image"]).read_bytes())
        engine, wall, objects = [], [], 0
        for round_ in range(rounds + 1):
            started = time.perf_counter()
            response = lambda_handler(http_api_v2("POST", "/segment", job["query"], *upload), BenchContext())
            elapsed = (time.perf_counter() - started) * 1000
            assert response["statusCode"] == 200, response["body"][:300]
            body = json.loads(response["body"])
            if round_:  # the first is the warm-up
                engine.append(body["timings_ms"]["total"])
                wall.append(elapsed)
            objects = len(body["boxes"])
        results.append({"engine_ms": statistics.median(engine), "wall_ms": statistics.median(wall), "objects": objects})
    return results


def run(kind: str, speed: str, jobs: list[dict[str, Any]], rounds: int) -> list[dict[str, float]]:
    env = {**os.environ, "SEG_MODEL_PATH": str(model(kind)), "SEG_DETECTION_SPEED": speed, "SEG_METRICS": "false"}
    env.pop("AWS_LAMBDA_INITIALIZATION_TYPE", None)
    command = [sys.executable, __file__, "--worker", json.dumps(jobs), "--rounds", str(rounds)]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{kind} at {speed} failed:\n{done.stderr[-3000:]}")
    results = json.loads(done.stdout.strip().splitlines()[-1])
    for job, result in zip(jobs, results, strict=True):
        print(f"{kind:>6} {speed:>6} {Path(job['image']).stem:>6} {job['query']}: {result}", flush=True)
    return results


def megapixels(name: str) -> float:
    width, height = SIZES[name]
    return width * height / 1e6


def measure(rounds: int) -> tuple[dict[str, Any], dict[str, Any]]:
    with tempfile.TemporaryDirectory() as folder:
        images = {name: str(path) for name, path in photos(Path(folder)).items()}
        few, every = {"confidence": "0.5"}, {"confidence": "0"}
        engine, small = run(
            "random",
            "normal",
            [{"image": images["engine"], "query": every}, {"image": images["small"], "query": few}],
            rounds,
        )
        (dense,) = run("dense", "normal", [{"image": images["engine"], "query": every}], rounds)
        (fast,) = run("random", "fast", [{"image": images["small"], "query": few}], rounds)
        rapid, large, four = run(
            "random", "rapid", [{"image": images[name], "query": few} for name in ("small", "12mp", "4mp")], rounds
        )
        worst_query = {"confidence": "0.001", "overlay": "true"}
        (worst,) = run("worst", "rapid", [{"image": images["4mp"], "query": worst_query}], rounds)
    per_object = (dense["engine_ms"] - engine["engine_ms"]) / (dense["objects"] - engine["objects"])
    per_megapixel = (large["engine_ms"] - rapid["engine_ms"]) / (megapixels("12mp") - megapixels("small"))

    def forward(result: dict[str, float]) -> float:
        return round(result["engine_ms"] - per_megapixel * megapixels("small") - per_object * result["objects"], 1)

    worst_share = worst["engine_ms"] - four["engine_ms"] - per_object * (worst["objects"] - four["objects"])
    deadline = {
        "forward_ms": {"normal": forward(small), "fast": forward(fast), "rapid": forward(rapid)},
        "per_object_ms": round(per_object, 1),
        "per_megapixel_ms": round(per_megapixel, 1),
        "per_object_megapixel_ms": round(worst_share / (worst["objects"] * megapixels("4mp")), 1),
    }
    engine_figures = {
        "image": "x".join(map(str, SIZES["engine"])),
        "seconds_per_image": round(engine["engine_ms"] / 1000, 2),
        "http_seconds_per_image": round(engine["wall_ms"] / 1000, 2),
        "objects": engine["objects"],
    }
    return deadline, engine_figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dry-run", action="store_true", help="print the figures, write nothing")
    parser.add_argument("--force", action="store_true", help="write even from a host busier than its CPUs")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker), args.rounds)))
        return
    started_load = os.getloadavg()[0]
    print(f"measure: {os.cpu_count()} CPUs, load average {started_load:.1f} at start", flush=True)
    deadline, engine = measure(args.rounds)
    print(f"load average {os.getloadavg()[0]:.1f} at end")
    print(json.dumps({"deadline": deadline, "engine": engine}, indent=2))
    busy = max(os.getloadavg()[0], started_load) > len(os.sched_getaffinity(0))
    if busy and not args.force and not args.dry_run:
        raise SystemExit(
            "the host was busier than its CPUs: these figures would price every image too high; not written"
        )
    if not args.dry_run:
        how = f"median of {args.rounds} after a warm-up, lambda_handler with HTTP API v2 multipart events"
        record("deadline", deadline, source=f"bench/measure.py, {how}")
        record("engine", engine, source=f"bench/measure.py, random test model, confidence 0, {how}")


if __name__ == "__main__":
    main()
