"""What a backfill will cost and take, from the object count and a per-image time: ``backfill --dry-run``.

The per-image time and the init come from ``handler/core/measured.json`` (each figure with its bench, machine,
instruction set and date): the "memory_sizes" section's seconds per image at the worker's MemorySize (between
its rows, interpolated) when that bench has written it, else the "engine" section's (on 2 vCPUs, as Lambda at
its default MemorySize); the init likewise from the memory_sizes rows, else the "init" section's worker figure.
Prices are AWS's published us-east-1 list prices (Lambda per GB-s and per request, S3 Standard requests,
S3 Batch Operations per job and per object); each is a flag where they differ.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from handler.core.measured import MissingMeasurement, measured

MEASURED_NAME = "handler/core/measured.json"
GB_SECOND_PRICE = {"x86_64": 0.0000166667, "arm64": 0.0000133334}
REQUEST_PRICE = 0.20 / 1e6  # Lambda, per invocation
S3_READ_PRICE = 0.0004 / 1000  # HEAD and GET, each
S3_WRITE_PRICE = 0.005 / 1000  # PUT: the .json and the .png overlay
BATCH_JOB_PRICE = 0.25
BATCH_OBJECT_PRICE = 1.00 / 1e6


IMAGE = "1333x800"  # the photo size the estimate prices: the engine section's, a memory_sizes row's p50_s key


def _rows(section: dict[str, Any]) -> dict[int, dict[str, float]]:
    """MemorySize -> {"seconds": per image, "init": seconds (when the row has it)}, from bench/memory_sizes.py's
    rows (``{"memory_mb", "p50_s": {"1333x800": s, ...}, "init_s"}``) or rows with ``seconds_per_image``."""
    rows = [row for value in section.values() if isinstance(value, list) for row in value if isinstance(row, dict)]
    table: dict[int, dict[str, float]] = {}
    for row in rows:
        seconds = row.get("seconds_per_image", (row.get("p50_s") or {}).get(IMAGE))
        if "memory_mb" in row and seconds is not None:
            table[int(row["memory_mb"])] = {"seconds": float(seconds)}
            if row.get("init_s") is not None:
                table[int(row["memory_mb"])]["init"] = float(row["init_s"])
    return table


def _at(memory_mb: int, points: list[tuple[int, float]]) -> float:
    """A duration at this MemorySize: a point's own, or between two points the rate (1/duration) interpolated
    in MemorySize (Lambda's CPU share grows in proportion to it), or outside them the nearest point's."""
    below = [point for point in points if point[0] <= memory_mb] or points[:1]
    above = [point for point in points if point[0] >= memory_mb] or points[-1:]
    (low, low_s), (high, high_s) = below[-1], above[0]
    if high == low:
        return low_s
    return 1 / (1 / low_s + (1 / high_s - 1 / low_s) * (memory_mb - low) / (high - low))


def _memory_sizes() -> dict[int, dict[str, float]]:
    try:
        return _rows(measured("memory_sizes"))
    except MissingMeasurement:
        return {}


def measured_seconds_per_image(memory_mb: int) -> tuple[float, str]:
    """Seconds per image at this MemorySize and where the figure comes from: the memory_sizes rows when that
    bench has written them, else the engine section's figure."""
    rows = _memory_sizes()
    section = "memory_sizes" if rows else "engine"
    figures = measured(section)
    source = f"{figures['source'].split()[0]} on {figures['date']}, {MEASURED_NAME} {section!r}"
    if not rows:
        return float(figures["seconds_per_image"]), source
    return _at(memory_mb, sorted((size, row["seconds"]) for size, row in rows.items())), source


def measured_init_seconds(memory_mb: int) -> float:
    """One worker environment's init (imports and model load), counted once per environment: at this
    MemorySize from the memory_sizes rows when they have it, else the init section's worker figure."""
    inits = sorted((size, row["init"]) for size, row in _memory_sizes().items() if "init" in row)
    return _at(memory_mb, inits) if inits else float(measured("init")["worker_seconds"])


@dataclass(frozen=True)
class Estimate:
    objects: int
    total_bytes: int
    seconds_per_image: float | None = None  # None: the measured figure for memory_mb
    memory_mb: int = 3008
    architecture: str = "x86_64"
    source: str = field(default="given", init=False)

    def __post_init__(self) -> None:
        if self.seconds_per_image is None:
            seconds, source = measured_seconds_per_image(self.memory_mb)
            object.__setattr__(self, "seconds_per_image", seconds)
            object.__setattr__(self, "source", source)

    @property
    def per_image(self) -> float:
        assert self.seconds_per_image is not None  # set in __post_init__
        return self.seconds_per_image

    @property
    def lambda_seconds(self) -> float:
        return self.objects * self.per_image

    @property
    def gb_seconds(self) -> float:
        return self.lambda_seconds * self.memory_mb / 1024

    def costs(self) -> dict[str, float]:
        """US dollars by item; the init phases are left out (they depend on how many environments start)."""
        return {
            "Lambda compute": self.gb_seconds * GB_SECOND_PRICE[self.architecture],
            "Lambda requests": self.objects * REQUEST_PRICE,
            "S3 requests": self.objects * (2 * S3_READ_PRICE + 2 * S3_WRITE_PRICE),
            "Batch Operations": BATCH_JOB_PRICE + self.objects * BATCH_OBJECT_PRICE,
        }

    def wall_clock_seconds(self, concurrency: int) -> float:
        """Every copy busy from start to end, after one cold start each; Batch Operations' ramp-up not counted."""
        rounds = math.ceil(self.objects / concurrency) if self.objects else 0
        return measured_init_seconds(self.memory_mb) + rounds * self.per_image

    def lines(self, concurrencies: list[int]) -> list[str]:
        costs = self.costs()
        per_image = self.per_image * self.memory_mb / 1024
        lines = [
            f"per image: {self.per_image:.2f} s at {self.memory_mb} MB = {per_image:.2f} GB-s ({self.source})",
            f"Lambda time: {self.lambda_seconds:,.0f} s ({self.lambda_seconds / 3600:,.1f} h), "
            f"{self.gb_seconds:,.0f} GB-s",
            "cost (us-east-1 list prices, "
            f"{self.architecture}): "
            + ", ".join(f"{item} ${value:,.2f}" for item, value in costs.items())
            + f"; total ${sum(costs.values()):,.2f}",
        ]
        lines += [f"wall-clock at concurrency {n:,}: {duration(self.wall_clock_seconds(n))}" for n in concurrencies]
        return lines


def duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def size(num_bytes: int) -> str:
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if num_bytes >= scale:
            return f"{num_bytes / scale:.2f} {unit}"
    return f"{num_bytes} bytes"
