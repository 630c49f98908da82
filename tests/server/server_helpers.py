"""Shared helpers of the server-launcher tests: a fake vLLM-like server
(pytest_inference.testing.fake_openai with its startup simulation) behind
pytest_inference.server, and process-group checks."""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

from pytest_inference.server import ServerSpec
from pytest_inference.supervise import group_members

ROOT = Path(__file__).resolve().parents[2]
FAKE_CMD = ("{python} -m pytest_inference.testing.fake_openai --host {host} --port {port} --model {model} "
            "--max-lifetime-s 120 --children-max-s 120 {args}")


def child_env(**extra: str) -> dict[str, str]:
    """Environment for child processes: this checkout's package first (not another install)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.update(extra)
    return env


def fake_spec(lock_dir: Path, args: str = "", **kw) -> ServerSpec:
    kw.setdefault("env", {"PYTHONPATH": str(ROOT)})
    kw.setdefault("pin_cpus", False)
    kw.setdefault("start_timeout_s", 30.0)
    kw.setdefault("model", "fake-model")
    kw.setdefault("python", sys.executable)
    if "log_path" not in kw:  # next to the lock dir (the test's tmp_path), not in /tmp
        fd, name = tempfile.mkstemp(prefix="server-", suffix=".log", dir=lock_dir.parent)
        os.close(fd)
        kw["log_path"] = Path(name)
    return ServerSpec(command=FAKE_CMD, args=args, lock_dir=lock_dir, **kw)


def wait_group_gone(pgid: int, timeout_s: float) -> list[tuple[int, str, str]]:
    """Wait until no process of the group runs; return the survivors (empty = gone)."""
    deadline = time.monotonic() + timeout_s
    while True:
        left = group_members(pgid)
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.05)


def wait_for(pred, timeout_s: float, interval_s: float = 0.05):
    deadline = time.monotonic() + timeout_s
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval_s)


def pid_running(pid: int) -> bool:
    """The process exists and is not a zombie (the project's own test: supervise.process_gone)."""
    from pytest_inference.supervise import process_gone

    return not process_gone(pid, group=False)


def wait_file(path: Path, timeout_s: float, proc=None) -> str:
    """Wait for a file to appear (non-empty); fail early if ``proc`` exits first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists() and path.stat().st_size:
            return path.read_text()
        if proc is not None and proc.poll() is not None:
            out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
            raise AssertionError(f"child exited ({proc.returncode}) before writing {path}:\n{out[-3000:]}")
        time.sleep(0.05)
    raise AssertionError(f"{path} not written within {timeout_s} s")
