"""The encoders' default thread count (rag.encoding.cpus): the affinity capped by the cgroup's CPU quota.

Each case writes a fake /sys/fs/cgroup tree and /proc/self/cgroup under tmp_path, as Docker (`--cpus`), Kubernetes
(a limit on the pod's parent cgroup) and systemd lay them out, cgroup v2 and v1.
"""

from __future__ import annotations

import os

import pytest

from rag.encoding import cpus
from rag.encoding.onnx_encoder import default_threads


def _tree(tmp_path, files: dict[str, str], proc: str):
    root = tmp_path / "cgroup"
    for relative, text in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text)
    (tmp_path / "proc-cgroup").write_text(proc)
    return root, tmp_path / "proc-cgroup"


@pytest.mark.parametrize("files, proc, expected", [
    ({"cpu.max": "200000 100000\n"}, "0::/\n", 2),  # docker --cpus 2, v2, the container's own tree at the mount
    ({"cpu.max": "150000 100000\n"}, "0::/\n", 2),  # 1.5 cores: rounded up
    ({"cpu.max": "max 100000\n"}, "0::/\n", None),  # no limit
    ({"kubepods/pod1/cpu.max": "max 100000\n", "kubepods/cpu.max": "300000 100000\n"}, "0::/kubepods/pod1\n", 3),  # a parent's limit
    ({"a/b/cpu.max": "100000 100000\n", "a/cpu.max": "400000 100000\n"}, "0::/a/b\n", 1),  # the smallest on the way up
    ({"cpu/cpu.cfs_quota_us": "400000\n", "cpu/cpu.cfs_period_us": "100000\n"}, "4:cpu,cpuacct:/\n", 4),  # v1
    ({"cpu,cpuacct/docker/x/cpu.cfs_quota_us": "-1\n", "cpu,cpuacct/docker/x/cpu.cfs_period_us": "100000\n"},
     "4:cpu,cpuacct:/docker/x\n", None),  # v1 without a quota
    ({"cpu.max": "garbage\n"}, "0::/\n", None),  # malformed: no quota known, no error
    ({}, "", None),  # no cgroup file system at all
])
def test_the_quota_is_read_from_v2_and_v1_trees(tmp_path, files, proc, expected):
    root, proc_file = _tree(tmp_path, files, proc)
    assert cpus.cpu_quota(root, proc_file) == expected


def test_the_default_thread_count_is_the_affinity_capped_by_the_quota(tmp_path):
    affinity = len(os.sched_getaffinity(0))
    root, proc_file = _tree(tmp_path, {"cpu.max": "100000 100000\n"}, "0::/\n")
    assert cpus.usable_cores(root, proc_file) == 1
    root, proc_file = _tree(tmp_path / "wide", {"cpu.max": f"{(affinity + 8) * 100000} 100000\n"}, "0::/\n")
    assert cpus.usable_cores(root, proc_file) == affinity  # a quota above the cores the process may run on
    assert 1 <= default_threads() <= affinity


def test_torch_threads_are_capped_by_the_quota_too(monkeypatch):
    """Other models and RAG_ENCODER=torch run in torch, which counts the host's cores."""
    import torch

    from rag.encoding import torch_encoder

    before = torch.get_num_threads()
    monkeypatch.setattr(torch_encoder, "usable_cores", lambda: 1)
    try:
        torch_encoder._threads_within_quota()
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
