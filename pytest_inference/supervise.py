"""The process supervisor: ``/proc`` reading, process identity, liveness, signalling, parent-death
watching, atomic JSON files, and the one guardian process — standard library only.

Used in the harness (the launcher, the device lock, the network lab, the drain measurement) and run
on its own as the guardian::

    python -I -S supervise.py --parent PID --pgid PGID [--grace 5] [--lock-fd N] [--cleanup DIR]...
    python -I -S supervise.py --parent PID --state FILE [--lock-fd N] [--owner-file FILE]

(``-I -S``: no site-packages, no environment, nothing of this package imported: ~20 ms to start,
so a guardian costs a server's cold start nothing measurable). Nothing outside the standard library
is imported at module level or anywhere below; tests/server/test_supervise.py runs it that way.

**The guardian** waits while its parent lives. When the parent disappears (SIGKILLed pytest, a
killed xdist worker, a crash before ``atexit``) it does its one job, then exits:

* ``--pgid``: SIGTERM the process group, wait ``--grace`` seconds, SIGKILL it, remove every
  ``--cleanup`` folder. Without ``--control-stdin`` it also exits by itself once the group is
  empty (the parent stopped it);
* ``--state FILE``: run the teardown command the state file names (``{"teardown": {"argv": [...],
  "cwd": ...}}``, written by the owner before it creates anything), then remove the state file.

``--lock-fd`` is an inherited lock descriptor (a device lock, the lab's host-settings lock): the
``flock`` stays held until the guardian exits, so after a parent's death nobody takes the device
before the old server (or lab) is really gone. ``--owner-file``: the lock's owner record, removed
when it still names the parent.

**Parent death** is seen four ways, whichever comes first: a pidfd of the parent becoming readable
(instant, Linux ≥ 5.3), EOF on the control pipe (stdin; ``done`` on it means a normal stop: exit
without acting), ``os.getppid()`` changing (immune to pid reuse), and ``kill(parent, 0)`` failing or
the parent being a zombie. ``PR_SET_PDEATHSIG`` is not used: it fires when the parent *thread* that
forked ends, not the process. The guardian ignores SIGINT and SIGHUP and runs in its own session:
a Ctrl-C at the terminal reaches pytest, never the guardian.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections import namedtuple
from typing import Any, Callable, Iterable

__all__ = [
    "ProcStat",
    "json_object_lines",
    "kill_and_reap",
    "parse_stat",
    "proc_stat",
    "start_time",
    "same_process",
    "pid_alive",
    "group_members",
    "group_alive",
    "kill_group",
    "wait_group_gone",
    "process_gone",
    "resolve_group",
    "signal_and_wait",
    "kill_wait",
    "parent_gone",
    "ParentWatch",
    "write_json_atomic",
    "write_text_atomic",
    "read_json",
    "guard",
    "guardian_command",
    "release_guardian",
    "main",
]

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_DEAD = ("Z", "X", "x")

#: One line of ``/proc/PID/stat``: state letter, parent pid, process group, command name (``comm``,
#: at most 15 characters), CPU ticks used (utime + stime + cutime + cstime), start time in clock ticks
#: since boot (with the pid: a process's identity).
ProcStat = namedtuple("ProcStat", "state ppid pgrp comm ticks start")


def parse_stat(data: bytes | str) -> ProcStat | None:
    """One ``/proc/PID/stat`` line parsed (the command name may hold spaces and parentheses: the
    fields follow the *last* ``)``), or None when it is not one."""
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogateescape")
    i = data.rfind(b")")
    j = data.find(b"(")
    if i < 0 or j < 0 or j > i:
        return None
    comm = data[j + 1:i].decode("utf-8", "replace")
    rest = data[i + 2:].split()
    try:
        return ProcStat(rest[0].decode(), int(rest[1]), int(rest[2]), comm,
                        int(rest[11]) + int(rest[12]) + int(rest[13]) + int(rest[14]), int(rest[19]))
    except (IndexError, ValueError, UnicodeDecodeError):
        return None


def proc_stat(pid: int | str) -> ProcStat | None:
    """``/proc/PID/stat`` of a process (:func:`parse_stat`), or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return parse_stat(f.read())
    except OSError:
        return None


def _live(st: ProcStat | None) -> bool:
    return st is not None and st.state not in _DEAD


def start_time(pid: int | None) -> int | None:
    """Field 22 of ``/proc/PID/stat`` (clock ticks since boot), None for a gone or zombie process:
    with the pid it tells a process from a later one that reuses its pid."""
    if not pid:
        return None
    st = proc_stat(pid)
    return st.start if _live(st) else None


def same_process(pid: int | None, start: int | None) -> bool:
    """Whether ``pid`` still runs and is the process that had ``start`` (see :func:`start_time`)."""
    return bool(pid) and start is not None and start_time(pid) == start


def _signal0(kill: Any, target: int) -> bool:
    """Whether signal 0 reaches ``target`` through ``kill`` (``os.kill``/``os.killpg``); a target we
    may not signal exists."""
    try:
        kill(target, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def pid_alive(pid: int | None) -> bool:
    """Whether ``pid`` runs (a zombie does not; a process we may not signal does)."""
    if not pid or pid < 0 or not _signal0(os.kill, pid):
        return False
    if not os.path.isdir("/proc/self"):
        return True  # no /proc: kill(0) is all we have
    return start_time(pid) is not None


def group_members(pgid: int, *, zombies: bool = False) -> list[tuple[int, str, str]]:
    """Processes whose process group is ``pgid``, as (pid, state, comm); zombies (exited,
    waiting to be reaped) and dead tasks are left out unless ``zombies``."""
    out: list[tuple[int, str, str]] = []
    try:
        names = os.listdir("/proc")
    except OSError:
        return out
    for name in names:
        if not name.isdigit():
            continue
        st = proc_stat(name)
        if st is None or st.pgrp != pgid:
            continue
        if not zombies and st.state in _DEAD:
            continue
        out.append((int(name), st.state, st.comm))
    return out


def group_alive(pgid: int) -> bool:
    """Whether any process of the group still runs (zombies do not count)."""
    if not _signal0(os.killpg, pgid):
        return False
    if not os.path.isdir("/proc/self"):
        return True  # no /proc: the cheap answer (counts zombies) is all we have
    return bool(group_members(pgid))


def kill_group(pgid: int, sig: int) -> bool:
    """Send ``sig`` to the group; False if the group no longer exists."""
    try:
        os.killpg(pgid, sig)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def process_gone(target: int, group: bool) -> bool:
    """Whether no process runs any more: of process group ``target`` (``group``) or the single
    process ``target``. Zombies (exited, not yet reaped by their parent) count as gone."""
    return not group_members(target) if group else not _live(proc_stat(target))


def wait_group_gone(pgid: int, timeout_s: float, interval_s: float = 0.05) -> bool:
    """Wait until no process of the group runs; True if it emptied in time."""
    deadline = time.monotonic() + timeout_s
    while True:
        if not group_alive(pgid):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval_s)


def resolve_group(target: int, group: bool | None) -> bool:
    if group is None:  # a process group id: its leader's pid, or members still carry it
        st = proc_stat(target)
        group = (st is not None and st.pgrp == target) or bool(group_members(target))
    if group and target == os.getpgrp():
        raise ValueError(f"refusing to signal process group {target}: it is this process's own group")
    if target <= 1:
        raise ValueError(f"refusing to signal {'process group' if group else 'pid'} {target}")
    return group


def signal_and_wait(target: int, sig: int = signal.SIGTERM, *, group: bool | None = None,
                    wait_pgid: int | None = None, exit_timeout_s: float = 60.0, kill_after: bool = True,
                    interval_s: float = 0.02) -> tuple[float | None, bool]:
    """Send ``sig`` to process group ``target`` or to the single process ``target``, then wait
    until every process is gone: of ``wait_pgid`` when given, else of what was signalled.

    ``group=None``: a process-group id (a session leader's pid, or a group that still has members)
    is signalled as a group, any other pid alone; True/False forces it. This process's own group
    and pids ≤ 1 are refused (ValueError). ``signal_and_wait(server_pid, group=False,
    wait_pgid=server_pgid)`` is what the kubelet does — SIGTERM to the container's main process only
    — timed until the whole server (its engine and worker children too) has exited.

    Returns ``(seconds from the signal to the last exit, or None if something outlived
    exit_timeout_s; killed)``. With ``kill_after`` a survivor gets SIGKILL (to the waited group)
    and ``killed`` is True."""
    group = resolve_group(target, group)
    if wait_pgid is not None:
        resolve_group(wait_pgid, True)
    w_target, w_group = (wait_pgid, True) if wait_pgid is not None else (target, group)
    t0 = time.monotonic()
    try:
        (os.killpg if group else os.kill)(target, sig)
    except ProcessLookupError:
        if process_gone(w_target, w_group):
            return 0.0, False
    while True:
        if process_gone(w_target, w_group):
            return time.monotonic() - t0, False
        if time.monotonic() - t0 >= exit_timeout_s:
            break
        time.sleep(interval_s)
    if not kill_after:
        return None, False
    try:
        (os.killpg if w_group else os.kill)(w_target, signal.SIGKILL)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + 10.0
    while not process_gone(w_target, w_group) and time.monotonic() < deadline:
        time.sleep(interval_s)
    return None, True


def kill_wait(pids: Iterable[int], sig: int, timeout_s: float) -> list[int]:
    """Send ``sig`` to each pid and wait until all are gone; returns the survivors."""
    left = [p for p in pids if pid_alive(p)]
    for p in left:
        try:
            os.kill(p, sig)
        except OSError:
            pass
    deadline = time.monotonic() + timeout_s
    while True:
        left = [p for p in left if pid_alive(p)]
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.02)


# --------------------------------------------------------------------------- parent death


def parent_gone(parent: int, ppid_at_start: int) -> bool:
    """Whether ``parent`` is gone, for a process that was its child at start (``ppid_at_start``:
    ``os.getppid()`` then): reparented, no such process, or a zombie (killed, not yet reaped)."""
    if ppid_at_start == parent and os.getppid() != parent:
        return True
    try:
        os.kill(parent, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass
    return not _live(proc_stat(parent))


class ParentWatch:
    """Waits for the death of ``parent``: pidfd, EOF on the control pipe (fd 0, with
    ``control_stdin``; ``done`` on it is a normal stop), ``getppid()``, ``kill(parent, 0)``."""

    def __init__(self, parent: int, *, control_stdin: bool = False) -> None:
        self.parent = parent
        self.ppid0 = os.getppid()
        self.poller = select.poll()
        self.pidfd: int | None = None
        try:
            self.pidfd = os.pidfd_open(parent)  # type: ignore[attr-defined]
            self.poller.register(self.pidfd, select.POLLIN)
        except (AttributeError, OSError):
            self.pidfd = None
        self.stdin_open = control_stdin
        if control_stdin:
            self.poller.register(0, select.POLLIN)

    def wait(self, poll_s: float = 0.25, keep_waiting: Callable[[], bool] | None = None) -> str:
        """Block until ``"gone"`` (the parent died), ``"done"`` (it said so on the control pipe) or
        ``"idle"`` (``keep_waiting()`` returned False: nothing left to guard)."""
        while True:
            if keep_waiting is not None and not keep_waiting():
                return "idle"
            gone = False
            for fd, _ in self.poller.poll(int(poll_s * 1000)):
                if fd == self.pidfd:
                    gone = True  # a readable pidfd: the parent exited
                elif fd == 0:
                    try:
                        data = os.read(0, 64)
                    except OSError:
                        data = b""
                    if b"done" in data:
                        return "done"
                    if not data and self.stdin_open:
                        gone = True  # EOF without "done": the parent died
                        self.poller.unregister(0)
                        self.stdin_open = False
            if gone or parent_gone(self.parent, self.ppid0):
                return "gone"


# --------------------------------------------------------------------------- JSON files


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes, *, mode: int = 0o600) -> None:
    """Write ``data`` to a fresh temporary file next to ``path`` (``O_EXCL | O_NOFOLLOW``: never a
    planted symlink or someone else's file), then rename it into place: a reader sees the old file or
    the new one, never half of one. Raises OSError (the temporary file is removed)."""
    path = os.fspath(path)
    d, name = os.path.split(path)
    tmp = os.path.join(d, f".{name}.{os.getpid()}.{time.monotonic_ns()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_text_atomic(path: str | os.PathLike[str], text: str, *, mode: int = 0o600) -> None:
    """``text`` in UTF-8 (whatever the locale) through :func:`write_bytes_atomic`."""
    write_bytes_atomic(path, text.encode("utf-8"), mode=mode)


def write_json_atomic(path: str | os.PathLike[str], data: Any, *, mode: int = 0o600, indent: int | None = 1) -> None:
    """``data`` as JSON through :func:`write_text_atomic`."""
    write_text_atomic(path, json.dumps(data, indent=indent), mode=mode)


def read_json(path: str | os.PathLike[str], *, trusted_only: bool = False, limit: int = 1 << 20) -> Any:
    """The JSON in ``path``, read without following a symlink and only from a regular file; with
    ``trusted_only`` also only a file of ours (or root's) with one link. None when it is absent,
    unsafe or not JSON."""
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW | _CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None
        if trusted_only and (st.st_uid not in (os.geteuid(), 0) or st.st_nlink != 1):
            return None
        with os.fdopen(fd, "rb", closefd=False) as f:
            return json.loads(f.read(limit))
    except (OSError, ValueError):
        return None
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- the guardian


def _log(msg: str) -> None:
    try:
        sys.stderr.write(f"[pytest-inference guardian {os.getpid()}] {msg}\n")
        sys.stderr.flush()
    except Exception:
        pass


def _stop_group(pgid: int, grace_s: float, quiet: bool, parent: int) -> bool:
    """SIGTERM, grace, SIGKILL; True when nothing of the group survives."""
    members = group_members(pgid)
    if not members:
        return True
    if not quiet:
        _log(f"parent {parent} is gone; stopping server group {pgid} "
             f"({len(members)} processes: {', '.join(f'{p} {c}' for p, _, c in members[:8])})")
    kill_group(pgid, signal.SIGTERM)
    if not wait_group_gone(pgid, grace_s):
        if not quiet:
            _log(f"group {pgid} still running after {grace_s:g} s; SIGKILL")
        kill_group(pgid, signal.SIGKILL)
        wait_group_gone(pgid, 10.0)
    left = group_members(pgid)
    if left and not quiet:
        _log(f"processes of group {pgid} survive: {left}")
    return not left


def _tear_down_state(state_path: str, parent: int, timeout_s: float, quiet: bool) -> bool:
    """Run the teardown command the state file names; True when it succeeded (or nothing was left)."""
    state = read_json(state_path, trusted_only=True)
    if not isinstance(state, dict):
        return True  # no state: the owner finished its stop just before dying
    td = state.get("teardown")
    if not quiet:
        _log(f"owner {parent} is gone; tearing down {state.get('what') or state_path}")
    ok = True
    if isinstance(td, dict) and isinstance(td.get("argv"), list) and td["argv"]:
        try:
            rc = subprocess.run([str(a) for a in td["argv"]], cwd=td.get("cwd") or None, stdin=subprocess.DEVNULL,
                                timeout=timeout_s).returncode
            ok = rc == 0
            if rc != 0 and not quiet:
                _log(f"teardown exited with {rc}")
        except (OSError, subprocess.TimeoutExpired) as e:
            ok = False
            if not quiet:
                _log(f"teardown failed: {e}")
    elif not quiet:
        _log(f"{state_path} names no teardown command")
        ok = False
    try:
        os.unlink(state_path)
    except OSError:
        pass
    return ok


def guard(parent: int, *, pgid: int | None = None, state: str | None = None, grace_s: float = 5.0,
          poll_s: float = 0.25, cleanup: Iterable[str] = (), control_stdin: bool = False,
          owner_file: str | None = None, teardown_timeout_s: float = 300.0, quiet: bool = False) -> int:
    """The guardian's body (see the module doc); returns its exit status: 0 when all went (or
    there was nothing to do), 1 when something survives."""
    if (pgid is None) == (state is None):
        raise ValueError("guard: one job, either pgid or state")
    for sig in (signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    watch = ParentWatch(parent, control_stdin=control_stdin)
    keep = (lambda: group_alive(pgid)) if pgid is not None and not control_stdin else None  # type: ignore[arg-type]
    if watch.wait(poll_s, keep) != "gone":
        return 0  # the parent stopped it itself, or the group ended by itself
    ok = _stop_group(pgid, grace_s, quiet, parent) if pgid is not None else \
        _tear_down_state(state, parent, teardown_timeout_s, quiet)  # type: ignore[arg-type]
    for d in cleanup:
        shutil.rmtree(d, ignore_errors=True)
    if owner_file:
        rec = read_json(owner_file)
        if isinstance(rec, dict) and rec.get("pid") == parent:  # not ours to remove otherwise
            try:
                os.unlink(owner_file)
            except OSError:
                pass
    # an inherited lock (--lock-fd) is released when this process exits
    return 0 if ok else 1


def guardian_command(parent: int, *, pgid: int | None = None, state: str | os.PathLike[str] | None = None,
                     grace_s: float | None = None, lock_fd: int | None = None,
                     cleanup: Iterable[str | os.PathLike[str]] = (), control_stdin: bool = True,
                     owner_file: str | os.PathLike[str] | None = None, poll_s: float | None = None) -> list[str]:
    """argv of a guardian (``python -I -S`` this file); pass ``lock_fd`` in ``pass_fds`` too."""
    cmd = [sys.executable, "-I", "-S", os.path.abspath(__file__), "--parent", str(parent)]
    if pgid is not None:
        cmd += ["--pgid", str(pgid)]
    if state is not None:
        cmd += ["--state", os.fspath(state)]
    if grace_s is not None:
        cmd += ["--grace", str(grace_s)]
    if poll_s is not None:
        cmd += ["--poll", str(poll_s)]
    if control_stdin:
        cmd.append("--control-stdin")
    if lock_fd is not None:
        cmd += ["--lock-fd", str(lock_fd)]
    if owner_file is not None:
        cmd += ["--owner-file", os.fspath(owner_file)]
    for d in cleanup:
        cmd += ["--cleanup", os.fspath(d)]
    return cmd


def release_guardian(proc: Any, timeout_s: float = 2.0) -> None:
    """The parent's side of a normal stop: write ``done`` on the guardian's control pipe (it then
    exits without acting), reap it, and kill it if it does not exit within ``timeout_s``."""
    try:
        if proc.stdin is not None:
            proc.stdin.write(b"done\n")
            proc.stdin.close()
    except OSError:
        pass
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            pass


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -I -S supervise.py",
                                description="Guard a process group or a state file: act when the parent process is gone.")
    p.add_argument("--parent", type=int, required=True, help="pid of the process to watch")
    job = p.add_mutually_exclusive_group(required=True)
    job.add_argument("--pgid", type=int, help="kill this process group when the parent is gone")
    job.add_argument("--state", help="run the teardown this state file names when the parent is gone")
    p.add_argument("--grace", type=float, default=5.0, help="seconds between SIGTERM and SIGKILL (default 5)")
    p.add_argument("--poll", type=float, default=0.25, help="seconds between checks (default 0.25)")
    p.add_argument("--lock-fd", type=int, default=None, help="inherited lock descriptor, held until exit")
    p.add_argument("--owner-file", default=None, help="a lock's owner record, removed if it names the parent")
    p.add_argument("--cleanup", action="append", default=[], help="directory to remove afterwards (repeatable)")
    p.add_argument("--control-stdin", action="store_true",
                   help="the parent holds our stdin: 'done' means a normal stop, EOF without it means the parent "
                        "died (with --pgid: exit only on that, not when the group empties)")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    if args.parent <= 1 or (args.pgid is not None and args.pgid <= 1):
        p.error("--parent and --pgid must be > 1")
    return guard(args.parent, pgid=args.pgid, state=args.state, grace_s=args.grace, poll_s=args.poll,
                 cleanup=args.cleanup, control_stdin=args.control_stdin or args.state is not None,
                 owner_file=args.owner_file, quiet=args.quiet)


if __name__ == "__main__":
    sys.exit(main())


def kill_and_reap(p: subprocess.Popen, timeout_s: float = 5.0) -> None:
    """The plain end of a ``subprocess.Popen`` child the caller owns (the open-loop workers, the fake
    server, test helpers): SIGKILL ``p`` if it still runs, reap it (waiting at most ``timeout_s``: a child stuck in the
    kernel is left behind rather than hang the caller) and close the pipes it was given."""
    if p.poll() is None:
        p.kill()
    try:
        p.wait(timeout_s)
    except subprocess.TimeoutExpired:
        pass
    for f in (p.stdin, p.stdout, p.stderr):
        if f is not None:
            try:
                f.close()
            except OSError:
                pass


def json_object_lines(lines, source: str, noun: str = "a line must be"):
    """``(line number, object)`` for each non-blank line of a JSONL text (``lines``: its lines), each
    a JSON object; otherwise one ValueError line ``SOURCE:N: not JSON (...)`` or ``SOURCE:N: {noun}
    a JSON object, not list``. The one JSONL reader of the workload files and the report's records."""
    for no, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{source}:{no}: not JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(obj, dict):
            raise ValueError(f"{source}:{no}: {noun} a JSON object, not {type(obj).__name__}")
        yield no, obj
