"""The per-object stage alone (paste, RLE, optionally the overlay) on 1 CPU and on 2 CPUs: its scaling.

    python bench/objects_scaling.py [--size 6000x4000] [--objects 20] [--rounds 3] [--overlay]

No forward: the worst model's case is built directly, every box the whole image and each object's ROI mask
a smooth random 224x224 field (PointRend's output size), so a run costs only the per-object stage. Each
round runs fresh interpreters under ``taskset -c 0`` and ``taskset -c 0,1`` (1, 2, 2, 1 ...), threads
following the CPUs (``available_cpus``) for torch and for ``encode_in_parallel``'s pool, as the engine does.
Prints each run's wall seconds and CPU seconds (all threads), then the best of each side and their ratio
(time on 1 CPU / time on 2 CPUs), and a digest of the results so both sides can be seen to agree. The host's
load average is printed at the start and the end: on a shared host the ratio is the load's as much as the code's.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def child(width: int, height: int, objects: int, overlay: bool) -> None:
    import numpy as np
    import torch
    from torch.nn import functional as F

    import handler  # noqa: F401  (the allocator's tuning, as every entry point gets it)
    from handler.core.cpus import available_cpus
    from handler.engine.objects import ObjectTasks, Outputs, encode_in_parallel
    from handler.engine.results import Segmentation
    from handler.model.paste import MaskCrop
    from handler.model.segmenter import Detections

    threads = available_cpus()
    torch.set_num_threads(int(os.environ.get("BENCH_TORCH_THREADS", threads)))
    generator = torch.Generator().manual_seed(0)
    coarse = torch.randn(objects, 1, 7, 7, generator=generator)
    roi_masks = F.interpolate(coarse, size=(224, 224), mode="bilinear", align_corners=False)[:, 0] + 0.3
    boxes = np.tile(np.array([[0, 0, width, height]], dtype=np.float32), (objects, 1))
    found = Detections(height, width, boxes, np.ones(objects, np.float32), np.zeros(objects, np.int64), roi_masks, 0.0)
    rgb = np.full((height, width, 3), 128, dtype=np.uint8)

    workers: dict[int, list[tuple[float, float, float]]] = {}  # thread: its first and latest reading

    def paste(position: int) -> MaskCrop:
        workers.setdefault(threading.get_native_id(), [_schedstat()] * 2)
        return next(iter(found.masks([position])))

    class Clock:  # the last consumer: on the worker, after every other consumer's prepare
        keeps_mask = False

        def start(self, rgb: np.ndarray, result: Segmentation) -> None: ...
        def prepare(self, index: int, crop: MaskCrop) -> None:
            workers[threading.get_native_id()][1] = _schedstat()

        def commit(self, index: int, prepared: None) -> None: ...
        def add(self, index: int, crop: MaskCrop) -> None:
            self.prepare(index, crop)

        def finish(self, result: Segmentation) -> None: ...

    outputs = Outputs(masks="rle", overlay=overlay, overlay_max_side=1024 if overlay else None, consumers=[Clock()])

    def run() -> Segmentation:
        result = Segmentation(width, height, boxes, found.scores, found.class_ids, ["person"] * objects)
        encode_in_parallel(rgb, result, ObjectTasks(paste=paste), outputs, threads)
        return result

    started_cpu, started = time.process_time(), time.perf_counter()
    result = run()
    wall, cpu = time.perf_counter() - started, time.process_time() - started_cpu
    spans = [[(b - a) / 1e9 for a, b in zip(first, last, strict=True)] for first, last in workers.values()]
    digest = hashlib.sha256(json.dumps(result.masks).encode() + (result.overlay_png or b"")).hexdigest()[:16]
    print(json.dumps({"threads": threads, "wall_s": wall, "cpu_s": cpu, "digest": digest, "workers": spans}))


def _schedstat() -> tuple[float, float, float]:
    """This thread's clock, its nanoseconds on a CPU and waiting for one (runnable, not running)."""
    ran, waited, _ = (int(field) for field in Path("/proc/thread-self/schedstat").read_text().split())
    return time.perf_counter_ns(), ran, waited


def run_child(cpus: str, args: argparse.Namespace) -> dict:
    command = ["taskset", "-c", cpus, sys.executable, __file__, "--child", "--size", args.size]
    command += ["--objects", str(args.objects)] + (["--overlay"] if args.overlay else [])
    env = {key: value for key, value in os.environ.items() if key != "SEG_TORCH_THREADS"}
    out = subprocess.run(command, cwd=REPO, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="6000x4000", help="WIDTHxHEIGHT")
    parser.add_argument("--objects", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--overlay", action="store_true", help="also draw the overlay (capped at 1024)")
    parser.add_argument("--cpus", nargs=2, default=["0", "0,1"])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    width, height = (int(side) for side in args.size.split("x"))
    if args.child:
        child(width, height, args.objects, args.overlay)
        return
    print(f"per-object stage, {args.objects} objects of {args.size}, load average {os.getloadavg()[0]:.1f}")
    runs: dict[str, list[dict]] = {cpus: [] for cpus in args.cpus}
    for round_ in range(args.rounds):
        for cpus in args.cpus if round_ % 2 == 0 else reversed(args.cpus):
            report = run_child(cpus, args)
            runs[cpus].append(report)
            print(
                f"  CPUs {cpus:<4} threads {report['threads']}: wall {report['wall_s']:.2f} s, "
                f"cpu {report['cpu_s']:.2f} s, digest {report['digest']}",
                flush=True,
            )
            for span, ran, waited in report["workers"]:
                print(
                    f"    worker: {span:.2f} s, on a CPU {ran:.2f}, waiting for one {waited:.2f}, "
                    f"blocked {span - ran - waited:.2f}",
                    flush=True,
                )
    one, two = (min(run["wall_s"] for run in runs[cpus]) for cpus in args.cpus)
    # Net of the host's load: each run's wall less the time its workers, on average, stood runnable without a
    # CPU (other tenants' share); what is left is the code's own time, its locks and the GIL included.
    net_one, net_two = (min(_net(run) for run in runs[cpus]) for cpus in args.cpus)
    digests = {run["digest"] for reports in runs.values() for run in reports}
    print(f"load average {os.getloadavg()[0]:.1f} at end")
    print(
        f"objects_scaling={one / two:.2f} one_cpu_s={one:.2f} two_cpus_s={two:.2f} identical={len(digests) == 1}"
        f" net_of_load_scaling={net_one / net_two:.2f}"
    )


def _net(run: dict) -> float:
    """The run's wall seconds less what its workers, on average, stood runnable without a CPU."""
    waited = [waited for _, _, waited in run["workers"]]
    return run["wall_s"] - sum(waited) / len(waited)


if __name__ == "__main__":
    main()
