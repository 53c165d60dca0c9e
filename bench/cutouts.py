"""Cut-outs benchmark: peak memory and time of ``python -m handler segment --cutouts`` on crowded photos.

    python bench/cutouts.py                 # 24 and 48 MP; makes .cache/models/test_model_dense.pkl if missing
    python bench/cutouts.py --sizes 24

The dense test model finds 100 objects on any image. Each size (tests/images/astronaut.jpg scaled as in
bench/scale.py) runs through the real command in fresh processes, side by side: ``--format json`` alone,
then with ``--cutouts`` (mask) and ``--cutouts box``. A fresh process's time includes imports and the model
load; the cut-outs' own time is the JSON's ``timings_ms.cutouts`` (making and writing them); peak RSS is
each child's own (``wait4``), to compare with the JSON-only run of the same size. The zip is what
``/segment?format=cutouts`` would answer for the same objects: the result JSON and the PNGs written, zipped as
``handler.engine.CutoutZip`` zips them (PNGs stored, the JSON deflated, last).

The machine is shared: compare numbers within one run. The last line is exactly
``rss_24mp_mb=<json only> rss_24mp_cutouts_mb=<with cutouts> s_24mp_cutouts=<s> zip_24mp_bytes=<bytes>``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.scale import DENSE_MODEL, SIZES, make_jpeg  # noqa: E402

RUNS = {"json": [], "mask": ["--cutouts"], "box": ["--cutouts", "box"]}


def run(image: Path, out: Path, flags: list[str]) -> tuple[float, int]:
    """Seconds and peak RSS (MB) of one fresh ``python -m handler segment`` process."""
    env = {
        **os.environ,
        "SEG_MODEL_PATH": str(DENSE_MODEL),
        "SEG_CONFIDENCE": "0.5",
        "SEG_DETECTION_SPEED": "normal",
        "SEG_MAX_PIXELS": str(10**9),
        "SEG_MAX_IMAGE_BYTES": str(10**9),
    }
    command = [sys.executable, "-m", "handler", "segment", str(image), "--out", str(out), "--format", "json", *flags]
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    output = process.stdout.read().decode() + process.stderr.read().decode()  # type: ignore[union-attr]
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{output[-3000:]}")
    return seconds, round(usage.ru_maxrss / 1024)


def zip_size(result_path: Path) -> tuple[int, int, int, float, int]:
    """(objects, bytes of all PNGs, the largest PNG, seconds making and writing them (the JSON's
    ``timings_ms.cutouts``), the zip's bytes) of a result written with --cutouts."""
    result = json.loads(result_path.read_text())
    folder = result_path.parent / result["cutouts"]["prefix"]
    sizes = []
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in result["cutouts"]["names"]:
            png = (folder / name).read_bytes()
            sizes.append(len(png))
            archive.writestr(name, png, compress_type=zipfile.ZIP_STORED)
        without = {key: value for key, value in result.items() if key not in ("cutouts", "source")}
        archive.writestr("result.json", json.dumps(without), compress_type=zipfile.ZIP_DEFLATED)
    seconds = result["timings_ms"]["cutouts"] / 1000
    return len(sizes), sum(sizes), max(sizes, default=0), seconds, len(buffer.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="24,48", help="megapixels to run, of 1,12,24,48")
    args = parser.parse_args()
    if not DENSE_MODEL.exists():
        from handler.model.test_models import make_test_model

        make_test_model(DENSE_MODEL, dense=True)
    header = ("MP", "run", "seconds", "peak RSS MB", "objects", "PNG bytes", "largest", "cut-outs s", "zip")
    widths = (3, 5, 8, 12, 8, 10, 9, 10, 10)
    print(" ".join(f"{name:>{width}}" for name, width in zip(header, widths, strict=True)))
    summary = {}
    with tempfile.TemporaryDirectory() as folder:
        for megapixels in (int(size) for size in args.sizes.split(",")):
            image = Path(folder) / f"photo{megapixels}.jpg"
            image.write_bytes(make_jpeg(*SIZES[megapixels]))
            for name, flags in RUNS.items():
                out = Path(folder) / f"out-{megapixels}-{name}"
                seconds, rss = run(image, out, flags)
                sizes = zip_size(out / (image.name + ".json")) if flags else ("", "", "", "", "")
                summary[megapixels, name] = (seconds, rss, sizes[3], sizes[4])
                row = f"{megapixels:>3} {name:>5} {seconds:>8.1f} {rss:>12} {sizes[0]:>8} {sizes[1]:>10} {sizes[2]:>9}"
                cutout_s = f"{sizes[3]:.1f}" if flags else ""
                print(f"{row} {cutout_s:>10} {sizes[4]:>10}", flush=True)
    if (24, "json") in summary:
        plain, mask = summary[24, "json"], summary[24, "mask"]
        print(
            f"rss_24mp_mb={plain[1]} rss_24mp_cutouts_mb={mask[1]} s_24mp_cutouts={mask[2]:.1f} "
            f"zip_24mp_bytes={mask[3]}"
        )


if __name__ == "__main__":
    main()
