"""The ASR engines size their parallel calls by the cores the process may use, not the machine's."""

from pathlib import Path

import pytest

from scribe.asr import cores
from scribe.asr.cores import usable_cores


@pytest.fixture
def machine(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 64-core machine on which this process may run on every core."""
    monkeypatch.setattr(cores.os, "cpu_count", lambda: 64)
    monkeypatch.setattr(cores.os, "sched_getaffinity", lambda _pid: set(range(64)), raising=False)


@pytest.mark.parametrize(
    ("cpu_max", "expected"),
    [
        ("200000 100000\n", 2),  # a Kubernetes pod limited to 2 CPUs
        ("150000 100000\n", 2),  # 1.5 CPUs: a second worker still has half a core
        ("50000 100000\n", 1),
        ("max 100000\n", 64),  # no quota
    ],
)
def test_cgroup_v2_quota_bounds_the_cores(tmp_path: Path, machine: None, cpu_max: str, expected: int):
    (tmp_path / "cpu.max").write_text(cpu_max)
    assert usable_cores(tmp_path) == expected


@pytest.mark.parametrize(("quota", "expected"), [("300000", 3), ("-1", 64)])
def test_cgroup_v1_quota_bounds_the_cores(tmp_path: Path, machine: None, quota: str, expected: int):
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text(quota + "\n")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert usable_cores(tmp_path) == expected


def test_cpu_affinity_bounds_the_cores(tmp_path: Path, machine: None, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(cores.os, "sched_getaffinity", lambda _pid: {4, 5, 6}, raising=False)
    assert usable_cores(tmp_path) == 3


def test_without_cgroup_files_the_machine_counts(tmp_path: Path, machine: None):
    assert usable_cores(tmp_path / "absent") == 64
