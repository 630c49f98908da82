"""No server process survives its test: stop(), exceptions, Ctrl-C, SIGTERM, interpreter exit, and a
SIGKILLed pytest or xdist worker (the watchdog). Each scenario reads the server's process group from
the child and checks /proc for any running member of it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from pytest_inference.server import DeviceLock, DeviceLockTimeout, launch
from pytest_inference import supervise
from pytest_inference.supervise import group_members

SUPERVISE = supervise.__file__  # the guardian runs as a file: python -I -S, standard library only

from server_helpers import ROOT, child_env, fake_spec, pid_running, wait_file, wait_for, wait_group_gone

HERE = Path(__file__).resolve().parent

# a child test module: launches a slow-starting fake server with forked children, records its group, blocks
CHILD_PRELUDE = f"""
import json, os, sys, time
from pathlib import Path
sys.path.insert(0, {str(HERE)!r})
from server_helpers import fake_spec
from pytest_inference.server import launch

LOCK_DIR = Path(os.environ["LOCK_DIR"])
OUT = Path(os.environ["OUT"])

def record(h, **extra):
    tmp = OUT.with_suffix(".tmp")
    tmp.write_text(json.dumps({{"pgid": h.pgid, "pid": h.pid, "watchdog": h.watchdog.pid,
                                "tmpdir": str(h.tmpdir), "lock_dir": str(LOCK_DIR), "log": str(h.log_path),
                                **extra}}))
    tmp.rename(OUT)

def start_slow(extra_args="", **kw):
    h = launch(fake_spec(LOCK_DIR, "--startup-s 60 --fork-children 2 " + extra_args, start_timeout_s=120, **kw))
    while len(h.group_members()) < 3:   # the server and its two children are up
        time.sleep(0.02)
    record(h)
    return h
"""

PYTEST_ARGS = ["-q", "-p", "no:cacheprovider", "-p", "no:inference", "-p", "no:randomly"]


def _run_child(tmp_path: Path, body: str, *args: str, pytest_run: bool = True) -> tuple[subprocess.Popen, Path]:
    out = tmp_path / "out.json"
    locks = tmp_path / "locks"
    locks.mkdir(exist_ok=True)
    src = tmp_path / ("test_child.py" if pytest_run else "child.py")
    src.write_text(CHILD_PRELUDE + textwrap.dedent(body))
    cmd = [sys.executable, "-m", "pytest", *PYTEST_ARGS, *args, str(src)] if pytest_run else [sys.executable, str(src)]
    p = subprocess.Popen(cmd, cwd=tmp_path, env=child_env(LOCK_DIR=str(locks), OUT=str(out)),
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return p, out


@pytest.fixture
def children():
    procs: list[subprocess.Popen] = []
    pgids: list[int] = []
    yield procs, pgids
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait(10)
        if p.stdout:
            p.stdout.close()
    for g in pgids:  # whatever a failed test left behind
        try:
            os.killpg(g, signal.SIGKILL)
        except OSError:
            pass


# ------------------------------------------------------------------ in-process


def test_stop_kills_forked_children_even_if_they_ignore_sigterm(lock_dir: Path) -> None:
    h = launch(fake_spec(lock_dir, "--fork-children 3 --children-ignore-term"))
    h.wait_ready(first_token=False)
    members = h.group_members()
    assert len(members) == 4 and all(m[2].startswith(("python", "fake-child")) for m in members), members
    wd = h.watchdog.pid
    ex = h.stop(grace_s=0.5)
    assert ex.signals == ["SIGTERM", "SIGKILL"] and ex.killed and ex.survivors == []
    assert ex.returncode == 0  # the server itself exited on SIGTERM; its children needed SIGKILL
    assert group_members(h.pgid) == [] and not any(pid_running(p) for p, _, _ in members)
    assert wait_for(lambda: not pid_running(wd), 3.0)
    assert h.stop() is ex


def test_exception_in_the_with_block_stops_it(lock_dir: Path) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        with launch(fake_spec(lock_dir, "--fork-children 2")) as h:
            h.wait_ready(first_token=False)
            raise RuntimeError("boom")
    assert h.exit.signals == ["SIGTERM"] and group_members(h.pgid) == []


# ------------------------------------------------------------------ the launching process dies


def _assert_group_gone_and_device_free(info: dict, within_s: float) -> None:
    left = wait_group_gone(info["pgid"], within_s)
    assert left == [], f"server processes survive: {left}"
    assert wait_for(lambda: not pid_running(info["watchdog"]), 3.0), "the watchdog did not exit"
    assert wait_for(lambda: not Path(info["tmpdir"]).exists(), 3.0), "TMPDIR left behind"
    lk = DeviceLock("cpu", info["lock_dir"])
    lk.acquire(timeout_s=3.0)
    lk.release()


def test_sigkill_of_pytest_mid_start_leaves_nothing(tmp_path: Path, children) -> None:
    # children ignore SIGTERM: the watchdog must escalate to SIGKILL (grace 1 s here)
    p, out = _run_child(tmp_path, """
        def test_slow():
            h = start_slow("--children-ignore-term", watchdog_grace_s=1.0)
            h.wait_ready()
        """)
    children[0].append(p)
    info = json.loads(wait_file(out, 30, p))
    children[1].append(info["pgid"])
    assert len(group_members(info["pgid"])) == 3
    os.kill(p.pid, signal.SIGKILL)
    p.wait(10)
    t_kill = time.monotonic()
    # the device stays locked until the orphaned server is really gone: whenever the lock can be
    # taken, no process of the group runs any more
    busy_while_alive = False
    lk = DeviceLock("cpu", info["lock_dir"])
    while time.monotonic() - t_kill < 10:
        alive = bool(group_members(info["pgid"]))
        try:
            lk.acquire(timeout_s=0)
        except DeviceLockTimeout:
            busy_while_alive |= alive
            time.sleep(0.05)
            continue
        try:
            assert group_members(info["pgid"]) == [], "device free while the old server still runs"
        finally:
            lk.release()
        break
    assert busy_while_alive
    _assert_group_gone_and_device_free(info, 5.0)
    assert time.monotonic() - t_kill < 6
    # it was the watchdog, and it had to escalate (the children ignore SIGTERM)
    log = Path(info["log"]).read_text()
    assert f"parent {p.pid} is gone; stopping server group {info['pgid']} (3 processes" in log
    assert "still running after 1 s; SIGKILL" in log


def test_ctrl_c_to_pytest_mid_start_leaves_nothing(tmp_path: Path, children) -> None:
    p, out = _run_child(tmp_path, """
        def test_slow():
            h = start_slow()
            h.wait_ready()
        """)
    children[0].append(p)
    info = json.loads(wait_file(out, 30, p))
    children[1].append(info["pgid"])
    os.kill(p.pid, signal.SIGINT)
    rc = p.wait(20)
    output = p.stdout.read().decode(errors="replace")
    assert rc == 2 and "KeyboardInterrupt" in output, output[-2000:]
    # pytest exited only after the server had been stopped
    assert group_members(info["pgid"]) == []
    _assert_group_gone_and_device_free(info, 1.0)


def test_sigterm_to_the_launching_process(tmp_path: Path, children) -> None:
    p, out = _run_child(tmp_path, """
        h = start_slow()
        time.sleep(120)
        """, pytest_run=False)
    children[0].append(p)
    info = json.loads(wait_file(out, 30, p))
    children[1].append(info["pgid"])
    os.kill(p.pid, signal.SIGTERM)
    assert p.wait(10) == -signal.SIGTERM  # it still dies of SIGTERM, after signalling the group
    _assert_group_gone_and_device_free(info, 3.0)


def test_interpreter_exit_without_stop(tmp_path: Path, children) -> None:
    p, out = _run_child(tmp_path, """
        h = start_slow()
        h2 = launch(fake_spec(LOCK_DIR, "--fork-children 1", device="cpu1"))
        h2.wait_ready(first_token=False)
        Path(str(OUT) + ".2").write_text(str(h2.pgid))
        sys.exit(0)   # no stop(): atexit does it
        """, pytest_run=False)
    children[0].append(p)
    assert p.wait(30) == 0, p.stdout.read().decode(errors="replace")
    info = json.loads(out.read_text())
    pgid2 = int(Path(str(out) + ".2").read_text())
    children[1].extend([info["pgid"], pgid2])
    assert group_members(info["pgid"]) == [] and group_members(pgid2) == []  # gone by the time it exited
    _assert_group_gone_and_device_free(info, 1.0)


# ------------------------------------------------------------------ pytest-xdist


def test_xdist_workers_never_run_two_servers_on_one_device(tmp_path: Path, children) -> None:
    p, out = _run_child(tmp_path, """
        def _run(tag):
            h = launch(fake_spec(LOCK_DIR, "--fork-children 1"))
            h.wait_ready(first_token=False)
            time.sleep(1.5)
            ex = h.stop()
            with open(str(OUT) + ".jsonl", "a") as f:
                f.write(json.dumps({"tag": tag, "worker": os.environ.get("PYTEST_XDIST_WORKER"), "start": h.t0,
                                    "end": ex.gone_at, "lock_wait": h.lock_wait_s}) + "\\n")

        def test_a():
            _run("a")

        def test_b():
            _run("b")
        """, "-p", "xdist", "-n", "2")
    children[0].append(p)
    rc = p.wait(60)
    output = p.stdout.read().decode(errors="replace")
    assert rc == 0, output[-3000:]
    rows = [json.loads(x) for x in Path(str(out) + ".jsonl").read_text().splitlines()]
    assert sorted(r["tag"] for r in rows) == ["a", "b"]
    assert {r["worker"] for r in rows} == {"gw0", "gw1"}  # really two processes
    first, second = sorted(rows, key=lambda r: r["start"])
    assert first["end"] <= second["start"], rows  # never two at once
    assert second["lock_wait"] > 0.5, rows  # and they did contend for the device


def test_killed_xdist_worker_leaves_no_server(tmp_path: Path, children) -> None:
    p, out = _run_child(tmp_path, """
        def test_crash():
            h = start_slow(watchdog_grace_s=1.0)
            os.kill(os.getpid(), 9)
        """, "-p", "xdist", "-n", "1", "--max-worker-restart", "0")
    children[0].append(p)
    info = json.loads(wait_file(out, 30, p))
    children[1].append(info["pgid"])
    _assert_group_gone_and_device_free(info, 6.0)
    assert "is gone; stopping server group" in Path(info["log"]).read_text()
    rc = p.wait(30)
    output = p.stdout.read().decode(errors="replace")
    assert rc != 0 and "crashed" in output, output[-2000:]


# ------------------------------------------------------------------ the watchdog on its own


def test_watchdog_cli_kills_the_group_when_the_parent_goes(tmp_path: Path, children) -> None:
    procs, pgids = children
    parent = subprocess.Popen(["sleep", "60"])
    server = subprocess.Popen(["sh", "-c", "trap '' TERM; sleep 60 & sleep 60 & wait"], start_new_session=True)
    procs += [parent, server]
    pgids.append(server.pid)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    assert wait_for(lambda: len(group_members(server.pid)) == 3, 5.0)
    wd = subprocess.Popen([sys.executable, "-I", "-S", SUPERVISE, "--parent", str(parent.pid),
                           "--pgid", str(server.pid), "--grace", "0.5", "--cleanup", str(scratch)],
                          env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    procs.append(wd)
    time.sleep(0.5)
    assert wd.poll() is None and len(group_members(server.pid)) == 3  # parent alive: it only waits
    parent.kill()
    parent.wait()
    assert wd.wait(10) == 0
    assert group_members(server.pid) == [] and not scratch.exists()
    out = wd.stdout.read().decode()
    assert f"parent {parent.pid} is gone" in out and "SIGKILL" in out  # the shell ignored SIGTERM


def test_watchdog_cli_exits_when_the_group_is_gone(children) -> None:
    procs, pgids = children
    server = subprocess.Popen(["sleep", "60"], start_new_session=True)
    procs.append(server)
    wd = subprocess.Popen([sys.executable, "-I", "-S", SUPERVISE, "--parent", str(os.getpid()),
                           "--pgid", str(server.pid), "--poll", "0.05"], env=child_env())
    procs.append(wd)
    time.sleep(0.3)
    assert wd.poll() is None
    server.kill()
    server.wait()
    assert wd.wait(5) == 0
