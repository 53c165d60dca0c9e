"""Where and when a bench ran, for the sections it writes to ``handler/core/measured.json``.

from provenance import record
record("init", {"worker_seconds": 2.5}, source="bench/init.py ...")
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

# The widest vector extension first: what decides which kernels oneDNN and our Winograd choose.
ISA_FLAGS = (("avx512f", "avx512"), ("avx2", "avx2"), ("asimd", "neon"))


def cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError:
        return set()
    lines = [line for line in text.splitlines() if line.startswith(("flags", "Features"))]
    return set(lines[0].split(":", 1)[1].split()) if lines else set()


def isa() -> str:
    """The vector instruction set torch's kernels use here: ``ATEN_CPU_CAPABILITY`` when it caps them, else the
    host's widest (avx512, avx2, neon, or baseline)."""
    capped = os.environ.get("ATEN_CPU_CAPABILITY", "").lower()
    if capped in ("avx2", "avx512", "default"):
        return "baseline" if capped == "default" else capped
    flags = cpu_flags()
    return next((name for flag, name in ISA_FLAGS if flag in flags), "baseline")


def machine() -> str:
    model = ""
    try:
        done = subprocess.run(["lscpu"], capture_output=True, text=True, check=False)  # noqa: S607
        model = next((line.split(":", 1)[1].strip() for line in done.stdout.splitlines() if "Model name" in line), "")
    except OSError:
        pass
    cpus = len(os.sched_getaffinity(0))
    return f"{model or platform.processor() or platform.machine()}, {cpus} CPUs, no GPU used"


def commit() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)  # noqa: S607
    return done.stdout.strip() or "unknown"


def record(section: str, figures: dict[str, Any], *, source: str) -> None:
    """Writes ``section`` with this machine, its ISA, the time (UTC) and the commit measured."""
    from handler.core.measured import write_section

    date = datetime.now(UTC).strftime("%Y-%m-%dT%H:%MZ")
    write_section(section, figures, source=f"{source} at {commit()}", machine=machine(), isa=isa(), date=date)
    print(f"wrote the {section!r} section of handler/core/measured.json")
