"""Tearing a lab down from its state file: what the owner's ``stop()``, the guardian (after the
owner's death) and ``python -m pytest_inference.netlab down`` (after both died) all run.

The guardian (:mod:`pytest_inference.supervise`, ``--state``) runs the command the state file names,
:func:`command`: ``python -m pytest_inference.netlab _teardown STATE``.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..supervise import kill_wait, read_json, same_process
from .common import run
from .host import write_host_sysctl
from .netns import netns_exists, netns_pids

__all__ = ["teardown", "command", "main"]


def teardown(state: Mapping[str, Any], *, restore_host: bool, grace_s: float = 5.0) -> list[str]:
    """Remove everything ``state`` names, in an order that works from any partial start:
    ganesha (SIGTERM: it exits cleanly), every other process left in the lab's namespaces
    (SIGKILL: a client a test left behind keeps a namespace, and its veth, alive), the veth pair,
    the namespaces, the temporary directory, and, with ``restore_host``, the host sysctls.
    Idempotent: what is already gone is skipped. Returns problems (empty when all went)."""
    problems: list[str] = []
    gpid, gstart = state.get("ganesha_pid"), state.get("ganesha_start")
    if same_process(gpid, gstart):
        left = kill_wait([gpid], signal.SIGTERM, grace_s)
        if left:
            kill_wait(left, signal.SIGKILL, 5.0)
    for ns in (state.get("server_netns"), state.get("node_netns")):
        if ns:
            pids = netns_pids(ns)
            if pids:
                left = kill_wait(pids, signal.SIGKILL, 5.0)
                if left:
                    problems.append(f"processes {left} in namespace {ns} survive SIGKILL")
    ns, dev = state.get("server_netns"), state.get("server_device")
    if ns and dev and netns_exists(ns):
        run(["ip", "-n", ns, "link", "del", dev], check=False)  # deletes the peer too
    for ns in (state.get("server_netns"), state.get("node_netns")):
        if ns and netns_exists(ns):
            cp = run(["ip", "netns", "del", ns], check=False)
            if cp.returncode != 0 and netns_exists(ns):
                problems.append(f"ip netns del {ns}: {cp.stderr.strip()}")
    tmp = state.get("tmpdir")
    if tmp:
        shutil.rmtree(tmp, ignore_errors=True)
        if os.path.exists(tmp):
            problems.append(f"could not remove {tmp}")
    if restore_host:
        for key, value in (state.get("host_restore") or {}).items():
            try:
                write_host_sysctl(key, value)
            except OSError as e:
                problems.append(f"could not restore {key}={value}: {e}")
    return problems


def command(state_path: str | os.PathLike[str]) -> dict[str, Any]:
    """The teardown a lab's state file names for its guardian: this Python, this package."""
    root = Path(__file__).resolve().parents[2]  # the folder that holds pytest_inference/
    return {"argv": [sys.executable, "-m", "pytest_inference.netlab", "_teardown", os.fspath(state_path)],
            "cwd": str(root)}


def main(state_path: str) -> int:
    """Tear down the lab ``state_path`` describes, host settings included (its owner is gone)."""
    state = read_json(state_path, trusted_only=True)
    if not isinstance(state, dict):
        return 0  # no state: the owner finished its stop just before dying
    problems = teardown(state, restore_host=True)
    for pr in problems:
        print(f"netlab {state.get('token')}: {pr}", file=sys.stderr)
    return 1 if problems else 0
