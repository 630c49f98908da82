"""Run folders under .cache/servers/ (compile cache, TMPDIR) do not pile up (issue 10, B14):
removed when their server stops — the log kept in the report folder — and, when their owner
died without cleaning up, swept by the next start or removed by the server's watchdog."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from pytest_inference.local import (OWNER_FILE, LocalConfig, LocalServers, new_run_dir, processes_started_by,
                                    sweep_dead_run_dirs)

from server_helpers import FAKE_CMD, ROOT, child_env, wait_file, wait_for, wait_group_gone


def fake_local(tmp_path: Path) -> LocalConfig:
    model = tmp_path / "model"
    model.mkdir(exist_ok=True)
    (model / "config.json").write_text("{}")
    return LocalConfig(command=FAKE_CMD, python=sys.executable, model_path=model, model="fake", args="",
                       device="cpu", start_timeout_s=60, state_dir=tmp_path / "servers",
                       log_dir=tmp_path / "report" / "server-logs", env_extra={"PYTHONPATH": str(ROOT)})


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_a_stopped_servers_run_folder_is_removed_and_its_log_kept(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PYTEST_INFERENCE_LOCK_DIR", str(tmp_path / "locks"))
    servers = LocalServers(fake_local(tmp_path))
    h = servers.cold(extra_args="--startup-s 0.2")
    run_dir = Path(h.spec.cleanup_dirs[0])
    assert run_dir.parent == tmp_path / "servers" and (run_dir / OWNER_FILE).exists()
    assert (run_dir / "cache").is_dir()  # the private compile cache lives in it
    h.wait_ready(first_token=True)
    h.stop(grace_s=5)
    assert not run_dir.exists()
    assert list((tmp_path / "servers").iterdir()) == []
    log = tmp_path / "report" / "server-logs" / f"{run_dir.name}.log"
    assert h.log_path == log and log.stat().st_size > 0
    # the shared server too, via close()
    shared = servers.shared()
    servers.close()
    assert not Path(shared.spec.cleanup_dirs[0]).exists()


def test_sweep_removes_folders_of_dead_owners_only(tmp_path: Path) -> None:
    state = tmp_path / "servers"
    mine = new_run_dir(state, "cold")
    dead = new_run_dir(state, "cold")
    (dead / "cache").mkdir()
    (dead / OWNER_FILE).write_text(json.dumps({"pid": _dead_pid(), "start": 1}))
    reused = new_run_dir(state, "shared")  # our pid, but another start time: a reused pid
    (reused / OWNER_FILE).write_text(json.dumps({"pid": os.getpid(), "start": 1}))
    legacy_old = state / "cold-legacy-old"  # an older version's folder (no owner file), hours old
    legacy_old.mkdir()
    os.utime(legacy_old, (time.time() - 7200, time.time() - 7200))
    legacy_new = state / "cold-being-created"  # no owner file yet, just made: left alone
    legacy_new.mkdir()
    garbage = new_run_dir(state, "cold")
    (garbage / OWNER_FILE).write_text("not json")
    removed = sweep_dead_run_dirs(state)
    assert sorted(removed) == sorted([dead, reused, legacy_old, garbage])
    assert sorted(state.iterdir()) == sorted([mine, legacy_new])


def test_a_new_start_sweeps_what_a_dead_run_left(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PYTEST_INFERENCE_LOCK_DIR", str(tmp_path / "locks"))
    local = fake_local(tmp_path)
    left = new_run_dir(local.state_dir, "cold")
    (left / OWNER_FILE).write_text(json.dumps({"pid": _dead_pid(), "start": None}))
    spec = local.spec(name="cold")
    assert not left.exists() and Path(spec.cleanup_dirs[0]).exists()


def test_sigkilled_owner_run_folder_is_removed_by_the_watchdog(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    child = tmp_path / "child.py"
    child.write_text(textwrap.dedent(f"""
        import json, sys
        from pathlib import Path
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_run_dirs import fake_local
        from pytest_inference.local import LocalServers
        h = LocalServers(fake_local(Path({str(tmp_path)!r}))).cold(extra_args="--startup-s 60")
        Path({str(out)!r}).write_text(json.dumps({{"pgid": h.pgid, "run_dir": str(h.spec.cleanup_dirs[0])}}))
        import time; time.sleep(120)
    """))
    proc = subprocess.Popen([sys.executable, str(child)], env=child_env(PYTEST_INFERENCE_LOCK_DIR=str(tmp_path / "locks")))
    try:
        info = json.loads(wait_file(out, 60, proc))
        run_dir = Path(info["run_dir"])
        assert run_dir.is_dir()
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert not wait_group_gone(info["pgid"], 30)
        assert wait_for(lambda: not run_dir.exists(), 30), f"{run_dir} left behind"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_every_process_of_a_local_server_carries_its_owners_mark(tmp_path: Path, monkeypatch) -> None:
    """What the real-vLLM leak check relies on: the server and its children are found by the pid of
    the process that started them, and none is found once the server stopped."""
    monkeypatch.setenv("PYTEST_INFERENCE_LOCK_DIR", str(tmp_path / "locks"))
    h = LocalServers(fake_local(tmp_path)).cold(extra_args="--startup-s 30 --fork-children 2")
    try:
        assert wait_for(lambda: len(h.group_members()) >= 3, 30)
        found = {pid for pid, _ in processes_started_by(os.getpid())}
        assert {pid for pid, _, _ in h.group_members()} <= found and h.pid in found
        assert h.watchdog.pid not in found  # not a server process
    finally:
        h.stop(grace_s=5)
    assert processes_started_by(os.getpid()) == []
