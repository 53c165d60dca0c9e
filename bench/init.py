"""The Lambda init against bare torch: ``init_ratio`` = ``import handler.lambda_function`` (imports + model
load, on-demand) / ``import torch``, each the best of N fresh interpreters, interleaved in one run.

Measured for each function as template.yaml deploys it (``SEG_SERVES=http`` and ``s3``; ``all`` as locally);
``init_ratio`` is the larger of the two deployed ones. Where the time goes: ``python -X importtime``
(``--importtime`` prints the slowest top-level imports of the HTTP function's init).

    python bench/init.py [--model PATH] [--repeats 3] [--importtime] [--write]

``--write`` records the figures as the "init" section of ``handler/core/measured.json`` (the backfill estimate
reads the worker's).

bench/engine.py prints the same ratio on its cold line.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
repo = REPO  # --repo: another checkout (main before a change), measured with this script
# Wall and CPU seconds from the program's first line (interpreter start-up is left out of both).
TIMED = "import time; t, c = time.perf_counter(), time.process_time(); import {module}; "
TIMED += "print(time.perf_counter() - t, time.process_time() - c)"
PROGRAMS = {"torch": TIMED.format(module="torch"), "init": TIMED.format(module="handler.lambda_function")}
FUNCTIONS = ("http", "s3", "all")


def _env(model: Path, serves: str) -> dict[str, str]:
    env = {**os.environ, "SEG_MODEL_PATH": str(model), "SEG_SERVES": serves, "SEG_METRICS": "false"}
    env.pop("AWS_LAMBDA_INITIALIZATION_TYPE", None)  # on-demand: no SnapStart hooks
    return env


def fresh(program: str, env: dict[str, str], *flags: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, *flags, "-c", program], cwd=repo, env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"init run failed:\n{done.stderr[-3000:]}")
    return done


def init_times(model: Path, repeats: int = 3) -> dict[str, float]:
    """Best of ``repeats`` wall seconds for bare torch and for each function's init (rounds interleaved), and
    the same for CPU seconds (``cpu_<kind>``): on a shared machine the CPU time moves less with the load."""
    kinds = ("torch", *FUNCTIONS)
    wall: dict[str, list[float]] = {kind: [] for kind in kinds}
    cpu: dict[str, list[float]] = {kind: [] for kind in kinds}
    for _ in range(repeats):
        for kind in kinds:
            program = PROGRAMS["torch" if kind == "torch" else "init"]
            seconds, cpu_seconds = fresh(program, _env(model, "all" if kind == "torch" else kind)).stdout.split()[-2:]
            wall[kind].append(float(seconds))
            cpu[kind].append(float(cpu_seconds))
    return {**{kind: min(wall[kind]) for kind in kinds}, **{f"cpu_{kind}": min(cpu[kind]) for kind in kinds}}


def init_ratio(times: dict[str, float], prefix: str = "") -> float:
    """The slower deployed function's init over bare torch (``prefix="cpu_"``: in CPU seconds)."""
    return max(times[f"{prefix}http"], times[f"{prefix}s3"]) / times[f"{prefix}torch"]


def slowest_imports(model: Path, serves: str = "http", top: int = 12) -> list[tuple[float, str, str]]:
    """(cumulative seconds, module, the handler module importing it) of the slowest outside imports that a
    ``handler`` module makes directly during the init, from ``python -X importtime``."""
    stderr = fresh("import handler.lambda_function", _env(model, serves), "-X", "importtime").stderr
    rows = []  # (cumulative us, depth, module), children before their parent as importtime prints them
    for line in stderr.splitlines():
        found = re.match(r"import time:\s+\d+ \|\s+(\d+) \|( *)(\S+)", line)
        if found:
            rows.append((int(found.group(1)), len(found.group(2)), found.group(3)))
    slowest = []
    for index, (cumulative, depth, module) in enumerate(rows):
        parent = next((name for _, d, name in rows[index + 1 :] if d < depth), "")
        if not module.startswith("handler") and parent.startswith("handler"):
            slowest.append((cumulative / 1e6, module, parent))
    return sorted(slowest, reverse=True)[:top]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--model", type=Path, default=Path(os.environ.get("SEG_MODEL_PATH", ".cache/models/test_model.pkl"))
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--importtime", action="store_true")
    parser.add_argument("--write", action="store_true", help='write the "init" section of handler/core/measured.json')
    parser.add_argument("--repo", type=Path, default=REPO, help="the checkout whose init is measured")
    args = parser.parse_args()
    global repo
    repo = args.repo.resolve()
    model = args.model if args.model.is_absolute() else REPO / args.model
    print(f"init bench: {model.name}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start")
    times = init_times(model, args.repeats)
    print(f"best of {args.repeats} fresh interpreters (s): " + ", ".join(f"{k} {v:.2f}" for k, v in times.items()))
    if args.importtime:
        print("slowest outside imports of the HTTP function's init (python -X importtime, cumulative):")
        for seconds, module, parent in slowest_imports(model):
            print(f"  {seconds:6.2f} s  {module:<40} from {parent}")
    print(f"load average {os.getloadavg()[0]:.1f} at end")
    ratios = " ".join(f"{serves}={times[serves] / times['torch']:.2f}" for serves in FUNCTIONS)
    print(f"init_ratio={init_ratio(times):.2f} ({ratios}) cpu_init_ratio={init_ratio(times, 'cpu_'):.2f}")
    if args.write:
        from provenance import record

        figures = {"torch_seconds": times["torch"], "http_function_seconds": times["http"]}
        figures |= {"worker_seconds": times["s3"], "model": model.name}
        record("init", figures, source=f"bench/init.py, best of {args.repeats} fresh interpreters")


if __name__ == "__main__":
    main()
