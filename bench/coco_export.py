"""export-coco benchmark: time and peak RSS of ``python -m handler export-coco`` for growing numbers of results.

    python bench/coco_export.py                 # 1,000 and 10,000 results
    python bench/coco_export.py --counts 1000 10000 100000

Results are synthetic (``infra/synthetic_results.py``: the engine's own RLE encoder over ellipses, 0-8 objects
per image, 320x240 to 1024x768, ``source.key`` set), written to a temp folder first (not timed). Each export
runs in a fresh process through the command's own entry (``handler.cli.main``, progress bar included); the
process reports the import time, the export's time, and its RSS after the imports and at its peak
(``ru_maxrss``), so that what the export itself holds is the difference (torch comes with ``handler.engine``).
The ratios between sizes are what counts on a shared machine; the last line is
``rss_ratio=<largest/smallest peak RSS> growth_mb=<largest/smallest RSS over imports> time_per_result_ratio=<...>``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


CHILD = """
import json, resource, sys, time
started = time.perf_counter()
from handler.cli import main
import handler.cli.export_coco
imported = time.perf_counter()
floor = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
code = main(["export-coco", sys.argv[1], "--out", sys.argv[2]])
done = time.perf_counter()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
times = {"import_s": imported - started, "export_s": done - imported}
print(json.dumps({"code": code, "floor_mb": floor, "peak_mb": peak, **times}))
"""


def measure(folder: Path, out: Path) -> dict[str, float]:
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(folder), str(out)], cwd=REPO, capture_output=True, text=True, check=True
    )
    report = json.loads(child.stdout.strip().splitlines()[-1])
    if report["code"]:
        raise SystemExit(f"export-coco exited {report['code']}: {child.stdout[-2000:]}")
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", type=int, nargs="+", default=[1000, 10000])
    args = parser.parse_args()

    from infra.synthetic_results import write_results

    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for count in sorted(args.counts):
            folder = write_results(Path(scratch) / str(count), count)
            out = Path(scratch) / f"instances-{count}.json"
            run = measure(folder, out)
            source_mb = sum(path.stat().st_size for path in folder.iterdir()) / 1e6
            rows.append((count, run))
            print(
                f"{count:>8} results ({source_mb:.0f} MB of result JSON) -> {out.stat().st_size / 1e6:.0f} MB COCO "
                f"file: export {run['export_s']:.1f} s ({1000 * run['export_s'] / count:.2f} ms/result; imports "
                f"{run['import_s']:.1f} s before it), RSS {run['floor_mb']:.0f} MB after the imports, peak "
                f"{run['peak_mb']:.0f} MB ({run['peak_mb'] - run['floor_mb']:+.1f} MB for the export)"
            )
    (small, first), (large, last) = rows[0], rows[-1]
    print(
        f"rss_ratio={last['peak_mb'] / first['peak_mb']:.3f} "
        f"growth_mb={last['peak_mb'] - last['floor_mb']:.1f}/{first['peak_mb'] - first['floor_mb']:.1f} "
        f"time_per_result_ratio={(last['export_s'] / large) / (first['export_s'] / small):.3f}"
    )


if __name__ == "__main__":
    main()
