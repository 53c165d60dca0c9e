"""Figures measured by the benches, read from one data file (``measured.json``) that the benches write.

Whatever prices or budgets from a measurement (the deadline, the backfill estimate, video chunk sizes, the
MemorySize guide) reads it here, never from constants copied into code; docs quote the same file. Each
section records the bench that wrote it and the machine, instruction set and date it ran on.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

MEASURED_FILE = Path(__file__).with_name("measured.json")
PROVENANCE = ("source", "machine", "isa", "date")


class MissingMeasurement(KeyError):
    """A section or figure the data file lacks: run the bench that writes it."""


@cache
def _all() -> dict[str, dict[str, Any]]:
    return json.loads(MEASURED_FILE.read_text(encoding="utf-8"))


def measured(section: str) -> dict[str, Any]:
    """One section of the data file: its figures plus ``source``, ``machine``, ``isa`` and ``date``."""
    try:
        return _all()[section]
    except KeyError:
        raise MissingMeasurement(f"{MEASURED_FILE.name} has no section {section!r}") from None


def write_section(section: str, figures: dict[str, Any], *, source: str, machine: str, isa: str, date: str) -> None:
    """For the benches: replace one section, keeping the others (sorted keys, so diffs stay readable)."""
    data = json.loads(MEASURED_FILE.read_text(encoding="utf-8")) if MEASURED_FILE.exists() else {}
    data[section] = {"source": source, "machine": machine, "isa": isa, "date": date, **figures}
    MEASURED_FILE.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    _all.cache_clear()
