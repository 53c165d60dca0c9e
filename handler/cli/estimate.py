"""What a backfill will cost and take, from the object count and a per-image time: ``backfill --dry-run``.

The per-image time defaults to ``bench/engine.py``'s figure for our engine at 1333x800 (its date and machine
are in docs/performance.md): Lambda at the default 3008 MB runs on 2 vCPUs too.
Prices are AWS's published us-east-1 list prices (Lambda per GB-s and per request, S3 Standard requests,
S3 Batch Operations per job and per object); each is a flag where they differ.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

SECONDS_PER_IMAGE = 2.90  # bench/engine.py, (b) ours at 1333x800 (docs/performance.md)
INIT_SECONDS = 6.7  # one cold start's init phase under the Lambda emulator (docs/performance.md), per environment
GB_SECOND_PRICE = {"x86_64": 0.0000166667, "arm64": 0.0000133334}
REQUEST_PRICE = 0.20 / 1e6  # Lambda, per invocation
S3_READ_PRICE = 0.0004 / 1000  # HEAD and GET, each
S3_WRITE_PRICE = 0.005 / 1000  # PUT: the .json and the .png overlay
BATCH_JOB_PRICE = 0.25
BATCH_OBJECT_PRICE = 1.00 / 1e6


@dataclass(frozen=True)
class Estimate:
    objects: int
    total_bytes: int
    seconds_per_image: float = SECONDS_PER_IMAGE
    memory_mb: int = 3008
    architecture: str = "x86_64"

    @property
    def lambda_seconds(self) -> float:
        return self.objects * self.seconds_per_image

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
        return INIT_SECONDS + rounds * self.seconds_per_image

    def lines(self, concurrencies: list[int]) -> list[str]:
        costs = self.costs()
        per_image = self.seconds_per_image * self.memory_mb / 1024
        lines = [
            f"per image: {self.seconds_per_image:.2f} s at {self.memory_mb} MB = {per_image:.2f} GB-s "
            f"({'bench/engine.py, docs/performance.md' if self.seconds_per_image == SECONDS_PER_IMAGE else 'given'})",
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
