"""The local video command, ``python -m handler segment CLIP``, through the real command in fresh processes:
frames per second on the 30 fps H.264 sample (tests/videos/coffee-h264-30fps.mp4) at each speed, and peak RSS
on a short and a long generated clip (the same pan, looped: memory must not grow with the clip's length).

    SEG_MODEL_PATH=.cache/models/test_model.pkl python bench/video_local.py
    python bench/video_local.py --normal-frames 10 --short 12 --long 120

Frames per second is the processed frames over the command's wall time less its start (imports and the model
load, timed in the same run by a one-frame run and subtracted). Peak RSS is each child's own (``wait4``). The
machine is shared: compare numbers within one run. The last line is exactly
``fps_rapid=<> fps_normal=<> rss_short_mb=<> rss_long_mb=<> rss_ratio=<long/short>``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "tests" / "videos" / "coffee-h264-30fps.mp4"


def run(clip: Path, out: Path, flags: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (bytes) of one ``segment`` run in a fresh process."""
    command = [sys.executable, "-m", "handler", "segment", str(clip), "--out", str(out), *flags]
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    if status != 0:
        raise SystemExit(f"{' '.join(command)} failed ({status})")
    return time.perf_counter() - started, usage.ru_maxrss * 1024


def looped_clip(path: Path, frames: int) -> Path:
    """``frames`` frames of the sample, looped, at its size and rate (MJPG in AVI)."""
    capture = cv2.VideoCapture(str(SAMPLE))
    source = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        source.append(frame)
    height, width = source[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (width, height))
    for index in range(frames):
        cycle, at = divmod(index, len(source))
        writer.write(source[at if cycle % 2 == 0 else len(source) - 1 - at])  # back and forth: no jump
    writer.release()
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rapid-frames", type=int, default=30, help="frames of the sample at rapid (default 30)")
    parser.add_argument("--normal-frames", type=int, default=10, help="frames of the sample at normal (default 10)")
    parser.add_argument("--short", type=int, default=12, help="frames of the short clip (default 12)")
    parser.add_argument("--long", type=int, default=120, help="frames of the long clip (default 120)")
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()}", flush=True)
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        for speed, frames in (("rapid", args.rapid_frames), ("normal", args.normal_frames)):
            start, _ = run(SAMPLE, work / f"{speed}-1", ["--speed", speed, "--max-frames", "1"])
            wall, rss = run(SAMPLE, work / speed, ["--speed", speed, "--max-frames", str(frames)])
            fps = (frames - 1) / max(wall - start, 1e-9)
            figures[f"fps_{speed}"] = fps
            print(
                f"{speed}: {frames} frames in {wall:.1f} s, one frame {start:.1f} s: {fps:.3f} frames/s, "
                f"peak RSS {rss / 2**20:.0f} MB",
                flush=True,
            )
        for name, frames in (("short", args.short), ("long", args.long)):
            clip = looped_clip(work / f"{name}.avi", frames)
            wall, rss = run(clip, work / name, ["--speed", "rapid"])
            figures[f"rss_{name}_mb"] = rss / 2**20
            print(f"{name} clip: {frames} frames in {wall:.1f} s, peak RSS {rss / 2**20:.1f} MB", flush=True)
    figures["rss_ratio"] = figures["rss_long_mb"] / figures["rss_short_mb"]
    print(f"load average at end: {os.getloadavg()}")
    print(" ".join(f"{name}={value:.3f}" for name, value in figures.items()))


if __name__ == "__main__":
    main()
