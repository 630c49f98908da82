"""pytest_inference.supervise: the one process supervisor. It runs as ``python -I -S supervise.py``
(standard library only, nothing of the package), reads /proc right (a command name with spaces and
parentheses, pid reuse, zombies), writes and reads JSON files safely, and its guardian does one of
two jobs when its parent dies: kill a process group (tests/server/test_leaks.py) or run the teardown
a state file names (here; the network lab's guardian: tests/netlab)."""

from __future__ import annotations

import ast
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pytest_inference import supervise as sv
from pytest_inference.supervise import kill_and_reap
from server_helpers import wait_for

SUPERVISE = Path(sv.__file__)



@pytest.fixture
def procs():
    started: list[subprocess.Popen] = []
    yield started
    for p in started:
        kill_and_reap(p)


# --------------------------------------------------------------------------- stdlib only


def test_imports_only_the_standard_library() -> None:
    tree = ast.parse(SUPERVISE.read_text())
    mods = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            mods |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "a relative import: the file must run on its own"
            mods.add((node.module or "").split(".")[0])
    mods.discard("__future__")
    assert mods and mods <= set(sys.stdlib_module_names), mods - set(sys.stdlib_module_names)


def test_runs_as_python_I_S_without_the_package() -> None:
    code = ("import runpy, sys\n"
            f"g = runpy.run_path({str(SUPERVISE)!r}, run_name='probe')\n"
            "print(sorted(m for m in sys.modules if m.startswith('pytest_inference')))\n"
            "print(g['proc_stat'](g['os'].getpid()).comm)\n")
    cp = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, timeout=30,
                        cwd="/")
    assert cp.returncode == 0, cp.stderr
    modules, comm = cp.stdout.splitlines()
    assert modules == "[]" and comm.startswith("python")
    cp = subprocess.run([sys.executable, "-I", "-S", str(SUPERVISE), "--help"], capture_output=True, text=True,
                        timeout=30, cwd="/")
    assert cp.returncode == 0 and "--pgid" in cp.stdout and "--state" in cp.stdout


def test_the_guardian_wants_exactly_one_job() -> None:
    for args in ([], ["--pgid", "1234", "--state", "/nonexistent"], ["--pgid", "1"]):
        cp = subprocess.run([sys.executable, "-I", "-S", str(SUPERVISE), "--parent", str(os.getpid()), *args],
                            capture_output=True, text=True, timeout=30)
        assert cp.returncode == 2 and "error:" in cp.stderr, (args, cp.stderr)
    with pytest.raises(ValueError, match="one job"):
        sv.guard(os.getpid())


# --------------------------------------------------------------------------- /proc


def test_parse_stat_takes_the_fields_after_the_last_parenthesis() -> None:
    line = ("4242 (a) b (c) 9 Z) S 17 4242 4242 0 -1 4194560 100 0 0 0 7 5 3 2 20 0 1 0 123456 "
            "1000 10 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n")
    st = sv.parse_stat(line)
    assert st == sv.ProcStat("S", 17, 4242, "a) b (c) 9 Z", 7 + 5 + 3 + 2, 123456)
    assert sv.parse_stat(line.encode()) == st
    for bad in ("", "4242 no parenthesis S 1 2", "4242 (x) S 1", "4242 (x) S one 2 3 4 5 6 7 8 9 10 11 12 13 "
                "14 15 16 17 18 19 20", "4242 )x( S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20"):
        assert sv.parse_stat(bad) is None, bad


def test_proc_stat_reads_a_hostile_command_name(procs) -> None:
    name = "a) b (c) 9 Z"  # spaces, parentheses and what looks like fields: the comm is 15 bytes max
    p = subprocess.Popen([sys.executable, "-c", f"open('/proc/self/comm', 'w').write({name!r}); "
                          "import sys; sys.stdout.write('ok\\n'); sys.stdout.flush(); sys.stdin.read()"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True)
    procs.append(p)
    assert p.stdout.readline() == b"ok\n"
    st = sv.proc_stat(p.pid)
    assert st is not None
    assert st.comm == name and st.state in ("S", "R") and st.ppid == os.getpid() and st.pgrp == p.pid
    assert st.start > 0 and sv.start_time(p.pid) == st.start
    assert sv.group_members(p.pid) == [(p.pid, st.state, name)]
    assert sv.group_alive(p.pid) and sv.pid_alive(p.pid)


def test_identity_survives_pid_reuse_and_zombies_are_not_alive(procs) -> None:
    p = subprocess.Popen(["sleep", "60"], start_new_session=True)
    procs.append(p)
    start = sv.start_time(p.pid)
    assert start is not None and sv.same_process(p.pid, start)
    assert not sv.same_process(p.pid, start + 1)  # a later process under the same pid
    assert not sv.same_process(p.pid, None) and not sv.same_process(None, start)
    os.kill(p.pid, signal.SIGKILL)
    assert wait_for(lambda: sv.proc_stat(p.pid).state == "Z", 5)  # not reaped yet: a zombie
    os.kill(p.pid, 0)  # the kernel still knows the pid ...
    assert not sv.pid_alive(p.pid) and sv.start_time(p.pid) is None  # ... but it runs no more
    assert not sv.same_process(p.pid, start)
    assert sv.process_gone(p.pid, group=False) and sv.process_gone(p.pid, group=True)
    assert sv.group_members(p.pid) == [] and sv.group_members(p.pid, zombies=True)[0][:2] == (p.pid, "Z")
    assert not sv.group_alive(p.pid)
    p.wait()
    assert sv.proc_stat(p.pid) is None and not sv.pid_alive(p.pid)
    assert not sv.pid_alive(0) and not sv.pid_alive(None)


def test_kill_wait_returns_the_survivors(procs) -> None:
    stubborn = subprocess.Popen(["sh", "-c", "trap '' TERM; echo ready; while :; do sleep 1; done"],
                                stdout=subprocess.PIPE, start_new_session=True)
    meek = subprocess.Popen(["sleep", "60"], start_new_session=True)
    procs += [stubborn, meek]
    assert stubborn.stdout.readline() == b"ready\n"
    reaper = {p.pid: p for p in (stubborn, meek)}

    def alive(pid: int) -> bool:
        reaper[pid].poll()  # reap our own children, as their parent
        return sv.pid_alive(pid)

    left = sv.kill_wait([stubborn.pid, meek.pid], signal.SIGTERM, 0.5)
    meek.wait(5)
    assert left == [stubborn.pid] and alive(stubborn.pid)
    assert sv.kill_wait(left, signal.SIGKILL, 5) == []


# --------------------------------------------------------------------------- JSON files


def test_write_json_atomic_replaces_a_planted_link_and_never_follows_it(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    target = tmp_path / "state.json"
    target.symlink_to(victim)
    sv.write_json_atomic(target, {"a": 1})
    assert victim.read_text() == "keep me"
    assert not target.is_symlink() and json.loads(target.read_text()) == {"a": 1}
    assert oct(target.stat().st_mode & 0o777) == oct(0o600)
    sv.write_json_atomic(target, {"a": 2}, mode=0o644, indent=None)
    assert target.read_text() == '{"a": 2}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json", "victim"]  # no temporary left


def test_read_json_believes_only_safe_files(tmp_path: Path) -> None:
    good = tmp_path / "good.json"
    sv.write_json_atomic(good, {"pid": 1})
    assert sv.read_json(good) == {"pid": 1} and sv.read_json(good, trusted_only=True) == {"pid": 1}
    link = tmp_path / "link.json"
    link.symlink_to(good)
    assert sv.read_json(link) is None
    (tmp_path / "bad.json").write_text("{not json")
    assert sv.read_json(tmp_path / "bad.json") is None
    assert sv.read_json(tmp_path / "missing.json") is None
    assert sv.read_json(tmp_path) is None  # a directory
    hard = tmp_path / "hard.json"
    os.link(good, hard)  # two links: someone else's name for the file
    assert sv.read_json(hard) == {"pid": 1} and sv.read_json(hard, trusted_only=True) is None
    if os.geteuid() == 0:
        other = tmp_path / "other.json"
        other.write_text('{"pid": 2}')
        os.chown(other, 54321, 54321)
        assert sv.read_json(other) == {"pid": 2} and sv.read_json(other, trusted_only=True) is None


# --------------------------------------------------------------------------- the guardian's state-file job


def _state_guardian(tmp_path: Path, parent: int, procs, **kw) -> tuple[subprocess.Popen, Path, Path]:
    marker = tmp_path / "torn-down"
    state = tmp_path / "lab.json"
    sv.write_json_atomic(state, {"what": "test thing 42", "teardown": {
        "argv": [sys.executable, "-c", "import sys; open(sys.argv[1], 'w').write(sys.argv[2])", str(marker),
                 str(state)], "cwd": str(tmp_path)}, **kw})
    g = subprocess.Popen(sv.guardian_command(parent, state=state, poll_s=0.05), stdin=subprocess.PIPE,
                         stderr=subprocess.PIPE, start_new_session=True)
    procs.append(g)
    return g, state, marker


def test_the_guardian_runs_the_state_files_teardown_when_the_parent_dies(tmp_path: Path, procs) -> None:
    parent = subprocess.Popen(["sleep", "60"])
    procs.append(parent)
    g, state, marker = _state_guardian(tmp_path, parent.pid, procs)
    time.sleep(0.4)
    assert g.poll() is None and not marker.exists()  # the parent lives: it only waits
    parent.kill()
    parent.wait()
    assert g.wait(15) == 0
    assert marker.read_text() == str(state)  # the teardown ran, given its state file
    assert not state.exists()
    assert "owner {} is gone; tearing down test thing 42".format(parent.pid) in g.stderr.read().decode()


def test_the_guardian_removes_only_an_owner_record_that_names_its_parent(tmp_path: Path, procs) -> None:
    for names_parent in (True, False):
        parent = subprocess.Popen(["sleep", "60"])
        procs.append(parent)
        sub = tmp_path / str(names_parent)
        sub.mkdir()
        owner_file = sub / "host.owner"
        sv.write_json_atomic(owner_file, {"pid": parent.pid if names_parent else 1})
        state = sub / "s.json"
        sv.write_json_atomic(state, {"teardown": {"argv": ["true"]}})
        g = subprocess.Popen(sv.guardian_command(parent.pid, state=state, owner_file=owner_file, poll_s=0.05),
                             stdin=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
        procs.append(g)
        time.sleep(0.2)
        parent.kill()
        parent.wait()
        assert g.wait(15) == 0
        assert owner_file.exists() is not names_parent


def test_the_guardian_told_done_exits_without_acting(tmp_path: Path, procs) -> None:
    g, state, marker = _state_guardian(tmp_path, os.getpid(), procs)
    time.sleep(0.2)
    t0 = time.monotonic()
    sv.release_guardian(g, timeout_s=5)
    assert g.returncode == 0 and time.monotonic() - t0 < 5
    assert state.exists() and not marker.exists()


def test_a_failing_teardown_is_the_guardians_failure(tmp_path: Path, procs) -> None:
    parent = subprocess.Popen(["sleep", "60"])
    procs.append(parent)
    state = tmp_path / "s.json"
    sv.write_json_atomic(state, {"teardown": {"argv": [sys.executable, "-c", "raise SystemExit(3)"]}})
    g = subprocess.Popen(sv.guardian_command(parent.pid, state=state, poll_s=0.05), stdin=subprocess.PIPE,
                         stderr=subprocess.PIPE, start_new_session=True)
    procs.append(g)
    time.sleep(0.2)
    parent.kill()
    parent.wait()
    assert g.wait(15) == 1
    assert "teardown exited with 3" in g.stderr.read().decode()
