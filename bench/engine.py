"""Engine benchmark: stock PixelLib vs our Lambda function vs the ancestor's request path, side by side in one run.

    python bench/engine.py            # or: make bench (the random test model and the dense test model)

Each engine runs in its own worker process, as it would be deployed (its own allocator state, thread pool and
memory; bench/engine_workers.py); the parent sends the same images to each in turn. Timed on the same pixels
(a JPEG made from tests/images/astronaut.jpg at 640x480 and 1333x800), interleaved (a, b, a', ... per size),
one warm-up round, then the median of --repeats rounds, all at the default detection speed ("normal": short
edge 800, long edge at most 1333) and the same confidence, every path starting from the upload's bytes:

  (a)      stock PixelLib: ``instanceSegmentation().load_model(pkl, confidence=c)``, ``segmentFrame(bgr)``
  (a')     stock PixelLib in a process with our allocator settings (``tune_allocator``): like for like
  (b_http) ours as users get it: ``POST /segment?confidence=c`` with the upload as multipart ``image``, an API
           Gateway HTTP API v2 event through ``lambda_handler`` (Mangum, FastAPI, its worker thread), in a
           process that imported ``handler.lambda_function`` as Lambda's init does
  (b)      ours, the engine in the main thread of that process: ``segment_bytes`` + ``json.dumps(to_json())``
  (b0)     ours, the bare model forward inside (b_http) (its answer's ``timings_ms["model"]``); (b) and
           (b_http) take turns at going first (the first image after a change of size costs more)
  (c)      the ancestor PixelLibAPI's request path: upload bytes written to a temp file,
           ``segmentImage(path)``, its JSON (boxes, class_ids, class_names, mask_shape, object_counts, scores),
           in the stock engine's process

Same outputs: on the dense test model (``make-test-model --dense``: boxes = anchors, saturated scores, 100
objects, so outputs are stable), ours must give the same objects as stock at both sizes (same classes, boxes
within 1 px, every mask IoU >= 0.99), or the script exits 1 without the summary line. On the plain random
model the comparison is printed for information: random weights amplify last-bit differences past any fair
tolerance. The dense model also gives the per-stage times at 1333x800 (backbone+FPN, RPN, box head, mask
head), each stage's FLOPs (``torch.utils.flop_counter.FlopCounterMode``) and its share of the float32
matmul rate measured on the same threads in the same process (bench/stages.py).

Also: cold start (fresh interpreters: ``import handler.model`` + ``Segmenter(...)`` with the sha256 check, vs
bare ``import torch, pixellib`` + ``pickle.load`` + build + ``load_state_dict``; stock ``load_model`` for
reference), RSS after loading and after one 1333x800 image, and the JSON size of our RLE masks vs the
ancestor-style nested-list masks (``masks.tolist()`` of H x W x N bools) for the ancestor's example shape
(581 x 774, 12 masks; synthetic ellipses).

Ratios over the two image sizes are geometric means of the per-size ratios. The machine is shared (other
tenants' load shows as noise): compare numbers within one run. The last line is exactly
``speedup=<a/b_http> like_for_like=<a'/b_http> seed_speedup=<c/b_http> overhead=<b_http/b0>
rle_shrink=<nested/rle> cold_ratio=<ours/bare> init_ratio=<I/T> efficiency=<F/(b_http x M)>`` for the
low-confidence run, prefixed with ``isa=<avx2|avx512>`` (the instruction set torch's kernels ran on:
``torch.backends.cpu.get_cpu_capability()``). AVX2 is the reference (what AWS documents for x86_64
functions): on an AVX-512 host the whole bench first runs again in a child with ``ATEN_CPU_CAPABILITY=avx2``
and ``ONEDNN_MAX_CPU_ISA=AVX2`` in its environment (its engine workers inherit it), and both lines end the
output, the AVX2 one first (``--native-only``: skip that run). Where I/T is the Lambda init
(``import handler.lambda_function``, the slower deployed function) over a bare ``import torch``, best of N
fresh interpreters each (bench/init.py),
where F is the model's FLOPs for the forward (b_http) runs at 1333x800 (counted with the convolutions on
PyTorch's direct path, as stock runs them: our Winograd convolutions reach the same result in fewer
multiplications, so the ratio can pass 1) and M the float32 matmul FLOP/s on the same threads in the same run
(median over the timed rounds), b_http in seconds at 1333x800.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import statistics
import subprocess
import sys
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
warnings.simplefilter("ignore")

from bench.engine_workers import ask, compare_outputs, start_engines, stop_engines  # noqa: E402
from bench.provenance import cpu_flags  # noqa: E402
from bench.stages import MATMUL_SIZE, STAGES  # noqa: E402

SIZES = ((640, 480), (1333, 800))
AVX2_ENV = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
LARGE = "1333x800"
RLE_SHAPE = (581, 774, 12)  # the ancestor's README example: mask_shape [581, 774, 12]

# Fresh-interpreter programs for the cold start. Each prints one JSON line; times start at its first line.
COLD_OURS = """
import time; started = time.perf_counter()
import sys
from handler.engine import segment_rgb
from handler.model import Segmenter
from handler.core.settings import Settings
imported = time.perf_counter()
segmenter = Segmenter(Settings(model_path=sys.argv[1], model_sha256=sys.argv[2] or None))
loaded = time.perf_counter()
"""
COLD_BARE = """
import time; started = time.perf_counter()
import pickle, sys, warnings
warnings.simplefilter("ignore")
import torch
from PIL import Image
Image.LINEAR = getattr(Image, "LINEAR", Image.BILINEAR)  # PixelLib 0.7.1 needs it with Pillow >= 10
import pixellib.torchbackend.instance as pixellib_instance
from pixellib.torchbackend.instance.config import get_cfg
from pixellib.torchbackend.instance.modeling.meta_arch.build import build_model
from pixellib.torchbackend.instance.point_rend.config import add_pointrend_config
imported = time.perf_counter()
with open(sys.argv[1], "rb") as stream:
    checkpoint = pickle.load(stream, encoding="latin1")
cfg = get_cfg()
add_pointrend_config(cfg)
cfg.merge_from_file(pixellib_instance.__path__[0] + "/pkg/pointrend_rcnn_R_50_FPN_3x_coco.yaml")
cfg.MODEL.DEVICE = "cpu"
model = build_model(cfg).eval()
model.load_state_dict({name: torch.as_tensor(value) for name, value in checkpoint["model"].items()})
loaded = time.perf_counter()
"""
COLD_STOCK = """
import time; started = time.perf_counter()
import sys, warnings
warnings.simplefilter("ignore")
from PIL import Image
Image.LINEAR = getattr(Image, "LINEAR", Image.BILINEAR)
import pixellib.torchbackend.instance as pixellib_instance
imported = time.perf_counter()
stock = pixellib_instance.instanceSegmentation()
stock.load_model(sys.argv[1], confidence=0.5)
loaded = time.perf_counter()
"""
COLD_REPORT = """
import json, resource
report = {"import_s": imported - started, "load_s": loaded - imported, "total_s": loaded - started,
          "rss_loaded_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
if sys.argv[3]:  # then serve one 1333x800 image, for the peak RSS
    import numpy as np
    frame = np.random.default_rng(0).integers(0, 256, (800, 1333, 3), dtype=np.uint8)
    if "segmenter" in globals():
        json.dumps(segment_rgb(frame, segmenter, 0.0).to_json())
    elif "stock" in globals():
        stock.segmentFrame(frame.copy())
    report["rss_peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(report))
"""


def geomean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


def cold_run(kind: str, model: Path, sha256: str, serve_one: bool) -> dict[str, float]:
    program = {"ours": COLD_OURS, "bare": COLD_BARE, "stock": COLD_STOCK}[kind] + COLD_REPORT
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONWARNINGS": "ignore"}
    out = subprocess.run(
        [sys.executable, "-c", program, str(model), sha256, "1" if serve_one else ""],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode:
        raise SystemExit(f"cold start run '{kind}' failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def cold_start(model: Path, repeats: int) -> dict[str, dict[str, float]]:
    sha256 = hashlib.sha256(model.read_bytes()).hexdigest()
    runs: dict[str, list[dict[str, float]]] = {"ours": [], "bare": [], "stock": []}
    for round_ in range(repeats):  # interleaved, so a busy moment hits all three
        for kind in runs:
            runs[kind].append(cold_run(kind, model, sha256, serve_one=round_ == 0))
    summary = {}
    for kind, reports in runs.items():
        summary[kind] = {key: statistics.median(r[key] for r in reports) for key in reports[0] if key != "rss_peak_mb"}
        summary[kind]["rss_peak_mb"] = reports[0]["rss_peak_mb"]
    return summary


def rle_vs_nested() -> tuple[int, int]:
    """JSON bytes of 12 masks of 581x774: our COCO RLE vs the ancestor's nested ``masks.tolist()``."""
    import cv2
    import numpy as np

    from handler.engine import crop_rle
    from handler.model import MaskCrop

    height, width, count = RLE_SHAPE
    rng = np.random.default_rng(0)
    masks = np.zeros((count, height, width), np.uint8)
    for mask in masks:
        center = (int(rng.integers(80, width - 80)), int(rng.integers(80, height - 80)))
        axes = (int(rng.integers(30, 150)), int(rng.integers(30, 150)))
        cv2.ellipse(mask, center, axes, float(rng.integers(0, 180)), 0, 360, 1, thickness=-1)
    masks = masks.astype(bool)
    rle_bytes = len(json.dumps([crop_rle(MaskCrop(0, 0, mask), height, width) for mask in masks]))
    nested_bytes = len(json.dumps(masks.transpose(1, 2, 0).tolist()))  # H x W x N, as PixelLib returns it
    return nested_bytes, rle_bytes


def make_inputs(image_path: Path) -> list[tuple[str, bytes]]:
    import cv2

    source = cv2.imread(str(image_path))
    inputs = []
    for width, height in SIZES:
        ok, jpeg = cv2.imencode(".jpg", cv2.resize(source, (width, height), interpolation=cv2.INTER_AREA))
        assert ok
        inputs.append((f"{width}x{height}", jpeg.tobytes()))
    return inputs


def medians_of(samples: dict[str, dict[str, list[float]]]) -> dict[str, dict[str, float]]:
    return {label: {key: statistics.median(v) for key, v in per.items()} for label, per in samples.items()}


def dense_gate(model: Path, image: Path, confidence: float, stage_repeats: int) -> dict:
    """The same-outputs gate, on the dense model (its outputs are stable: boxes = anchors, saturated scores), and
    its per-stage times at 1333x800; exits 1 without the summary when ours and stock differ."""
    uploads = dict(make_inputs(image))
    engines = start_engines(["stock", "ours"], model, confidence, uploads)
    try:
        checks = []
        for label in uploads:
            same, text = compare_outputs(
                ask(engines, "stock", "check", label), ask(engines, "ours", "check", label), label
            )
            if not same:
                raise SystemExit(f"OUTPUT MISMATCH (ours vs stock, dense model), {text}")
            checks.append(text)
        stages = ask(engines, "ours", "stages", LARGE, stage_repeats)
        stages["matmul"] = ask(engines, "ours", "matmul")
    finally:
        stop_engines(engines)
    return {"checks": checks, "stages": stages}


def forward_flops(model: Path, confidence: float, uploads: dict[str, bytes]) -> float:
    """The model's FLOPs for the forward at 1333x800, counted in a process of its own: counting runs stock's
    maths (its mask refinement on all 80 classes), which would otherwise set the peak RSS of ours."""
    engines = start_engines(["ours"], model, confidence, uploads)
    try:
        return ask(engines, "ours", "flops", LARGE)
    finally:
        stop_engines(engines)


def run_speed(model: Path, image: Path, confidence: float, warmup: int, repeats: int) -> dict:
    uploads = dict(make_inputs(image))
    kinds = ["stock", "ours", "stock_tuned"]
    engines = start_engines(kinds, model, confidence, uploads)
    try:
        checks = []  # information: the plain random model amplifies last-bit differences (the gate is dense_gate)
        for label in uploads:
            stock_out = ask(engines, "stock", "check", label)
            checks.append(compare_outputs(stock_out, ask(engines, "ours", "check", label), label))
        flops = forward_flops(model, confidence, uploads)
        samples: dict[str, dict[str, list[float]]] = {label: {} for label in uploads}
        matmul = []
        for round_ in range(warmup + repeats):
            for label in uploads:  # interleaved: a busy moment on the machine hits every engine alike
                for kind in kinds:
                    times = ask(engines, kind, "time", label)
                    for key, value in times.items():
                        if round_ >= warmup:
                            samples[label].setdefault(key, []).append(value)
            if round_ >= warmup:
                matmul.append(ask(engines, "ours", "matmul"))
    finally:
        rss = stop_engines(engines)
    medians = medians_of(samples)
    ratios = {
        "speedup": geomean([m["a"] / m["b_http"] for m in medians.values()]),
        "like_for_like": geomean([m["a'"] / m["b_http"] for m in medians.values()]),
        "seed_speedup": geomean([m["c"] / m["b_http"] for m in medians.values()]),
        "overhead": geomean([m["b_http"] / m["b0"] for m in medians.values()]),
        "engine_speedup": geomean([m["a"] / m["b"] for m in medians.values()]),
        "http_vs_engine": geomean([m["b_http"] / m["b"] for m in medians.values()]),
        "efficiency": flops / (medians[LARGE]["b_http"] * statistics.median(matmul)),
    }
    cpu = {  # the same ratios in CPU seconds of each engine's process: what a loaded machine stretches least
        "speedup": geomean([m["a_cpu"] / m["b_http_cpu"] for m in medians.values()]),
        "like_for_like": geomean([m["a'_cpu"] / m["b_http_cpu"] for m in medians.values()]),
        "seed_speedup": geomean([m["c_cpu"] / m["b_http_cpu"] for m in medians.values()]),
        "http_vs_engine": geomean([m["b_http_cpu"] / m["b_cpu"] for m in medians.values()]),
    }
    return {
        "medians": medians,
        "samples": samples,
        "checks": checks,
        "ratios": ratios,
        "cpu_ratios": cpu,
        "rss": rss,
        "flops": flops,
        "matmul": statistics.median(matmul),
    }


HEADS = {"a": "(a) stock", "a'": "(a') tuned", "b_http": "(b) HTTP", "b": "(b) engine", "b0": "(b0) fwd"}
HEADS |= {"c": "(c) ancestor"}


def print_speed(confidence: float, run: dict) -> None:
    print(f"\nconfidence {confidence}: median seconds per image (every timed round in brackets)")
    first = next(iter(run["medians"].values()))
    columns = [k for k in HEADS if k in first]
    print(f"  {'size':<9}" + "".join(f"{HEADS[c]:>13}" for c in columns) + "   a/b_http  a'/b_http  b_http/b")
    for label, m in run["medians"].items():
        a, a_tuned, b, b_http = m["a"], m["a'"], m["b"], m["b_http"]
        ratios = f"   {a / b_http:8.2f}  {a_tuned / b_http:9.2f}  {b_http / b:8.2f}"
        print(f"  {label:<9}" + "".join(f"{m[c]:>13.3f}" for c in columns) + ratios)
        cpu = [f"{m[f'{c}_cpu']:>13.3f}" if f"{c}_cpu" in m else f"{'':>13}" for c in columns]
        print(f"  {'  CPU s':<9}" + "".join(cpu))
        walls = {k: vs for k, vs in run["samples"][label].items() if not k.endswith("_cpu")}
        rounds = "  ".join(f"{k}=[{', '.join(f'{v:.2f}' for v in vs)}]" for k, vs in walls.items())
        print(f"  {'':<9} {rounds}")
    for same, text in run["checks"]:
        print(f"  ours vs stock, random model ({'within' if same else 'OUTSIDE'} the tolerance; info): {text}")
    print("  peak RSS per engine process (MB): " + ", ".join(f"{k} {v:.0f}" for k, v in run["rss"].items()))
    print(
        f"  forward at {LARGE}: {run['flops'] / 1e9:.0f} GFLOP; float32 {MATMUL_SIZE}x{MATMUL_SIZE} matmul "
        f"{run['matmul'] / 1e9:.1f} GFLOP/s on the same threads (median of the timed rounds)"
    )
    print("  " + " ".join(f"{name}={value:.2f}" for name, value in run["ratios"].items()))
    print("  in CPU seconds: " + " ".join(f"{name}={value:.2f}" for name, value in run["cpu_ratios"].items()))


def print_stages(gate: dict) -> None:
    stages = gate["stages"]
    rate = stages["matmul"]
    height, width = stages["input"]
    print("\ndense model, same outputs as stock (the gate: classes, boxes within 1 px, mask IoU >= 0.99)")
    for text in gate["checks"]:
        print(f"  {text}")
    print(
        f"  per stage at {LARGE} (model input {width}x{height}, {stages['objects']} objects), median seconds; "
        f"matmul {rate / 1e9:.1f} GFLOP/s on the same threads"
    )
    print(f"  {'stage':<14}{'seconds':>9}{'GFLOP':>9}{'GFLOP/s':>9}{'of matmul':>11}")
    rows = [(name, stages["seconds"][name], stages["flops"][name]) for name in STAGES]
    rows.append(("total", sum(stages["seconds"].values()), sum(stages["flops"].values())))
    for name, seconds, flops in rows:
        speed = flops / seconds
        print(f"  {name:<14}{seconds:>9.2f}{flops / 1e9:>9.0f}{speed / 1e9:>9.1f}{speed / rate:>11.2f}")


def cold_summary(cold: dict[str, dict[str, float]]) -> dict[str, float]:
    """The cold start's fields of the last line (add one here to extend it)."""
    return {"cold_ratio": cold["ours"]["total_s"] / cold["bare"]["total_s"]}


def lambda_init(model: Path, repeats: int) -> dict[str, float]:
    """``init_ratio``: the Lambda init (``import handler.lambda_function``, on-demand) over bare ``import torch``."""
    from bench import init as init_bench

    times = init_bench.init_times(model, repeats)
    print(
        f"\nLambda init, best of {repeats} fresh interpreters (s): "
        + ", ".join(f"{k} {v:.2f}" for k, v in times.items())
    )
    print(f"  init_ratio in CPU seconds: {init_bench.init_ratio(times, 'cpu_'):.2f}")
    return {"init_ratio": init_bench.init_ratio(times)}


def running_isa() -> str:
    """The instruction set torch's kernels use in this process (``ATEN_CPU_CAPABILITY`` caps it)."""
    import torch

    return torch.backends.cpu.get_cpu_capability().lower().replace("default", "baseline")


def host_has_avx512() -> bool:
    return "avx512f" in cpu_flags()


def avx2_run() -> str | None:
    """On an AVX-512 host: this bench again with torch held to AVX2, its output passed through; its last line."""
    if not host_has_avx512():
        return None
    print("AVX-512 host: the AVX2 reference run first (ATEN_CPU_CAPABILITY=avx2, ONEDNN_MAX_CPU_ISA=AVX2)", flush=True)
    command = [sys.executable, str(Path(__file__).resolve()), *sys.argv[1:], "--native-only"]
    child = subprocess.run(command, cwd=REPO, env=os.environ | AVX2_ENV, stdout=subprocess.PIPE, text=True)
    print(child.stdout, flush=True)
    if child.returncode:
        raise SystemExit(f"the AVX2 run failed ({child.returncode})")
    return child.stdout.strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--model", type=Path, default=Path(os.environ.get("SEG_MODEL_PATH", ".cache/models/test_model.pkl"))
    )
    parser.add_argument("--dense-model", type=Path, default=Path(".cache/models/test_model_dense.pkl"))
    parser.add_argument("--image", type=Path, default=REPO / "tests" / "images" / "astronaut.jpg")
    parser.add_argument("--confidence", type=float, default=0.0, help="the compared run (default 0.0)")
    parser.add_argument("--default-confidence", type=float, default=0.5, help="also timed (default 0.5)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--stage-repeats", type=int, default=3)
    parser.add_argument("--cold-repeats", type=int, default=3)
    parser.add_argument("--native-only", action="store_true", help="no AVX2 run on an AVX-512 host")
    args = parser.parse_args()
    reference = None if args.native_only else avx2_run()
    model = args.model if args.model.is_absolute() else REPO / args.model
    dense = args.dense_model if args.dense_model.is_absolute() else REPO / args.dense_model
    if not model.exists():
        raise SystemExit(f"no model at {model}: `python -m handler make-test-model {model}` makes the test model")
    if not dense.exists():
        subprocess.run(
            [sys.executable, "-m", "handler", "make-test-model", str(dense), "--dense"], cwd=REPO, check=True
        )

    import torch

    print(
        f"engine bench: {model.name} (dense: {dense.name}), isa={running_isa()}, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), load average {os.getloadavg()[0]:.1f} at start"
    )
    gate = dense_gate(dense, args.image, args.default_confidence, args.stage_repeats)
    print_stages(gate)
    cold = cold_start(model, args.cold_repeats)
    print(f"\ncold start, fresh interpreter, median of {args.cold_repeats} (seconds; RSS in MB)")
    print(f"  {'':<34} {'import':>7} {'load':>7} {'total':>7} {'RSS loaded':>11} {'RSS 1333x800':>13}")
    names = {
        "ours": "ours: Segmenter (+sha256 check)",
        "bare": "bare: unpickle+build+load_state",
        "stock": "stock: instanceSegmentation.load",
    }
    for kind, c in cold.items():
        print(
            f"  {names[kind]:<34} {c['import_s']:>7.2f} {c['load_s']:>7.2f} {c['total_s']:>7.2f}"
            f" {c['rss_loaded_mb']:>11.0f} {c['rss_peak_mb']:>13.0f}"
        )

    init = lambda_init(model, args.cold_repeats)

    nested_bytes, rle_bytes = rle_vs_nested()
    h, w, n = RLE_SHAPE
    print(f"\nmasks as JSON, {h}x{w}x{n}: nested lists {nested_bytes:,} bytes, COCO RLE {rle_bytes:,} bytes")

    low = run_speed(model, args.image, args.confidence, args.warmup, args.repeats)
    print_speed(args.confidence, low)
    if args.default_confidence != args.confidence:
        default = run_speed(model, args.image, args.default_confidence, args.warmup, args.repeats)
        print_speed(args.default_confidence, default)
    print(f"\nload average {os.getloadavg()[0]:.1f} at end (other tenants share these CPUs: compare within a run)")
    r = low["ratios"]
    line = {name: r[name] for name in ("speedup", "like_for_like", "seed_speedup", "overhead")}
    line |= {"rle_shrink": nested_bytes / rle_bytes, **cold_summary(cold), **init}
    line |= {"efficiency": r["efficiency"]}
    if reference:
        print(reference)
    print(f"isa={running_isa()} " + " ".join(f"{name}={value:.2f}" for name, value in line.items()))


if __name__ == "__main__":
    main()
