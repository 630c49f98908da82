"""Shared helpers of the network-lab tests: reading the real state of namespaces, links and
sysctls, and a libnfs client run in the lab's node namespace (one process per read: the
libnfs binding crawls when shared by threads)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pytest_inference.netlab import LabUnavailable, NetLab

ROOT = Path(__file__).resolve().parents[2]
MiB = 1024 * 1024

# reads in ≤ 1 MiB chunks: one libnfs read() of ≥ 2 MiB returns a short, corrupted buffer
NFS_READ = r"""
import hashlib, json, sys, time
import libnfs
url, rel = sys.argv[1], sys.argv[2]
t0 = time.perf_counter()
nfs = libnfs.NFS(url)  # keep a reference: a collected NFS context crashes its open files
f = nfs.open("/" + rel, "rb")
h, n = hashlib.sha256(), 0
t1 = time.perf_counter()
while True:
    d = f.read(1 << 20)
    if not d:
        break
    h.update(d)
    n += len(d)
dt = time.perf_counter() - t1
f.close()
print(json.dumps({"bytes": n, "sha256": h.hexdigest(), "seconds": dt, "mb_s": n / dt / 1e6 if dt else None}))
"""


def require_lab() -> None:
    """Skip (with the one-line reason) where the lab cannot run."""
    try:
        NetLab.check_available()
    except LabUnavailable as e:
        pytest.skip(f"network lab unavailable: {e}")


def child_env(**extra: str) -> dict[str, str]:
    """Environment for child processes: this checkout's package first (not another install)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.update(extra)
    return env


def node_read(lab: NetLab, rel: str, timeout: float = 60) -> dict:
    """Read ``rel`` (relative to the export) over NFS from the node namespace; bytes, sha256, MB/s."""
    cp = subprocess.run(lab.node_prefix() + [sys.executable, "-c", NFS_READ, lab.nfs_url(), rel],
                        capture_output=True, text=True, timeout=timeout)
    assert cp.returncode == 0, f"libnfs client failed ({cp.returncode}): {cp.stderr[-2000:]}"
    return json.loads(cp.stdout.strip().splitlines()[-1])


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def netns_names() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def link_mtu(ns: str, dev: str) -> int:
    out = subprocess.run(["ip", "-n", ns, "-o", "link", "show", "dev", dev], capture_output=True, text=True,
                         check=True).stdout
    m = re.search(r"\bmtu (\d+)", out)
    assert m, out
    return int(m.group(1))


def link_rx_bytes(ns: str, dev: str) -> int:
    out = subprocess.run(["ip", "-n", ns, "-j", "-s", "link", "show", "dev", dev], capture_output=True, text=True,
                         check=True).stdout
    return int(json.loads(out)[0]["stats64"]["rx"]["bytes"])


def ns_sysctl(ns: str, key: str) -> list[int]:
    out = subprocess.run(["ip", "netns", "exec", ns, "cat", "/proc/sys/" + key.replace(".", "/")],
                         capture_output=True, text=True, check=True).stdout
    return [int(x) for x in out.split()]


def host_sysctl(key: str) -> int:
    return int(Path("/proc/sys/" + key.replace(".", "/")).read_text())


def offloads(ns: str, dev: str) -> dict[str, str]:
    out = subprocess.run(["ip", "netns", "exec", ns, "ethtool", "-k", dev], capture_output=True, text=True,
                         check=True).stdout
    feats = {}
    for line in out.splitlines():
        k, _, v = line.strip().partition(":")
        feats[k] = v.split()[0] if v.split() else ""
    return feats


def pid_running(pid: int) -> bool:
    """The process exists and is not a zombie (the project's own test: supervise.process_gone)."""
    from pytest_inference.supervise import process_gone

    return not process_gone(pid, group=False)


def wait_for(cond: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if cond():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def assert_tuned(lab: NetLab) -> None:
    assert lab.tuned is True
    assert link_mtu(lab.node_netns, lab.node_device) == 9000
    assert link_mtu(lab.server_netns, lab.server_device) == 9000
    assert ns_sysctl(lab.node_netns, "net.ipv4.tcp_rmem") == [4096, 87380, 16777216]
    assert ns_sysctl(lab.node_netns, "net.ipv4.tcp_wmem") == [4096, 65536, 16777216]
    assert host_sysctl("net.core.rmem_max") == 16777216
    assert host_sysctl("net.core.wmem_max") == 16777216


def assert_untuned(lab: NetLab) -> None:
    assert lab.tuned is False
    assert link_mtu(lab.node_netns, lab.node_device) == 1500
    assert link_mtu(lab.server_netns, lab.server_device) == 1500
    rmem, wmem = ns_sysctl(lab.node_netns, "net.ipv4.tcp_rmem"), ns_sysctl(lab.node_netns, "net.ipv4.tcp_wmem")
    assert rmem[2] < 16 * MiB and wmem[2] < 16 * MiB, (rmem, wmem)
    assert host_sysctl("net.core.rmem_max") == 212992
    assert host_sysctl("net.core.wmem_max") == 212992


def assert_server_tuned(lab: NetLab) -> None:
    """The server side keeps 16 MiB buffers whatever the node's tuning: the lab measures the node."""
    assert ns_sysctl(lab.server_netns, "net.ipv4.tcp_rmem")[2] == 16777216
    assert ns_sysctl(lab.server_netns, "net.ipv4.tcp_wmem")[2] == 16777216
