"""How many CPU cores this process may use: what the ASR engines size their threads and parallel calls by.

`os.cpu_count()` is the machine's count. In a container (Kubernetes, compose `cpus:`) the process
may use fewer: the CPUs it is pinned to, and its cgroup CPU quota. Sizing by the machine would run,
say, 64 parallel Whisper calls in a pod allowed 2 cores, so every stream slows together instead of
the extra ones queueing.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def _quota_cores(cgroup_root: Path) -> int | None:
    """The CFS quota in whole cores (rounded up), from cgroup v2 `cpu.max` or v1 `cpu.cfs_quota_us`; None: no limit."""
    try:
        max_quota, max_period = (cgroup_root / "cpu.max").read_text().split()[:2]
        if max_quota != "max":
            return max(1, math.ceil(int(max_quota) / int(max_period)))
        return None
    except (OSError, ValueError):
        pass
    try:
        quota = int((cgroup_root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((cgroup_root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return max(1, math.ceil(quota / period)) if quota > 0 and period > 0 else None


def usable_cores(cgroup_root: Path = CGROUP_ROOT) -> int:
    """Cores this process may run on: the machine's, narrowed to its CPU affinity and its cgroup quota."""
    cores = os.cpu_count() or 1
    if hasattr(os, "sched_getaffinity"):
        cores = min(cores, len(os.sched_getaffinity(0)) or cores)
    quota = _quota_cores(cgroup_root)
    return min(cores, quota) if quota else cores
