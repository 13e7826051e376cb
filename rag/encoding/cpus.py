"""How many cores this process may really use: the thread count the encoders default to.

`os.sched_getaffinity` says which cores the process may run on, but not how much of them: a container started
with `docker run --cpus 2` (or a Kubernetes CPU limit) on a 64-core host sees 64 cores and gets two cores' worth
of time, through the cgroup's CPU quota. An onnxruntime session of 64 threads there spends most of its time
throttled and waiting for its slowest thread. So the default is the smaller of the affinity and the quota,
rounded up (as the JVM, Go and joblib's loky read it):

* cgroup v2: `cpu.max` ("<quota> <period>" or "max <period>") of the process's own cgroup and of every
  ancestor up to the mount (a limit on a parent applies to its children), the smallest;
* cgroup v1: `cpu.cfs_quota_us` / `cpu.cfs_period_us` of the `cpu` controller (-1: no quota).

Anything unreadable or malformed means "no quota known", never an error.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def usable_cores(cgroup_root: Path = CGROUP_ROOT, proc_cgroup: Path = Path("/proc/self/cgroup")) -> int:
    """The cores this process may run on, capped by its cgroup's CPU quota; at least 1."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    quota = cpu_quota(cgroup_root, proc_cgroup)
    return max(1, min(cores, quota) if quota is not None else cores)


def cpu_quota(cgroup_root: Path = CGROUP_ROOT, proc_cgroup: Path = Path("/proc/self/cgroup")) -> int | None:
    """Cores' worth of CPU time the cgroup grants (quota / period, rounded up), or None when there is no quota."""
    try:
        lines = proc_cgroup.read_text(encoding="ascii", errors="replace").splitlines()
    except OSError:
        lines = []
    paths: dict[str, str] = {}  # controller ("" for the v2 unified tree) -> the process's cgroup path
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) == 3:
            for controller in parts[1].split(",") if parts[1] else [""]:
                paths[controller] = parts[2]
    found = [q for q in (_v2_quota(cgroup_root, paths.get("", "/")), _v1_quota(cgroup_root, paths.get("cpu", "/")))
             if q is not None]
    return min(found) if found else None


def _v2_quota(root: Path, own: str) -> int | None:
    limits = []
    for folder in _up_to_root(root, own):
        try:
            quota, period = (folder / "cpu.max").read_text(encoding="ascii").split()[:2]
        except (OSError, ValueError):
            continue
        if quota != "max":
            limits.append(_cores(quota, period))
    limits = [limit for limit in limits if limit is not None]
    return min(limits) if limits else None


def _v1_quota(root: Path, own: str) -> int | None:
    for mount in ("cpu", "cpu,cpuacct", "cpuacct,cpu"):
        for folder in _up_to_root(root / mount, own):
            try:
                quota = (folder / "cpu.cfs_quota_us").read_text(encoding="ascii").strip()
                period = (folder / "cpu.cfs_period_us").read_text(encoding="ascii").strip()
            except OSError:
                continue
            return _cores(quota, period)  # the innermost folder that has the files (a container sees its own at the mount)
    return None


def _up_to_root(root: Path, own: str) -> list[Path]:
    """`root/own`, its parents, and `root` itself (inside a container the own path often is not mounted: root only)."""
    parts = [p for p in own.split("/") if p and p not in (".", "..")]
    return [root.joinpath(*parts[:i]) for i in range(len(parts), -1, -1)]


def _cores(quota: str, period: str) -> int | None:
    try:
        quota_us, period_us = int(quota), int(period)
    except ValueError:
        return None
    if quota_us <= 0 or period_us <= 0:
        return None
    return max(1, math.ceil(quota_us / period_us))
