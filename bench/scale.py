"""Scale benchmark: memory and time of a crowded photo (100 objects) at 1, 12, 24 and 48 megapixels.

    python bench/scale.py            # makes .cache/models/test_model_dense.pkl if missing

The dense test model (``python -m handler make-test-model --dense``) finds 100 objects on any image: the
crowded worst case. The images are tests/images/astronaut.jpg scaled to about 1, 12, 24 and 48 MP (4:3, the
phone sizes) and saved as JPEG. Each size runs in a fresh worker process (its peak RSS is that size's, model
included), warmed up on a small image first as a warm Lambda would be, then timed once through the real
pipeline: the JPEG bytes to ``segment_bytes``, the JSON with COCO RLE masks (``json.dumps``) and the overlay
PNG at the default cap (SEG_OVERLAY_MAX_SIDE, 2048 px). The same sizes also run through the stock-style
full-mask path, as before the memory rule: PixelLib's postprocess pastes N full-size masks, pycocotools
encodes the (H, W, N) stack, the overlay is drawn full size; sizes where that would need more than
--stock-max-gb of memory are skipped (48 MP: about 10 GB).

The machine is shared: compare numbers within one run; "CPU s" (the worker's CPU time for the timed image)
shows what other tenants' load does to the wall-clock seconds. The last line is exactly
``rss_24mp_mb=<peak MB> s_24mp=<seconds> rss_48mp_mb=<peak MB> s_48mp=<seconds> objects=<fewest found>``.
Targets: rss_24mp_mb <= 2000, s_24mp <= 15, objects >= 90.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
warnings.simplefilter("ignore")

DENSE_MODEL = REPO / ".cache" / "models" / "test_model_dense.pkl"
# Megapixels: (width, height). 12, 24 and 48 MP are the iPhone's own sizes (48 MP: 8064 x 6048 = 48.8 MP).
SIZES = {1: (1155, 866), 12: (4032, 3024), 24: (5712, 4284), 48: (8064, 6048)}
SOURCE = REPO / "tests" / "images" / "astronaut.jpg"


def make_jpeg(width: int, height: int) -> bytes:
    import cv2

    source = cv2.imread(str(SOURCE))
    ok, jpeg = cv2.imencode(".jpg", cv2.resize(source, (width, height), interpolation=cv2.INTER_CUBIC))
    assert ok
    return jpeg.tobytes()


def worker(megapixels: int, kind: str) -> dict:
    """In a fresh process: load, warm up, run one image of ``megapixels`` through ``kind``'s path."""
    import numpy as np

    from handler.engine import Outputs, images, render, segment_bytes
    from handler.engine.results import Segmentation
    from handler.model import MaskCrop, Segmenter
    from handler.settings import Settings

    settings = Settings(model_path=DENSE_MODEL, max_pixels=10**9, max_image_bytes=10**9, confidence=0.5)
    segmenter = Segmenter(settings)
    data = make_jpeg(*SIZES[megapixels])
    warm = make_jpeg(640, 480)

    def ours(upload: bytes) -> tuple[int, int, int]:
        outputs = Outputs(masks="rle", overlay=True, overlay_max_side=settings.overlay_max_side)
        segmented = segment_bytes(upload, segmenter, settings, outputs=outputs)
        body = json.dumps(segmented.result.to_json())
        return len(segmented.result), len(body), len(segmented.result.overlay_png or b"")

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

    run = ours if kind == "ours" else stock
    run(warm)
    started, cpu_started = time.perf_counter(), time.process_time()
    objects, json_bytes, png_bytes = run(data)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    return {
        "mp": megapixels,
        "kind": kind,
        "size": "x".join(map(str, SIZES[megapixels])),
        "objects": objects,
        "seconds": round(seconds, 2),
        "cpu_seconds": round(cpu_seconds, 2),
        "rss_peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "json_bytes": json_bytes,
        "png_bytes": png_bytes,
    }


def run_worker(megapixels: int, kind: str) -> dict:
    done = subprocess.run(
        [sys.executable, __file__, "--worker", str(megapixels), kind], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"worker {megapixels} MP {kind} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--worker", nargs=2, metavar=("MP", "KIND"), help=argparse.SUPPRESS)
    parser.add_argument("--stock-max-gb", type=float, default=6.0, help="skip stock sizes needing more memory")
    parser.add_argument("--sizes", default="1,12,24,48", help="megapixels to run, of 1,12,24,48")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(int(args.worker[0]), args.worker[1])))
        return
    if not DENSE_MODEL.exists():
        from infra.test_models import make_test_model

        make_test_model(DENSE_MODEL, dense=True)
    rows = {}
    header = ("MP", "size", "path", "objects", "peak RSS MB", "seconds", "CPU s", "JSON B", "PNG B")
    print(" ".join(f"{name:>{width}}" for name, width in zip(header, (3, 10, 6, 7, 11, 7, 7, 10, 10), strict=True)))
    for megapixels in (int(size) for size in args.sizes.split(",")):
        width, height = SIZES[megapixels]
        kinds = ["ours"]
        # Stock holds N x H x W bools, then their uint8 Fortran copy: about 2 x 100 x H x W bytes.
        if 2 * 100 * width * height / 1e9 <= args.stock_max_gb:
            kinds.append("stock")
        for kind in kinds:
            row = run_worker(megapixels, kind)
            rows[megapixels, kind] = row
            print(
                f"{megapixels:>3} {row['size']:>10} {kind:>6} {row['objects']:>7} {row['rss_peak_mb']:>11} "
                f"{row['seconds']:>7.1f} {row['cpu_seconds']:>7.1f} {row['json_bytes']:>10} {row['png_bytes']:>10}",
                flush=True,
            )
        if "stock" not in kinds:
            print(f"{megapixels:>3} {'':>10} {'stock':>6} skipped: about {2 * 100 * width * height / 1e9:.0f} GB")
    ours = {mp: row for (mp, kind), row in rows.items() if kind == "ours"}
    fewest = min(row["objects"] for row in ours.values())
    print(
        f"rss_24mp_mb={ours[24]['rss_peak_mb']} s_24mp={ours[24]['seconds']:.1f} "
        f"rss_48mp_mb={ours[48]['rss_peak_mb']} s_48mp={ours[48]['seconds']:.1f} objects={fewest}"
    )


if __name__ == "__main__":
    main()
