"""How many CPUs this process may use: its CPU affinity, capped by the cgroup's CPU quota where one is set.

Lambda sells CPU through MemorySize (one vCPU at 1,769 MB, up to six at 10,240 MB); a container runtime may
pin the process to some cores (affinity, ``taskset``) or give it a share of time (the cgroup quota:
``cpu.max`` in cgroup v2, ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us`` in v1). ``os.cpu_count()`` sees
neither. torch's intra-op threads and our own pools size themselves from ``available_cpus()`` so that they
never run more threads than the CPUs they get. A fractional quota rounds up (1.5 CPUs of time on two cores
is more work done by two threads than by one), never past the affinity.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")


def affinity_cpus() -> int:
    """The CPUs the scheduler may run this process on (``taskset``, a container's cpuset)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None


def _own_paths(proc_cgroup: Path) -> dict[str, str]:
    """This process's cgroup path per controller list from ``/proc/self/cgroup`` ("" is the v2 hierarchy)."""
    paths: dict[str, str] = {}
    for line in (_read(proc_cgroup) or "").splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            paths[parts[1]] = parts[2].lstrip("/")
    return paths


def _v2_quota(directory: Path) -> float | None:
    text = _read(directory / "cpu.max")
    if not text:
        return None
    quota, _, period = text.partition(" ")
    try:
        return int(quota) / int(period or "100000") if quota != "max" else None
    except (ValueError, ZeroDivisionError):
        return None


def _v1_quota(directory: Path) -> float | None:
    quota, period = _read(directory / "cpu.cfs_quota_us"), _read(directory / "cpu.cfs_period_us")
    try:
        return int(quota) / int(period) if quota and period and int(quota) > 0 else None
    except (ValueError, ZeroDivisionError):
        return None


def cgroup_quota(root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP) -> float | None:
    """The CPU quota in CPUs (1.5 = one and a half CPUs of time per second), or None where none is set.

    Looks in this process's own cgroup (``/proc/self/cgroup``) and at the root of the mount (what a container
    sees under its cgroup namespace), cgroup v2 first, then v1's ``cpu`` controller; the smallest quota wins.
    """
    own = _own_paths(proc_cgroup)
    v2 = [root / own[""], root] if "" in own else [root]
    v1_rel = next((path for names, path in own.items() if "cpu" in names.split(",")), "")
    v1 = [root / name / v1_rel for name in ("cpu", "cpu,cpuacct")] + [root / "cpu", root / "cpu,cpuacct"]
    quotas = [q for q in (*map(_v2_quota, v2), *map(_v1_quota, v1)) if q is not None and q > 0]
    return min(quotas) if quotas else None


def available_cpus(root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP) -> int:
    """The number of threads that keeps every CPU this process may use busy without oversubscribing them."""
    cpus = affinity_cpus()
    quota = cgroup_quota(root, proc_cgroup)
    if quota is not None:
        cpus = min(cpus, max(1, math.ceil(quota - 1e-9)))
    return cpus
