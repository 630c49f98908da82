"""A tiny process that kills a server's process group when the process that started it is gone.

    python -m pytest_inference.server.watchdog --parent PID --pgid PGID [--grace 5] [--lock-fd N] [--cleanup DIR]

:func:`pytest_inference.server.launch` starts one next to every server (as a file, with
``python -I -S``: standard library only, ~20 ms to start, so it costs the server's cold
start nothing measurable). While the parent lives it only waits; it exits by itself once
the server's group is empty (the parent stopped the server). When the parent disappears
(SIGKILLed pytest, a killed xdist worker, a crash before ``atexit``) it sends SIGTERM to the
group, waits ``--grace`` seconds, sends SIGKILL, removes every ``--cleanup`` folder (the server's
private TMPDIR, its run folder) and exits.

Parent death is seen four ways, whichever comes first: a pidfd of the parent becoming
readable (instant), EOF on the control pipe (instant), ``os.getppid()`` changing (the watchdog is the parent's child, so this
is immune to pid reuse), and ``os.kill(parent, 0)`` failing. ``PR_SET_PDEATHSIG`` is not
used: it fires when the parent *thread* that forked ends, not the process.

``--lock-fd`` is the parent's open file description of the device lock (see
:mod:`.lock`), inherited: the flock stays held until this process exits, so after a
parent's death no other worker may start a server on the device before the old one is
really gone. A normal release by the parent (``flock(LOCK_UN)``) releases it for both.

The watchdog ignores SIGINT and SIGHUP and runs in its own session: a Ctrl-C at the
terminal reaches pytest, never the watchdog.

This file imports nothing outside the standard library (it runs with ``-S``); the launcher
reuses :func:`group_members` and :func:`kill_group`.
"""

from __future__ import annotations

import argparse
import os
import select
import shutil
import signal
import sys
import time

__all__ = ["group_members", "group_alive", "kill_group", "release_watchdog", "main"]


def _stat_fields(pid: str) -> tuple[str, int, int, str] | None:
    """(state, ppid, pgrp, comm) of /proc/PID/stat, or None if it vanished."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    i = data.rfind(b")")
    if i < 0:
        return None
    comm = data[data.find(b"(") + 1:i].decode("utf-8", "replace")
    rest = data[i + 2:].split()
    try:
        return rest[0].decode(), int(rest[1]), int(rest[2]), comm
    except (IndexError, ValueError):
        return None


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
        f = _stat_fields(name)
        if f is None or f[2] != pgid:
            continue
        if not zombies and f[0] in ("Z", "X", "x"):
            continue
        out.append((int(name), f[0], f[3]))
    return out


def group_alive(pgid: int) -> bool:
    """Whether any process of the group still runs (zombies do not count)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    except OSError:
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


def _wait_group(pgid: int, timeout_s: float, interval_s: float = 0.05) -> bool:
    """Wait until no process of the group runs; True if it emptied in time."""
    deadline = time.monotonic() + timeout_s
    while True:
        if not group_alive(pgid):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval_s)


def _parent_gone(parent: int, my_ppid_at_start: int) -> bool:
    if my_ppid_at_start == parent and os.getppid() != parent:
        return True
    try:
        os.kill(parent, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass
    # a zombie parent (killed, not yet reaped by its own parent) is gone too
    f = _stat_fields(str(parent))
    return f is None or f[0] in ("Z", "X", "x")


def _log(msg: str) -> None:
    try:
        sys.stderr.write(f"[pytest-inference watchdog {os.getpid()}] {msg}\n")
        sys.stderr.flush()
    except Exception:
        pass


def release_watchdog(proc, timeout_s: float = 2.0) -> None:
    """The parent's side of a normal stop: write ``done`` on the watchdog's control pipe (it
    then exits without acting), reap it, and kill it if it does not exit within ``timeout_s``.
    Used for the server watchdog and for the network lab's guardian alike."""
    import subprocess

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
    p = argparse.ArgumentParser(prog="python -m pytest_inference.server.watchdog",
                                description="Kill a server's process group when its parent process is gone.")
    p.add_argument("--parent", type=int, required=True, help="pid of the process that started the server")
    p.add_argument("--pgid", type=int, required=True, help="the server's process group")
    p.add_argument("--grace", type=float, default=5.0, help="seconds between SIGTERM and SIGKILL (default 5)")
    p.add_argument("--poll", type=float, default=0.25, help="seconds between checks (default 0.25)")
    p.add_argument("--lock-fd", type=int, default=None, help="inherited device-lock descriptor, held until exit")
    p.add_argument("--cleanup", action="append", default=[], help="directory to remove after the group is gone (repeatable)")
    p.add_argument("--control-stdin", action="store_true",
                   help="the parent holds our stdin: 'done' means it stopped the server itself, EOF without "
                        "it means the parent died (then exit only on that, not when the group empties)")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)

    for sig in (signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    ppid0 = os.getppid()
    pidfd = None
    try:
        pidfd = os.pidfd_open(args.parent)  # type: ignore[attr-defined]
    except (AttributeError, OSError):
        pidfd = None
    poller = select.poll()
    if pidfd is not None:
        poller.register(pidfd, select.POLLIN)
    if args.control_stdin:
        poller.register(0, select.POLLIN)

    while True:
        if not args.control_stdin and not group_alive(args.pgid):
            return 0  # stopped by the parent (or died by itself): nothing to do
        parent_gone = False
        for fd, _ in poller.poll(int(args.poll * 1000)):
            if fd == pidfd:
                parent_gone = True  # readable pidfd: the parent exited
            elif fd == 0:
                try:
                    data = os.read(0, 64)
                except OSError:
                    data = b""
                if b"done" in data:
                    return 0  # the parent stopped the server and cleaned up itself
                if not data:
                    parent_gone = True  # EOF without "done": the parent died
                    poller.unregister(0)
        if parent_gone or _parent_gone(args.parent, ppid0):
            break

    members = group_members(args.pgid)
    if members and not args.quiet:
        _log(f"parent {args.parent} is gone; stopping server group {args.pgid} "
             f"({len(members)} processes: {', '.join(f'{p} {c}' for p, _, c in members[:8])})")
    if members:
        kill_group(args.pgid, signal.SIGTERM)
    if members and not _wait_group(args.pgid, args.grace):
        if not args.quiet:
            _log(f"group {args.pgid} still running after {args.grace:g} s; SIGKILL")
        kill_group(args.pgid, signal.SIGKILL)
        _wait_group(args.pgid, 10.0)
    for d in args.cleanup:
        shutil.rmtree(d, ignore_errors=True)
    left = group_members(args.pgid)
    if left and not args.quiet:
        _log(f"processes of group {args.pgid} survive: {left}")
    # the inherited device lock (if any) is released when this process exits
    return 1 if left else 0


if __name__ == "__main__":
    sys.exit(main())
