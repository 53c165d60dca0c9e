"""Each stage on 1 CPU and on 2 CPUs (``taskset``): the scaling (time on 1 / time on 2) of the model's stages
and of the per-object stage, through the real entry point.

    python bench/cpu_scaling.py [--rounds 2] [--cpus 0 0,1]

Fresh interpreters under ``taskset -c 0`` and ``taskset -c 0,1`` (bench/cpu_runs.py), threads left to follow
the CPUs (``SEG_TORCH_THREADS`` auto), each importing ``handler.lambda_function`` as Lambda's init does and
sending API Gateway HTTP API events through ``lambda_handler``:

- the dense test model (``make-test-model --dense``: 100 objects on any image) at 1333x800: the request's
  decode, model and per-object stages, and the model's four stages (bench/stages.py's split);
- the same model on a 24 MP photo (6000x4000): 100 objects of the anchors' varied sizes;
- the worst model (``make-test-model --worst``: every box the whole image) on the 24 MP photo at confidence
  0: the per-object stage's worst case (paste, RLE of image-sized masks), and with ``format=png`` the overlay.

Times are the best of ``--rounds`` (the machine is shared: the least disturbed run), all rounds printed. A
float32 matmul on torch's threads in the same child is the control: its own scaling is what the host's CPUs
gave at the time (a loaded host shows it well under 2). The
last line is ``isa=<avx2|avx512> objects_scaling=<1 CPU / 2 CPUs, worst model, 24 MP per-object stage>
model_scaling=<the same for the dense model's forward at 1333x800>``. Writes the ``cpu_scaling`` section
of handler/core/measured.json.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.cpu_runs import photo_jpeg, run_on_cpus  # noqa: E402
from bench.provenance import isa, machine  # noqa: E402
from bench.stages import STAGES  # noqa: E402

MODELS = REPO / ".cache" / "models"
LARGE = (6000, 4000)


def ensure_model(path: Path, flag: str) -> Path:
    if not path.exists():
        import subprocess

        subprocess.run([sys.executable, "-m", "handler", "make-test-model", str(path), flag], cwd=REPO, check=True)
    return path


def rows_of(dense: dict, worst: dict) -> list[tuple[str, float]]:
    """(stage, best seconds) from one CPU set's dense and worst runs."""
    best = {label: {key: min(run[key] for run in runs) for key in runs[0]} for label, runs in dense["runs"].items()}
    best |= {label: {key: min(run[key] for run in runs) for key in runs[0]} for label, runs in worst["runs"].items()}
    rows = [("init (import + model load)", dense["init_s"])]
    rows += [("float32 2048x2048 matmul (control)", dense["stages"]["matmul (control)"])]
    rows += [(f"1333x800 dense: {name}", dense["stages"][name]) for name in STAGES]
    rows += [(f"1333x800 dense: {key}", best["dense-1333x800"][key] / 1000) for key in ("decode", "model", "masks")]
    rows += [("1333x800 dense: request", best["dense-1333x800"]["wall_s"])]
    rows += [(f"24 MP dense: {key}", best["dense-24MP"][key] / 1000) for key in ("decode", "model", "masks")]
    rows += [("24 MP dense: request", best["dense-24MP"]["wall_s"])]
    rows += [(f"24 MP worst: {key}", best["worst-24MP"][key] / 1000) for key in ("model", "masks")]
    rows += [("24 MP worst: request", best["worst-24MP"]["wall_s"])]
    if "worst-24MP-png" in best:
        rows += [("24 MP worst, overlay PNG: masks", best["worst-24MP-png"]["masks"] / 1000)]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--cpus", nargs=2, default=["0", "0,1"], help="taskset lists: one CPU, two CPUs")
    parser.add_argument("--overlay", action="store_true", help="also the worst model with format=png")
    parser.add_argument("--no-write", action="store_true", help="do not write handler/core/measured.json")
    args = parser.parse_args()
    dense_model = ensure_model(MODELS / "test_model_dense.pkl", "--dense")
    worst_model = ensure_model(MODELS / "test_model_worst.pkl", "--worst")
    print(f"cpu scaling: {machine()}, isa={isa()}, load average {os.getloadavg()[0]:.1f} at start", flush=True)
    with tempfile.TemporaryDirectory() as folder:
        small, large = Path(folder, "1333x800.jpg"), Path(folder, "24MP.jpg")
        small.write_bytes(photo_jpeg(1333, 800))
        large.write_bytes(photo_jpeg(*LARGE))
        dense_requests = [
            {"label": "dense-1333x800", "jpeg": str(small), "query": {}},
            {"label": "dense-24MP", "jpeg": str(large), "query": {}},
        ]
        worst_requests = [{"label": "worst-24MP", "jpeg": str(large), "query": {"confidence": "0"}}]
        if args.overlay:
            worst_requests.append(
                {"label": "worst-24MP-png", "jpeg": str(large), "query": {"confidence": "0", "format": "png"}}
            )
        reports: dict[str, dict[str, dict]] = {cpus: {} for cpus in args.cpus}
        for cpus in (*args.cpus, *reversed(args.cpus))[: 2 if args.rounds == 1 else 4]:  # 1, 2, 2, 1 CPUs
            rounds = max(1, args.rounds // 2) if args.rounds > 1 else 1
            dense = run_on_cpus(cpus, dense_model, dense_requests, rounds, stages=small)
            worst = run_on_cpus(cpus, worst_model, worst_requests, rounds, warmup=False)
            merge(reports[cpus], "dense", dense)
            merge(reports[cpus], "worst", worst)
            load = os.getloadavg()[0]
            print(f"  done on CPUs {cpus} (threads {dense['torch_threads']}), load {load:.1f}", flush=True)
    one, two = (rows_of(reports[c]["dense"], reports[c]["worst"]) for c in args.cpus)
    print(f"\nper stage, best of the rounds (seconds); scaling = time on 1 CPU / time on 2 CPUs; isa={isa()}")
    print(f"  {'stage':<36}{'1 CPU':>9}{'2 CPUs':>9}{'scaling':>9}")
    table = {}
    for (name, first), (_, second) in zip(one, two, strict=True):
        table[name] = {"1cpu_s": round(first, 3), "2cpu_s": round(second, 3), "scaling": round(first / second, 2)}
        print(f"  {name:<36}{first:>9.2f}{second:>9.2f}{first / second:>9.2f}")
    for cpus in args.cpus:
        for kind in ("dense", "worst"):
            for label, runs in reports[cpus][kind]["runs"].items():
                walls = ", ".join(f"{run['wall_s']:.2f}" for run in runs)
                masks = ", ".join(f"{run['masks'] / 1000:.2f}" for run in runs)
                print(f"  CPUs {cpus} {label}: {runs[0]['objects']} objects, request [{walls}] s, masks [{masks}] s")
    objects = table["24 MP worst: masks"]["scaling"]
    model = table["1333x800 dense: model"]["scaling"]
    print(f"\nload average {os.getloadavg()[0]:.1f} at end (other tenants share these CPUs)")
    if not args.no_write:
        from handler.core.measured import write_section

        write_section(
            "cpu_scaling",
            {"stages": table, "objects_scaling_worst_24mp": objects, "model_scaling_dense_1333x800": model},
            source="bench/cpu_scaling.py",
            machine=machine(),
            isa=isa(),
            date=datetime.date.today().isoformat(),
        )
    print(f"isa={isa()} objects_scaling={objects:.2f} model_scaling={model:.2f}")


def merge(into: dict[str, dict], kind: str, report: dict) -> None:
    """Several children on one CPU set: their rounds together, the init and stages at their best."""
    if kind not in into:
        into[kind] = report
        return
    known = into[kind]
    for label, runs in report["runs"].items():
        known["runs"][label].extend(runs)
    known["init_s"] = min(known["init_s"], report["init_s"])
    if report.get("stages"):
        known["stages"] = {name: min(value, report["stages"][name]) for name, value in known["stages"].items()}


if __name__ == "__main__":
    main()
