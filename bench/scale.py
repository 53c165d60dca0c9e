"""Scale benchmark: peak memory and time per image size, on the crowded and the worst-case test models.

    python bench/scale.py            # makes the dense and worst test models under .cache/models if missing
    python bench/scale.py --cases worst48   # one case

Each case runs ``python -m handler segment WARM IMAGE --out DIR --format both`` (the real entry point: decode,
model, RLE masks in the JSON, the overlay PNG at the default cap) in a fresh process; its peak RSS (``wait4``'s
``ru_maxrss``, model included) is that size's, the seconds are the image's ``timings_ms.total`` from its JSON
(decode, model, masks, overlay), after a small warm-up image in the same process as a warm Lambda would have.

- ``dense``: ``make-test-model --dense``, 100 objects on any image (boxes are the anchors, up to 512 px on the
  model input): tests/images/astronaut.jpg scaled to 1, 12, 24 and 48 MP (4:3, the phone sizes), and at
  6000x4000 (3:2), where the same anchors make the largest boxes (their areas add up to several times the image).
- ``worst``: ``make-test-model --worst``, every box as large as the model can make it: 80 objects, each covering
  the whole image (80 x the image's pixels in boxes), at 24 MP (6000x4000) and 48 MP (8064x6048); also 24 MP
  as a 16-bit grey PNG (decoded through the wide-grey path).
- ``stock``: the stock-style full-mask path, as before the memory rule (PixelLib's postprocess pastes N
  full-size masks, pycocotools encodes the (H, W, N) stack, the overlay is drawn full size), in a worker process
  of this script, for sizes where that needs less than --stock-max-gb.

The machine is shared: run one case at a time (this script does), compare within one run, and quote the load
average printed with each row. The last line is exactly ``rss_24mp_mb=<peak MB> s_24mp=<s>
rss_48mp_mb=<peak MB> s_48mp=<s> rss_dense_24mp_3x2_mb=<peak MB> rss_worst_24mp_mb=<peak MB> s_worst_24mp=<s>
rss_worst_48mp_mb=<peak MB> s_worst_48mp=<s> objects=<fewest found on the dense model>`` for the cases run.
Targets: rss_24mp_mb and rss_dense_24mp_3x2_mb <= 2000, rss_worst_48mp_mb <= 2500, objects >= 90.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
warnings.simplefilter("ignore")

MODELS = {
    "dense": REPO / ".cache" / "models" / "test_model_dense.pkl",
    "worst": REPO / ".cache" / "models" / "test_model_worst.pkl",
}
# Megapixels: (width, height). 12, 24 and 48 MP are the iPhone's own sizes (48 MP: 8064 x 6048 = 48.8 MP).
SIZES = {1: (1155, 866), 12: (4032, 3024), 24: (5712, 4284), 48: (8064, 6048)}
SOURCE = REPO / "tests" / "images" / "astronaut.jpg"
WORST_CONFIDENCE = 0.001  # below handler.model.test_models.WORST_SCORE_FLOOR: every class's whole-image box is kept


@dataclass(frozen=True)
class Case:
    name: str
    model: str  # "dense" | "worst"
    width: int
    height: int
    kind: str = "jpeg"  # "jpeg" | "png16" (16-bit grey PNG)

    @property
    def megapixels(self) -> float:
        return self.width * self.height / 1e6


CASES = {
    "dense1": Case("dense1", "dense", *SIZES[1]),
    "dense12": Case("dense12", "dense", *SIZES[12]),
    "dense24": Case("dense24", "dense", *SIZES[24]),
    "dense48": Case("dense48", "dense", *SIZES[48]),
    "dense24w": Case("dense24w", "dense", 6000, 4000),
    "worst24": Case("worst24", "worst", 6000, 4000),
    "worst24png16": Case("worst24png16", "worst", 6000, 4000, "png16"),
    "worst48": Case("worst48", "worst", *SIZES[48]),
}


def make_jpeg(width: int, height: int) -> bytes:
    import cv2

    source = cv2.imread(str(SOURCE))
    ok, jpeg = cv2.imencode(".jpg", cv2.resize(source, (width, height), interpolation=cv2.INTER_CUBIC))
    assert ok
    return jpeg.tobytes()


def make_image(case: Case) -> bytes:
    if case.kind == "jpeg":
        return make_jpeg(case.width, case.height)
    import cv2

    grey = cv2.cvtColor(cv2.imread(str(SOURCE)), cv2.COLOR_BGR2GRAY)
    wide = cv2.resize(grey, (case.width, case.height), interpolation=cv2.INTER_CUBIC).astype("uint16") * 257
    ok, png = cv2.imencode(".png", wide)
    assert ok
    return png.tobytes()


def run_cli(case: Case) -> dict:
    """``python -m handler segment`` on a warm-up image and the case's image, in a fresh process."""
    with tempfile.TemporaryDirectory(prefix="scale-") as folder:
        work = Path(folder)
        warm, image = work / "in" / "warm.jpg", work / "in" / f"{case.name}.{'png' if case.kind == 'png16' else 'jpg'}"
        warm.parent.mkdir()
        warm.write_bytes(make_jpeg(640, 480))
        image.write_bytes(make_image(case))
        env = {
            **os.environ,
            "SEG_MODEL_PATH": str(MODELS[case.model]),
            "SEG_CONFIDENCE": str(WORST_CONFIDENCE if case.model == "worst" else 0.5),
            "SEG_MAX_PIXELS": str(10**9),
            "SEG_MAX_IMAGE_BYTES": str(10**9),
        }
        command = [sys.executable, "-m", "handler", "segment", str(warm), str(image), "--out", str(work / "out")]
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
        if status != 0:
            raise SystemExit(f"{case.name}: segment failed ({status}):\n{stderr[-3000:]}")
        [result_path] = (work / "out").rglob(f"{image.name}.json")
        result = json.loads(result_path.read_text())
        png = result_path.with_name(f"{image.name}.png")
        boxes = result["boxes"]
        return {
            "case": case.name,
            "size": f"{case.width}x{case.height}",
            "objects": len(boxes),
            "box_mp": round(sum((x2 - x1) * (y2 - y1) for x1, y1, x2, y2 in boxes) / 1e6, 1),
            "seconds": round(result["timings_ms"]["total"] / 1000, 2),
            "process_s": round(wall, 1),
            "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),
            "rss_peak_mb": round(usage.ru_maxrss / 1024),
            "json_bytes": result_path.stat().st_size,
            "png_bytes": png.stat().st_size,
            "load": " ".join(f"{value:.1f}" for value in os.getloadavg()),
        }


def worker(megapixels: int) -> dict:
    """In a fresh process: load, warm up, run one image of ``megapixels`` through the stock-style path."""
    import numpy as np

    from handler.core.settings import Settings
    from handler.engine import images, render
    from handler.engine.results import Segmentation
    from handler.model import MaskCrop, Segmenter

    settings = Settings(model_path=MODELS["dense"], max_pixels=10**9, max_image_bytes=10**9, confidence=0.5)
    segmenter = Segmenter(settings)
    data = make_jpeg(*SIZES[megapixels])
    warm = make_jpeg(640, 480)

    def stock(upload: bytes) -> tuple[int, int, int]:
        import cv2
        import torch
        from pycocotools import mask as coco_mask

        from handler.model.pixellib import T

        rgb = images.decode(upload, max_bytes=10**9, max_pixels=10**9)
        bgr = np.ascontiguousarray(rgb[:, :, ::-1])
        resized = T.ResizeShortestEdge([800, 800], 1333).get_transform(bgr).apply_image(bgr)
        tensor = torch.as_tensor(resized.astype("float32").transpose(2, 0, 1))
        segmenter.model.roi_heads.box_predictor.test_score_thresh = settings.confidence
        with torch.inference_mode():
            found = segmenter.model([{"image": tensor, "height": rgb.shape[0], "width": rgb.shape[1]}])[0]
        masks = found["instances"].pred_masks.numpy()  # (N, H, W) bool
        stacked = np.asfortranarray(masks.transpose(1, 2, 0).astype(np.uint8))
        rles = [{"size": r["size"], "counts": r["counts"].decode()} for r in coco_mask.encode(stacked)]
        del stacked
        body = json.dumps({"masks": rles, "boxes": found["instances"].pred_boxes.tensor.tolist()})
        count = len(masks)
        result = Segmentation(
            width=rgb.shape[1],
            height=rgb.shape[0],
            boxes=found["instances"].pred_boxes.tensor.numpy(),
            scores=found["instances"].scores.numpy(),
            class_ids=found["instances"].pred_classes.numpy(),
            class_names=["person"] * count,
        )
        crops = [MaskCrop(0, 0, mask) for mask in masks]
        ok, png = cv2.imencode(".png", cv2.cvtColor(render(rgb, result, crops, None), cv2.COLOR_RGB2BGR))
        assert ok
        return count, len(body), len(png)

    run = stock
    run(warm)
    started, cpu_started = time.perf_counter(), time.process_time()
    objects, json_bytes, png_bytes = run(data)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    return {
        "case": f"stock{megapixels}",
        "size": "x".join(map(str, SIZES[megapixels])),
        "box_mp": 0.0,
        "process_s": 0.0,
        "objects": objects,
        "seconds": round(seconds, 2),
        "cpu_seconds": round(cpu_seconds, 2),
        "rss_peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "json_bytes": json_bytes,
        "png_bytes": png_bytes,
        "load": " ".join(f"{value:.1f}" for value in os.getloadavg()),
    }


def run_worker(megapixels: int) -> dict:
    done = subprocess.run(
        [sys.executable, __file__, "--worker", str(megapixels)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"worker {megapixels} MP stock failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


COLUMNS = (
    ("case", 12),
    ("size", 10),
    ("objects", 7),
    ("box_mp", 7),
    ("rss_peak_mb", 11),
    ("seconds", 7),
    ("process_s", 9),
    ("cpu_seconds", 11),
    ("json_bytes", 10),
    ("png_bytes", 9),
    ("load", 14),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--worker", type=int, metavar="MP", help=argparse.SUPPRESS)
    parser.add_argument("--stock-max-gb", type=float, default=6.0, help="skip stock sizes needing more memory")
    parser.add_argument("--cases", default=",".join(CASES), help=f"cases to run, of {','.join(CASES)}")
    parser.add_argument("--stock", default="1,12", help="megapixels for the stock-style path, of 1,12,24,48")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker)))
        return
    from handler.model.test_models import make_test_model

    for name, path in MODELS.items():
        if not path.exists():
            make_test_model(path, dense=name == "dense", worst=name == "worst")
    print(" ".join(f"{name:>{width}}" for name, width in COLUMNS))
    rows: dict[str, dict] = {}

    def show(row: dict) -> None:
        print(" ".join(f"{row[name]!s:>{width}}" for name, width in COLUMNS), flush=True)

    for name in (case.strip() for case in args.cases.split(",") if case.strip()):
        rows[name] = run_cli(CASES[name])
        show(rows[name])
    for megapixels in (int(size) for size in args.stock.split(",") if size.strip()):
        width, height = SIZES[megapixels]
        # Stock holds N x H x W bools, then their uint8 Fortran copy: about 2 x 100 x H x W bytes.
        if 2 * 100 * width * height / 1e9 > args.stock_max_gb:
            print(f"stock{megapixels}: skipped, about {2 * 100 * width * height / 1e9:.0f} GB")
            continue
        show(run_worker(megapixels))
    keys = {
        "rss_24mp_mb": ("dense24", "rss_peak_mb"),
        "s_24mp": ("dense24", "seconds"),
        "rss_48mp_mb": ("dense48", "rss_peak_mb"),
        "s_48mp": ("dense48", "seconds"),
        "rss_dense_24mp_3x2_mb": ("dense24w", "rss_peak_mb"),
        "rss_worst_24mp_mb": ("worst24", "rss_peak_mb"),
        "s_worst_24mp": ("worst24", "seconds"),
        "rss_worst_48mp_mb": ("worst48", "rss_peak_mb"),
        "s_worst_48mp": ("worst48", "seconds"),
    }
    line = [f"{key}={rows[case][field]}" for key, (case, field) in keys.items() if case in rows]
    dense = [row["objects"] for name, row in rows.items() if name.startswith("dense")]
    if dense:
        line.append(f"objects={min(dense)}")
    print(" ".join(line))


if __name__ == "__main__":
    main()
