"""Engine benchmark: stock PixelLib vs our Segmenter vs the ancestor's request path, side by side in one run.

    python bench/engine.py            # or: make bench (uses the random test model)

Each engine runs in its own worker process, as it would be deployed (its own allocator state, thread pool and
memory); the parent sends the same images to each in turn. Timed on the same pixels (a JPEG made from
tests/images/astronaut.jpg at 640x480 and 1333x800), interleaved (a, c, b, a, c, b, ...), one warm-up round,
then the median of --repeats rounds, all at the default detection speed ("normal": short edge 800, long edge
at most 1333) and the same confidence:

  (a)  stock PixelLib: ``instanceSegmentation().load_model(pkl, confidence=c)``, ``segmentFrame(bgr)``
  (b)  ours: ``segment_rgb(rgb, segmenter, c)`` + ``json.dumps(result.to_json())`` (RLE masks)
  (b0) ours, the bare model forward inside (b): ``model.inference`` alone (``timings_ms["model"]``)
  (c)  the ancestor PixelLibAPI's request path: upload bytes written to a temp file, ``segmentImage(path)``,
       its JSON (the documented seed contract: boxes, class_ids, class_names, mask_shape, object_counts,
       scores), in the stock engine's process
  info rows, not counted: (a') stock in a process with our allocator settings (``tune_allocator``), to show
       what that process-level lever is worth on its own; (b') our Segmenter with the ``channels_last``
       option (faster, but not the stock numbers: its check against stock is printed, not enforced)

(b) must give the same objects as (a): same classes, boxes within 1 px, every mask IoU >= 0.99; the script
exits 1 without the summary line when they differ. It runs twice: at --confidence (default 0.0, where the
random test model finds objects, so masks, to compare) and at --default-confidence (0.5, the service default).

Also: cold start (fresh interpreters: ``import handler.model`` + ``Segmenter(...)`` with the sha256 check, vs
bare ``import torch, pixellib`` + ``pickle.load`` + build + ``load_state_dict``; stock ``load_model`` for
reference), RSS after loading and after one 1333x800 image, and the JSON size of our RLE masks vs the
ancestor-style nested-list masks (``masks.tolist()`` of H x W x N bools) for the ancestor's example shape
(581 x 774, 12 masks; synthetic ellipses).

Ratios over the two image sizes are geometric means of the per-size ratios. The machine is shared (other
tenants' load shows as noise): compare numbers within one run. The last line is exactly
``speedup=<a/b> seed_speedup=<c/b> overhead=<b/b0> rle_shrink=<nested/rle> cold_ratio=<ours/bare>``
for the low-confidence run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
warnings.simplefilter("ignore")

SIZES = ((640, 480), (1333, 800))
RLE_SHAPE = (581, 774, 12)  # the ancestor's README example: mask_shape [581, 774, 12]

# Fresh-interpreter programs for the cold start. Each prints one JSON line; times start at its first line.
COLD_OURS = """
import time; started = time.perf_counter()
import sys
from handler.engine import segment_rgb
from handler.model import Segmenter
from handler.settings import Settings
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


def ancestor_request(stock, upload: bytes) -> str:
    """The ancestor PixelLibAPI's /segmentapi: save the upload, segmentImage(path), its flat JSON."""
    with tempfile.NamedTemporaryFile(suffix=".jpg", delete=False) as saved:
        saved.write(upload)
    try:
        result, _ = stock.segmentImage(saved.name)
    finally:
        os.unlink(saved.name)
    masks = result["masks"]
    return json.dumps(
        {
            "boxes": result["boxes"].tolist(),
            "class_ids": result["class_ids"].tolist(),
            "class_names": result["class_names"],
            "mask_shape": list(masks.shape) if len(result["class_ids"]) else [*masks.shape[1:], 0],
            "object_counts": dict(result["object_counts"]),
            "scores": result["scores"].tolist(),
        }
    )


# --- engines, each in its own process (as deployed: its own allocator, thread pool and memory) -------------
ENGINES = {
    "stock": "stock PixelLib (a, c)",
    "ours": "our Segmenter (b, b0)",
    "stock_tuned": "stock PixelLib in a process with our allocator settings (info)",
    "ours_nhwc": "our Segmenter with the channels_last option (outputs differ; not counted)",
}


INFO_ROWS = {"stock_tuned": "a'", "ours_nhwc": "b'"}


def engine_worker(kind: str, model: str, confidence: float, uploads: dict[str, bytes], conn) -> None:
    """Runs in a child process: load one engine, then answer ("time" | "check", label) until ("stop",)."""
    import cv2
    import numpy as np

    warnings.simplefilter("ignore")
    from handler.allocator import tune_allocator
    from handler.engine import segment_rgb
    from handler.model import Segmenter, pixellib_instance
    from handler.settings import Settings

    frames = {}
    for label, upload in uploads.items():
        bgr = cv2.imdecode(np.frombuffer(upload, np.uint8), cv2.IMREAD_COLOR)  # the pixels segmentImage reads
        frames[label] = (bgr, np.ascontiguousarray(bgr[:, :, ::-1]))
    if kind.startswith("stock"):
        if kind == "stock_tuned":
            tune_allocator()
        stock = pixellib_instance.instanceSegmentation()
        stock.load_model(model, confidence=confidence)
    else:
        settings = Settings(model_path=model, confidence=confidence, detection_speed="normal")
        segmenter = Segmenter(settings, channels_last=kind == "ours_nhwc")
    conn.send("ready")
    while True:
        command = conn.recv()
        if command[0] == "stop":
            conn.send({"rss_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})
            return
        _, label = command
        bgr, rgb = frames[label]
        if command[0] == "check":
            if kind.startswith("stock"):
                result, _ = stock.segmentFrame(bgr.copy())
                conn.send({k: np.asarray(result[k]) for k in ("class_ids", "boxes", "masks")})
            else:
                from pycocotools import mask as coco_mask

                found = segment_rgb(rgb, segmenter, confidence)
                masks = np.zeros((len(found), *rgb.shape[:2]), bool)  # full size, to compare with stock's
                for mask, rle in zip(masks, found.masks, strict=True):
                    mask[:] = coco_mask.decode({"size": rle["size"], "counts": rle["counts"].encode()})
                conn.send({"class_ids": found.class_ids, "boxes": np.asarray(found.seed_boxes), "masks": masks})
            continue
        times = {}
        if kind.startswith("stock"):
            frame = bgr.copy()  # segmentFrame draws on its input
            started = time.perf_counter()
            stock.segmentFrame(frame)
            times["a"] = time.perf_counter() - started
            if kind == "stock":
                started = time.perf_counter()
                ancestor_request(stock, uploads[label])
                times["c"] = time.perf_counter() - started
        else:
            started = time.perf_counter()
            result = segment_rgb(rgb, segmenter, confidence)
            json.dumps(result.to_json())
            times["b"] = time.perf_counter() - started
            times["b0"] = result.timings_ms["model"] / 1000
        conn.send(times)


def start_engines(kinds: list[str], model: Path, confidence: float, uploads: dict[str, bytes]) -> dict:
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    engines = {}
    for kind in kinds:
        parent, child = context.Pipe()
        process = context.Process(target=engine_worker, args=(kind, str(model), confidence, uploads, child))
        process.start()
        engines[kind] = (process, parent)
    for kind, (_, parent) in engines.items():
        if parent.recv() != "ready":
            raise SystemExit(f"engine {kind} did not start")
    return engines


def ask(engines: dict, kind: str, *command: str):
    _, conn = engines[kind]
    conn.send(command)
    return conn.recv()


def compare_outputs(stock: dict, ours: dict, label: str) -> tuple[bool, str]:
    """Same objects: classes, boxes within 1 px (both truncated to ints, as PixelLib does), mask IoU >= 0.99."""
    import numpy as np

    stock_ids = stock["class_ids"].reshape(-1).tolist()
    our_ids = ours["class_ids"].reshape(-1).tolist()
    if len(stock_ids) != len(our_ids):
        return False, f"{label}: {len(stock_ids)} objects from stock, {len(our_ids)} from ours"
    if stock_ids != our_ids:
        return False, f"{label}: classes differ (stock {stock_ids}, ours {our_ids})"
    if not stock_ids:
        return True, f"{label}: no objects from either"
    stock_boxes = stock["boxes"].reshape(-1, 4).astype(np.int64)
    box_diff = int(np.abs(stock_boxes - ours["boxes"].reshape(-1, 4).astype(np.int64)).max())
    stock_masks = stock["masks"].transpose(2, 0, 1)  # PixelLib: (H, W, N)
    ious = []
    for mine, theirs in zip(ours["masks"], stock_masks, strict=True):
        union = np.logical_or(mine, theirs).sum()
        ious.append(np.logical_and(mine, theirs).sum() / union if union else 1.0)
    text = f"{label}: {len(stock_ids)} objects, same classes, boxes within {box_diff} px, min mask IoU {min(ious):.4f}"
    return box_diff <= 1 and min(ious) >= 0.99, text


def run_speed(model: Path, image: Path, confidence: float, warmup: int, repeats: int, extra: bool) -> dict:
    uploads = dict(make_inputs(image))
    kinds = ["stock", "ours"] + (["stock_tuned", "ours_nhwc"] if extra else [])
    engines = start_engines(kinds, model, confidence, uploads)
    try:
        checks, option_checks = [], []
        for label in uploads:
            stock_out = ask(engines, "stock", "check", label)
            same, text = compare_outputs(stock_out, ask(engines, "ours", "check", label), label)
            if not same:
                raise SystemExit(f"OUTPUT MISMATCH (ours vs stock) at confidence {confidence}, {text}")
            checks.append(text)
            if extra:
                option_checks.append(compare_outputs(stock_out, ask(engines, "ours_nhwc", "check", label), label))
        samples: dict[str, dict[str, list[float]]] = {label: {} for label in uploads}
        for round_ in range(warmup + repeats):
            for label in uploads:  # interleaved: a busy moment on the machine hits every engine alike
                for kind in kinds:
                    times = ask(engines, kind, "time", label)
                    if round_ >= warmup:
                        if kind in INFO_ROWS:  # only their end-to-end time, as (a') / (b')
                            times = {INFO_ROWS[kind]: times["a" if kind.startswith("stock") else "b"]}
                        for key, value in times.items():
                            samples[label].setdefault(key, []).append(value)
        rss = {kind: ask(engines, kind, "stop")["rss_peak_mb"] for kind in kinds}
    finally:
        for process, _ in engines.values():
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
    medians = {label: {key: statistics.median(v) for key, v in per.items()} for label, per in samples.items()}
    ratios = {
        "speedup": geomean([m["a"] / m["b"] for m in medians.values()]),
        "seed_speedup": geomean([m["c"] / m["b"] for m in medians.values()]),
        "overhead": geomean([m["b"] / m["b0"] for m in medians.values()]),
    }
    if extra:
        ratios["stock_tuned_vs_ours"] = geomean([m["a'"] / m["b"] for m in medians.values()])
        ratios["option_speedup"] = geomean([m["a"] / m["b'"] for m in medians.values()])
    return {
        "medians": medians,
        "samples": samples,
        "checks": checks,
        "option_checks": option_checks,
        "ratios": ratios,
        "rss": rss,
    }


def print_speed(confidence: float, run: dict) -> None:
    print(f"\nconfidence {confidence}: median seconds per image (every timed round in brackets)")
    columns = [k for k in ("a", "b", "b0", "c", "a'", "b'") if k in next(iter(run["medians"].values()))]
    heads = {"a": "(a) stock", "b": "(b) ours", "b0": "(b0) fwd", "c": "(c) ancestor"}
    heads.update({"a'": "(a') tuned", "b'": "(b') nhwc"})
    print(f"  {'size':<9}" + "".join(f"{heads[c]:>13}" for c in columns) + "    a/b   c/b  b/b0")
    for label, m in run["medians"].items():
        print(
            f"  {label:<9}"
            + "".join(f"{m[c]:>13.3f}" for c in columns)
            + f"   {m['a'] / m['b']:.2f}  {m['c'] / m['b']:.2f}  {m['b'] / m['b0']:.3f}"
        )
        rounds = "  ".join(f"{k}=[{', '.join(f'{v:.2f}' for v in vs)}]" for k, vs in run["samples"][label].items())
        print(f"  {'':<9} {rounds}")
    for text in run["checks"]:
        print(f"  same outputs as stock: {text}")
    for same, text in run["option_checks"]:
        print(f"  channels_last option vs stock ({'within' if same else 'OUTSIDE'} the tolerance): {text}")
    print("  peak RSS per engine process (MB): " + ", ".join(f"{k} {v:.0f}" for k, v in run["rss"].items()))
    r = run["ratios"]
    line = f"  speedup={r['speedup']:.2f} seed_speedup={r['seed_speedup']:.2f} overhead={r['overhead']:.2f}"
    if "option_speedup" in r:
        line += (
            f"  (a'/b={r['stock_tuned_vs_ours']:.2f}: stock with our allocator; a/b'={r['option_speedup']:.2f}: option)"
        )
    print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--model", type=Path, default=Path(os.environ.get("SEG_MODEL_PATH", ".cache/models/test_model.pkl"))
    )
    parser.add_argument("--image", type=Path, default=REPO / "tests" / "images" / "astronaut.jpg")
    parser.add_argument("--confidence", type=float, default=0.0, help="the compared run (default 0.0)")
    parser.add_argument("--default-confidence", type=float, default=0.5, help="also timed (default 0.5)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cold-repeats", type=int, default=3)
    parser.add_argument("--no-extra", action="store_true", help="skip the info rows (a') and (b')")
    args = parser.parse_args()
    model = args.model if args.model.is_absolute() else REPO / args.model
    if not model.exists():
        raise SystemExit(f"no model at {model}: `python -m handler make-test-model {model}` makes the test model")

    import torch

    print(
        f"engine bench: {model.name}, {os.cpu_count()} CPUs, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), load average {os.getloadavg()[0]:.1f} at start"
    )
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
    cold_ratio = cold["ours"]["total_s"] / cold["bare"]["total_s"]

    nested_bytes, rle_bytes = rle_vs_nested()
    h, w, n = RLE_SHAPE
    print(f"\nmasks as JSON, {h}x{w}x{n}: nested lists {nested_bytes:,} bytes, COCO RLE {rle_bytes:,} bytes")

    low = run_speed(model, args.image, args.confidence, args.warmup, args.repeats, extra=not args.no_extra)
    print_speed(args.confidence, low)
    if args.default_confidence != args.confidence:
        default = run_speed(model, args.image, args.default_confidence, args.warmup, args.repeats, extra=False)
        print_speed(args.default_confidence, default)
    print(f"\nload average {os.getloadavg()[0]:.1f} at end (other tenants share these CPUs: compare within a run)")
    r = low["ratios"]
    print(
        f"speedup={r['speedup']:.2f} seed_speedup={r['seed_speedup']:.2f} overhead={r['overhead']:.2f} "
        f"rle_shrink={nested_bytes / rle_bytes:.2f} cold_ratio={cold_ratio:.2f}"
    )


if __name__ == "__main__":
    main()
