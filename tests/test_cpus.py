"""Threads follow the CPUs the process may use: affinity (taskset), the cgroup quota, an explicit number wins."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

from handler.core.cpus import affinity_cpus, available_cpus, cgroup_quota
from handler.core.settings import Settings

NO_PROC = Path("/nonexistent/proc-self-cgroup")
TASKSET = shutil.which("taskset")

SEEN_IN_A_CHILD = """
import json, torch
from handler.core.cpus import available_cpus
from handler.core.settings import Settings
from handler.engine.objects import object_threads
settings = Settings()
torch.set_num_threads(settings.torch_threads)
print(json.dumps({"cpus": available_cpus(), "setting": settings.torch_threads, "torch": torch.get_num_threads(),
                  "objects": object_threads(settings)}))
"""


def child_sees(cpu_list: str, **env: str) -> dict[str, int]:
    environ = {k: v for k, v in os.environ.items() if k != "SEG_TORCH_THREADS"} | env
    out = subprocess.run(
        [str(TASKSET), "-c", cpu_list, sys.executable, "-c", SEEN_IN_A_CHILD],
        cwd=REPO,
        env=environ | {"PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not TASKSET, reason="needs taskset (util-linux)")
def test_a_process_under_taskset_on_one_cpu_runs_one_thread():
    seen = child_sees("0")
    assert seen == {"cpus": 1, "setting": 1, "torch": 1, "objects": 1}


@pytest.mark.skipif(not TASKSET or affinity_cpus() < 2, reason="needs taskset and two CPUs")
def test_two_cpus_give_two_threads_and_an_explicit_number_wins():
    assert child_sees("0,1") == {"cpus": 2, "setting": 2, "torch": 2, "objects": 2}
    assert child_sees("0,1", SEG_TORCH_THREADS="1")["torch"] == 1
    assert child_sees("0", SEG_TORCH_THREADS="3")["torch"] == 3  # the operator's number, even past the CPUs


def fake_cgroup(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


@pytest.mark.parametrize(
    ("files", "quota"),
    [
        ({"cpu.max": "max 100000\n"}, None),
        ({"cpu.max": "100000 100000\n"}, 1.0),
        ({"cpu.max": "150000 100000\n"}, 1.5),
        ({"cpu/cpu.cfs_quota_us": "50000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 0.5),
        ({"cpu,cpuacct/cpu.cfs_quota_us": "-1\n", "cpu,cpuacct/cpu.cfs_period_us": "100000\n"}, None),
        ({"cpu.max": "garbage\n"}, None),
        ({}, None),
    ],
    ids=["v2 unlimited", "v2 one CPU", "v2 one and a half", "v1 half", "v1 unlimited", "unreadable", "none"],
)
def test_the_cgroup_quota_is_read_from_v2_and_v1_files(tmp_path, files, quota):
    assert cgroup_quota(fake_cgroup(tmp_path, files), NO_PROC) == quota


def test_the_quota_is_looked_up_in_the_process_own_cgroup(tmp_path):
    root = fake_cgroup(tmp_path, {"cpu.max": "max 100000\n", "lambda/fn/cpu.max": "100000 100000\n"})
    proc = tmp_path / "proc-cgroup"
    proc.write_text("0::/lambda/fn\n")
    assert cgroup_quota(root, proc) == 1.0


def test_a_quota_caps_the_threads_and_never_more_than_the_cpus(tmp_path):
    one = fake_cgroup(tmp_path / "one", {"cpu.max": "100000 100000\n"})
    assert available_cpus(one, NO_PROC) == 1
    plenty = fake_cgroup(tmp_path / "plenty", {"cpu.max": f"{(affinity_cpus() + 8) * 100000} 100000\n"})
    assert available_cpus(plenty, NO_PROC) == affinity_cpus()  # a quota never adds CPUs
    fraction = fake_cgroup(tmp_path / "fraction", {"cpu.max": "170000 100000\n"})
    assert available_cpus(fraction, NO_PROC) == min(2, affinity_cpus())  # 1.7 CPUs of time: two threads
    unset = fake_cgroup(tmp_path / "unset", {})
    assert available_cpus(unset, NO_PROC) == affinity_cpus() <= (os.cpu_count() or 1)


def test_torch_threads_setting_is_auto_by_default_and_a_number_wins(monkeypatch):
    monkeypatch.delenv("SEG_TORCH_THREADS", raising=False)
    assert Settings().torch_threads == available_cpus()
    monkeypatch.setenv("SEG_TORCH_THREADS", "auto")
    assert Settings().torch_threads == available_cpus()
    monkeypatch.setenv("SEG_TORCH_THREADS", "5")
    assert Settings().torch_threads == 5
    monkeypatch.setenv("SEG_TORCH_THREADS", "many")
    with pytest.raises(ValueError, match="torch_threads"):
        Settings()
