"""Which MemorySize: latency and cost per image on 1 and 2 CPUs, measured through ``lambda_handler``, and the
larger sizes projected from the measured scaling.

    python bench/memory_sizes.py [--rounds 5] [--model PATH] [--no-write]

Lambda gives CPU in proportion to memory: one vCPU's worth at 1,769 MB, up to six vCPUs at 10,240 MB. Two
fresh interpreters, one under ``taskset -c 0`` (1,769 MB: one vCPU) and one under ``taskset -c 0,1``
(3,538 MB: two), each import ``handler.lambda_function`` (the init, timed) with the threads following the
CPUs (``SEG_TORCH_THREADS`` auto), then send API Gateway HTTP API events (``POST /segment``, multipart, the
default confidence) through ``lambda_handler``: a 1333x800 photo and a 12 MP (4000x3000) photo, both made
from tests/images/astronaut.jpg, after one untimed request, ``--rounds`` rounds; p50 and p95 per size.

Larger sizes are projections (marked so): Amdahl's law fitted to the two measurements' best rounds (the
parallel fraction ``p = 2 (1 - t2 / t1)``; on a shared host the least disturbed runs are the closest to a
dedicated vCPU), applied to p50 and p95, at the CPU share the memory buys (memory / 1,769 MB vCPUs, at most
six). Cost per 1,000 images at Lambda's x86_64 price (GB-seconds and requests), including ``--inits-per-1000``
inits (the init is billed). Writes the ``memory_sizes`` section of handler/core/measured.json (what the
backfill and video estimates read). The last line is ``isa=<avx2|avx512> recommended_mb=<M>
scaling_1333x800=<t1/t2> scaling_12mp=<t1/t2>``.
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.cpu_runs import photo_jpeg, run_on_cpus  # noqa: E402
from bench.provenance import isa, machine  # noqa: E402

MB_PER_VCPU = 1769  # Lambda: one full vCPU's worth of CPU at 1,769 MB
MAX_VCPUS = 6
MEASURED = {1769: "0", 3538: "0,1"}  # MemorySize -> the taskset list that stands for it
PROJECTED = (2048, 3008, 5307, 7076, 8845, 10240)
# The service peaks near 2 GB resident: the template's smallest MemorySize (1,769 MB is a CPU reference only).
MIN_DEPLOYABLE_MB = 2048
BALANCED_WEIGHT = 0.5  # AWS Lambda Power Tuning's "balanced" strategy, its default weight
# Lambda's x86_64 on-demand price (us-east-1, first tier): per GB-second and per request.
PRICE_GB_S = 0.0000166667
PRICE_REQUEST = 0.20 / 1_000_000
PHOTOS = {"1333x800": (1333, 800), "12MP": (4000, 3000)}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def parallel_fraction(one: float, two: float) -> float:
    """Amdahl's parallel fraction from the times on 1 and 2 CPUs, within [0, 1]."""
    return min(1.0, max(0.0, 2 * (1 - two / one)))


def projected(one: float, fraction: float, vcpus: float) -> float:
    return one * ((1 - fraction) + fraction / vcpus)


def cost_per_1000(memory_mb: int, seconds: float, init_s: float, inits: float) -> float:
    gb = memory_mb / 1024
    return 1000 * (gb * seconds * PRICE_GB_S + PRICE_REQUEST) + inits * gb * init_s * PRICE_GB_S


def model_path(given: Path | None) -> Path:
    if given is not None:
        return given
    for candidate in (REPO / ".cache/models/pointrend_resnet50.pkl", REPO / ".cache/models/test_model.pkl"):
        if candidate.exists():
            return candidate
    raise SystemExit("no model: `python -m handler fetch-model` or `python -m handler make-test-model PATH`")


def measure(model: Path, rounds: int) -> dict[int, dict[str, Any]]:
    """Per measured MemorySize: p50/p95 seconds per photo, the init, the objects found."""
    with tempfile.TemporaryDirectory() as folder:
        requests = []
        for label, (width, height) in PHOTOS.items():
            path = Path(folder, f"{label}.jpg")
            path.write_bytes(photo_jpeg(width, height))
            requests.append({"label": label, "jpeg": str(path), "query": {}})
        reports = {memory: run_on_cpus(cpus, model, requests, rounds) for memory, cpus in MEASURED.items()}
    out = {}
    for memory, report in reports.items():
        walls = {label: [run["wall_s"] for run in runs] for label, runs in report["runs"].items()}
        cpu = {label: [run["cpu_s"] for run in runs] for label, runs in report["runs"].items()}
        out[memory] = {
            "best_s": {label: min(values) for label, values in walls.items()},
            "cpu_s": {label: statistics.median(values) for label, values in cpu.items()},
            "vcpus": report["cpus"],
            "init_s": report["init_s"],
            "p50_s": {label: statistics.median(values) for label, values in walls.items()},
            "p95_s": {label: percentile(values, 0.95) for label, values in walls.items()},
            "objects": {label: runs[0]["objects"] for label, runs in report["runs"].items()},
            "rounds": {label: [round(v, 3) for v in values] for label, values in walls.items()},
        }
    return out


def table(measured: dict[int, dict[str, Any]], inits: float) -> tuple[list[dict[str, Any]], dict[str, float]]:
    one, two = measured[1769], measured[3538]
    # From the best rounds: on a shared host the least disturbed runs are the closest to a dedicated vCPU.
    fractions = {label: parallel_fraction(one["best_s"][label], two["best_s"][label]) for label in PHOTOS}
    fractions["init"] = parallel_fraction(one["init_s"], two["init_s"])
    rows = []
    for memory in sorted((*MEASURED, *PROJECTED)):
        vcpus = min(memory / MB_PER_VCPU, MAX_VCPUS)
        extra: dict[str, Any] = {}
        if memory in measured:
            p50, p95, init = measured[memory]["p50_s"], measured[memory]["p95_s"], measured[memory]["init_s"]
            extra = {key: {k: round(v, 3) for k, v in measured[memory][key].items()} for key in ("best_s", "cpu_s")}
        else:
            p50 = {label: projected(one["p50_s"][label], fractions[label], vcpus) for label in PHOTOS}
            p95 = {label: projected(one["p95_s"][label], fractions[label], vcpus) for label in PHOTOS}
            init = projected(one["init_s"], fractions["init"], vcpus)
        rows.append(
            {
                "memory_mb": memory,
                "vcpus": round(vcpus, 2),
                "measured": memory in measured,
                "p50_s": {label: round(value, 3) for label, value in p50.items()},
                "p95_s": {label: round(value, 3) for label, value in p95.items()},
                "init_s": round(init, 3),
                **extra,
                "cost_per_1000_usd": {
                    label: round(cost_per_1000(memory, p50[label], init, inits), 4) for label in PHOTOS
                },
            }
        )
    return rows, fractions


def recommend(rows: list[dict[str, Any]]) -> int:
    """What AWS Lambda Power Tuning's "balanced" strategy would pick on the 1333x800 photo: among deployable
    sizes, the least ``w * cost / max cost + (1 - w) * time / max time``."""
    deployable = [row for row in rows if row["memory_mb"] >= MIN_DEPLOYABLE_MB]
    most_cost = max(row["cost_per_1000_usd"]["1333x800"] for row in deployable)
    most_time = max(row["p50_s"]["1333x800"] for row in deployable)

    def score(row: dict[str, Any]) -> float:
        cost, time = row["cost_per_1000_usd"]["1333x800"], row["p50_s"]["1333x800"]
        return BALANCED_WEIGHT * cost / most_cost + (1 - BALANCED_WEIGHT) * time / most_time

    return int(min(deployable, key=score)["memory_mb"])


def print_table(rows: list[dict[str, Any]], inits: float) -> None:
    print(
        f"\nMemorySize table (seconds per image, p50 / p95; cost per 1,000 images incl. {inits:g} inits; isa={isa()})"
    )
    print(
        f"  {'MB':>6} {'vCPU':>5}  {'1333x800 p50/p95':>17}  {'12 MP p50/p95':>15}  {'init':>6}  {'$/1k 1333x800':>13}"
        f"  {'$/1k 12 MP':>10}  source"
    )
    for row in rows:
        p50, p95, cost = row["p50_s"], row["p95_s"], row["cost_per_1000_usd"]
        print(
            f"  {row['memory_mb']:>6} {row['vcpus']:>5.2f}  {p50['1333x800']:>8.2f} / {p95['1333x800']:<6.2f}"
            f"  {p50['12MP']:>6.2f} / {p95['12MP']:<6.2f}  {row['init_s']:>6.2f}  {cost['1333x800']:>13.4f}"
            f"  {cost['12MP']:>10.4f}  {'measured' if row['measured'] else 'projected'}"
            + ("" if row["memory_mb"] >= MIN_DEPLOYABLE_MB else " (CPU reference: below the service's peak memory)")
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--model", type=Path, default=None, help="default: the real weights if fetched, else the test model"
    )
    parser.add_argument("--inits-per-1000", type=float, default=10.0, help="cold starts per 1,000 images (default 10)")
    parser.add_argument("--no-write", action="store_true", help="do not write handler/core/measured.json")
    args = parser.parse_args()
    model = model_path(args.model)
    print(f"memory sizes: {machine()}, isa={isa()}, model {model.name}, load average {os.getloadavg()[0]:.1f}")
    load_start = os.getloadavg()[0]
    measured = measure(model, args.rounds)
    for memory, m in measured.items():
        rounds = "; ".join(f"{label} {values}" for label, values in m["rounds"].items())
        cpu = ", ".join(f"{label} {value:.2f}" for label, value in m["cpu_s"].items())
        print(f"  {memory} MB ({m['vcpus']} CPU): init {m['init_s']:.2f} s, objects {m['objects']}, rounds: {rounds}")
        print(f"    CPU seconds per request (median, all threads): {cpu}")
    rows, fractions = table(measured, args.inits_per_1000)
    print_table(rows, args.inits_per_1000)
    recommended = recommend(rows)
    print("  parallel fraction (Amdahl, from 1 and 2 CPUs): " + ", ".join(f"{k} {v:.2f}" for k, v in fractions.items()))
    print(f"load average {os.getloadavg()[0]:.1f} at end (other tenants share these CPUs)")
    if not args.no_write:
        from handler.core.measured import write_section

        write_section(
            "memory_sizes",
            {
                "rows": rows,
                "parallel_fraction": {k: round(v, 3) for k, v in fractions.items()},
                "recommended_mb": recommended,
                "price_usd_per_gb_s": PRICE_GB_S,
                "price_usd_per_request": PRICE_REQUEST,
                "inits_per_1000_images": args.inits_per_1000,
                "mb_per_vcpu": MB_PER_VCPU,
                "photos": {label: f"{w}x{h}" for label, (w, h) in PHOTOS.items()},
                "model": model.name,
                "confidence": "default",
                "rounds": args.rounds,
                "load_average": [round(load_start, 1), round(os.getloadavg()[0], 1)],
            },
            source="bench/memory_sizes.py",
            machine=machine(),
            isa=isa(),
            date=datetime.date.today().isoformat(),
        )
    one, two = measured[1769]["p50_s"], measured[3538]["p50_s"]
    print(
        f"isa={isa()} recommended_mb={recommended} scaling_1333x800={one['1333x800'] / two['1333x800']:.2f} "
        f"scaling_12mp={one['12MP'] / two['12MP']:.2f}"
    )


if __name__ == "__main__":
    main()
