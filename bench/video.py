"""Video through the chunk worker (``handler.video.chunk.run_chunk``, what each Distributed Map child runs):
frames per second at 640x360 and 1280x720 (test model, rapid and normal), peak RSS per chunk against the
chunk's length (a child process per length: it must not grow), the assembly's seconds per 1,000 frames, and
the wall time and Lambda cost of a 1-minute 30 fps clip against the Map's MaxConcurrency.

    SEG_MODEL_PATH=.cache/models/test_model.pkl python bench/video.py [--write]

``--write`` records the ``video`` section of handler/core/measured.json (seconds per frame by speed and size,
read by the chunk plan; peak RSS; assembly pace) with this machine, its ISA and the date.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from provenance import REPO, record

from handler.engine import RequestOptions, get_segmenter
from handler.video.assemble import assemble
from handler.video.chunk import run_chunk
from handler.video.plan import Chunk, frames_within

SIZES = ((640, 360), (1280, 720))
SPEEDS = ("rapid", "normal")
TIMED_FRAMES = 2  # after one warm-up frame
RSS_LENGTHS = (2, 8)
CLIP_FRAMES, CLIP_FPS = 1800, 30  # the 1-minute phone clip of the cost table
CONCURRENCY = (1, 2, 5, 10, 20, 50, 100)
WORKER_GB, WORKER_TIMEOUT_S = 3008 / 1024, 300
PRICE_GB_S, PRICE_REQUEST = 0.0000166667, 0.20 / 1_000_000  # Lambda x86_64
PRICE_TRANSITION = 0.025 / 1000  # Step Functions standard workflows
TRANSITIONS_PER_CHUNK = 3  # the child's start, its task, its end
CONFIDENCE = 0.5  # the default threshold (random weights at 0 find every box: not a phone clip's count)


def make_clip(path: Path, width: int, height: int, frames: int) -> Path:
    rng = np.random.default_rng(3)
    background = rng.integers(0, 120, (height, width, 3), dtype=np.uint8)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), CLIP_FPS, (width, height))
    for index in range(frames):
        frame = background.copy()
        side = height // 3
        cv2.rectangle(frame, (5 * index, side), (5 * index + side, 2 * side), (40, 200, 250), -1)
        writer.write(frame)
    writer.release()
    return path


def seconds_per_frame(clip: Path, speed: str) -> tuple[float, str]:
    """The median seconds of the timed frames (the first frame warms up); the chunk's lines."""
    marks: list[float] = []
    out = io.StringIO()
    options = RequestOptions(confidence=CONFIDENCE)
    marks.append(time.perf_counter())
    run_chunk(
        clip,
        Chunk(0, 0, TIMED_FRAMES + 1, 0),
        get_segmenter(),
        out,
        options,
        lambda _: marks.append(time.perf_counter()),
        speed,  # type: ignore[arg-type]
    )
    steps = np.diff(marks)[1:]
    return float(np.median(steps)), out.getvalue()


def rss_child(frames: int) -> None:
    """In a process of its own: one chunk of ``frames`` frames at 640x360, rapid; prints the peak RSS in MB."""
    with tempfile.TemporaryDirectory() as folder:
        clip = make_clip(Path(folder) / "clip.mp4", 640, 360, frames)
        options = RequestOptions(confidence=CONFIDENCE)
        run_chunk(clip, Chunk(0, 0, frames, 0), get_segmenter(), io.StringIO(), options, detection_speed="rapid")
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def peak_rss(frames: int) -> float:
    done = subprocess.run(
        [sys.executable, __file__, "--rss-child", str(frames)], capture_output=True, text=True, check=True, cwd=REPO
    )
    return float(done.stdout.strip().splitlines()[-1])


def assembly_pace(clip: Path, lines: str) -> float:
    """Seconds per 1,000 frames to link, draw and encode (the clip's lines split into two chunks)."""
    parsed = [json.loads(line) for line in lines.splitlines()]
    middle = len(parsed) // 2
    first, second = parsed[: middle + 1], parsed[middle:]  # the second starts with the overlap frame
    chunks = [(Chunk(0, 0, middle + 1, 0), first), (Chunk(1, middle + 1, None, middle), second)]
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        done = assemble(clip, chunks, CLIP_FPS, io.StringIO(), Path(folder) / "overlay.webm")
        took = time.perf_counter() - started
    return took / done.frames * 1000


def cost_table(pace: float, assembly_s_per_1000: float) -> list[dict[str, float]]:
    """A 1-minute 30 fps 1280x720 clip: chunks as the plan makes them, waves of MaxConcurrency children."""
    length = frames_within(WORKER_TIMEOUT_S, pace, 300)
    chunks = math.ceil(CLIP_FRAMES / length)
    chunk_s = (length + 1) * pace  # the overlap frame again
    assembly_s = assembly_s_per_1000 * CLIP_FRAMES / 1000
    rows = []
    for concurrency in CONCURRENCY:
        wall = math.ceil(chunks / concurrency) * chunk_s + assembly_s
        busy = chunks * chunk_s + assembly_s
        usd = (
            busy * WORKER_GB * PRICE_GB_S
            + (chunks + 3) * PRICE_REQUEST
            + chunks * TRANSITIONS_PER_CHUNK * PRICE_TRANSITION
        )
        rows.append({"max_concurrency": concurrency, "chunks": chunks, "wall_s": round(wall, 1), "usd": round(usd, 4)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="record the video section of measured.json")
    parser.add_argument("--force", action="store_true", help="write even from a host busier than its CPUs")
    parser.add_argument("--rss-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        rss_child(args.rss_child)
        return
    started_load = os.getloadavg()[0]
    table: dict[str, dict[str, float]] = {speed: {} for speed in SPEEDS}
    with tempfile.TemporaryDirectory() as folder:
        for width, height in SIZES:
            clip = make_clip(Path(folder) / f"{width}x{height}.mp4", width, height, TIMED_FRAMES + 1)
            for speed in SPEEDS:
                pace, lines = seconds_per_frame(clip, speed)
                table[speed][f"{width}x{height}"] = round(pace, 4)
                print(f"chunk worker {width}x{height} {speed}: {1 / pace:.2f} frames/s ({pace:.3f} s a frame)")
                if (width, height, speed) == (640, 360, "rapid"):
                    assembly = assembly_pace(clip, lines)
    rss = {frames: peak_rss(frames) for frames in RSS_LENGTHS}
    short, long = RSS_LENGTHS
    print(
        f"peak RSS per chunk: {rss[short]:.0f} MB at {short} frames, {rss[long]:.0f} MB at {long} frames "
        f"(ratio {rss[long] / rss[short]:.3f})"
    )
    print(f"assembly (640x360): {assembly:.1f} s per 1,000 frames")
    rows = cost_table(table["normal"]["1280x720"], assembly)
    print("1-minute 30 fps 1280x720 clip, normal speed, 3008 MB worker:")
    print("| MaxConcurrency | chunks | wall s | USD |")
    for row in rows:
        print(f"| {row['max_concurrency']} | {row['chunks']} | {row['wall_s']} | {row['usd']} |")
    load = max(started_load, os.getloadavg()[0])
    print(f"load average {load:.1f} on {len(os.sched_getaffinity(0))} CPUs")
    if args.write and load > len(os.sched_getaffinity(0)) and not args.force:
        print("the host was busier than its CPUs: not written (--force writes anyway, with the load recorded)")
        return
    if args.write:
        figures = {
            "load_average": round(load, 1),
            "seconds_per_frame": table,
            "peak_rss_mb": {str(frames): round(value) for frames, value in rss.items()},
            "assembly_s_per_1000_frames": round(assembly, 2),
            "one_minute_clip": rows,
        }
        record("video", figures, source="bench/video.py (test model, run_chunk on generated clips)")


if __name__ == "__main__":
    main()
