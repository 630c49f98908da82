"""Launch an inference server, time its cold start, and never leak it.

    spec = ServerSpec(command="{python} -m my_server --model {model_path} --port {port} {args}",
                      model_path="/models/tiny", model="tiny", python="/venv/bin/python")
    with launch(spec) as h:
        timeline = h.wait_ready()          # launch -> port open -> /health 200 -> first streamed token
        timeline.first_token_s             # the cold-start figure

Clock: every time is ``time.monotonic()`` (CLOCK_MONOTONIC, the same clock as the engine's
``perf_counter_ns``) relative to the instant right before ``Popen``. Waiting for the device
lock happens before that instant and is reported apart (``lock_wait_s``).

Leak safety, in layers:

* the server runs in its own session/process group (``start_new_session``), so its
  children (engine cores, workers) go with it: :meth:`ServerHandle.stop` sends SIGTERM to the
  whole group, waits, then SIGKILLs the group, and reaps;
* :meth:`ServerHandle.wait_ready` stops the server on any failure, timeout and Ctrl-C;
* an ``atexit`` hook stops whatever is still running when the interpreter exits, and a
  SIGTERM/SIGHUP handler (installed only where the handler was the default) signals the
  groups before the process dies;
* a watchdog (the guardian of :mod:`pytest_inference.supervise`) started with each server kills its group when this
  process disappears without any of the above (SIGKILL, a killed xdist worker). It also
  inherits the device lock, so the device stays locked until the old server is gone.

What is not covered: a server process that leaves its process group itself (``setsid``),
and the few milliseconds between ``Popen`` of the server and ``Popen`` of its watchdog.

The launcher knows no server family. What one needs beyond a command comes through
:class:`ServerHooks` (``ServerSpec.hooks``): the environment that points its caches at
``<cache_dir>/cache``, and CPU pinning once ``/health`` answers. vLLM's hooks live in
:mod:`pytest_inference.vllm`; an SGLang or TGI package plugs in the same way.
"""

from __future__ import annotations

import atexit
import http.client
import os
import re
import shlex
import shutil
import signal
import socket
import string
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections import deque
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

from .. import supervise as _sv
from .lock import DeviceLock, DeviceLockError

__all__ = ["ServerSpec", "ServerHooks", "ServerHandle", "ServerStartError", "ServerExit", "Timeline", "launch",
           "free_port"]

PLACEHOLDERS = ("python", "model_path", "model", "host", "port", "args", "cache_dir")
MAX_LINES = 200_000
TAIL_LINES = 30
_ADDR_IN_USE = re.compile(r"address already in use|errno 98\b|eaddrinuse", re.I)

OnLine = Callable[[str, float], None]
Progress = Callable[[str, float], None]


class ServerStartError(RuntimeError):
    """The server did not become ready: it exited, timed out, or could not be started.

    ``returncode`` (None unless it exited), ``stage`` (what was being waited for),
    ``elapsed_s`` (since launch), ``tail`` (last log lines), ``port_in_use`` (the log says
    the port was taken), ``timeline`` (what was measured before the failure)."""

    def __init__(self, message: str, *, returncode: int | None = None, stage: str | None = None,
                 elapsed_s: float | None = None, tail: str = "", port_in_use: bool = False,
                 timeline: "Timeline | None" = None) -> None:
        super().__init__(message)
        self.returncode = returncode
        self.stage = stage
        self.elapsed_s = elapsed_s
        self.tail = tail
        self.port_in_use = port_in_use
        self.timeline = timeline


Member = tuple[int, str, str]  # a process of the server's group: (pid, state, comm)


class ServerHooks:
    """What the launcher asks of one family of servers (vLLM, SGLang, TGI, …). This base asks
    nothing: a server the launcher knows nothing about. Subclass it and pass an instance as
    ``ServerSpec.hooks``."""

    name = "server"

    def environment(self, cache_root: Path) -> dict[str, str]:
        """Variables that point the server's caches at ``cache_root`` (``<cache_dir>/cache``)."""
        return {}

    def pin(self, pgid: int, members: Sequence[Member], mode: bool | str) -> dict[str, Any]:
        """Place the group's processes on CPUs, once ``/health`` answered and before the first
        request; ``mode`` is ``ServerSpec.pin_cpus``. Best effort: returns what was done
        (``done``, and ``reason`` when nothing was)."""
        return {"done": False, "reason": f"no CPU pinning for a {self.name} (ServerSpec.hooks)"}


@dataclass
class ServerSpec:
    """How to start a server. ``command`` is a template (``str``: formatted, then
    ``shlex.split``; values are shell-quoted) or a list (each item formatted; an item that
    is exactly ``"{args}"`` expands to the split ``args``). Placeholders: ``{python}``,
    ``{model_path}``, ``{model}``, ``{host}``, ``{port}``, ``{args}``, ``{cache_dir}``."""

    command: str | Sequence[str]
    model_path: str | os.PathLike[str] | None = None
    model: str = "model"
    host: str = "127.0.0.1"
    port: int = 0  # 0: pick a free port
    args: str | Sequence[str] = ""
    env: dict[str, str] | None = None  # added to (and overriding) this process's environment
    python: str = sys.executable
    cache_dir: str | os.PathLike[str] | None = None  # <cache_dir>/cache (hooks.environment), TMPDIR=<cache_dir>/tmp/<device>
    log_path: str | os.PathLike[str] | None = None  # default: a new file in the system temp dir
    start_timeout_s: float = 600.0  # launch -> first token (lock wait not included)
    health_path: str = "/health"
    device: str = "cpu"  # the lock key: one server per device on this machine
    lock_dir: str | os.PathLike[str] | None = None  # default: lock.default_lock_dir()
    lock_timeout_s: float | None = None  # None: wait for the device as long as it takes
    pin_cpus: bool | str = "auto"  # passed to hooks.pin: "auto" (the hooks decide), True, False
    cwd: str | os.PathLike[str] | None = None
    stop_grace_s: float = 30.0  # SIGTERM -> SIGKILL for atexit / context-manager stops
    watchdog_grace_s: float = 5.0  # the same, when the watchdog stops an orphaned server
    first_token_max_tokens: int = 8
    first_token_prompt: str = "Hello"
    api_key: str | None = None  # bearer token for /health and the first request (never logged)
    hooks: ServerHooks | None = None  # the server family's hooks; None: ServerHooks() (none)
    #: folders removed once the server is gone (by stop(), or by the watchdog if this process dies)
    cleanup_dirs: Sequence[str | os.PathLike[str]] = ()

    def format_command(self, port: int, cache_dir: Path | None = None) -> list[str]:
        """The argv this spec starts with on ``port``."""
        raw = {
            "python": self.python,
            "model_path": "" if self.model_path is None else os.fspath(self.model_path),
            "model": self.model,
            "host": self.host,
            "port": str(port),
            "cache_dir": "" if cache_dir is None else os.fspath(cache_dir),
        }
        args_list = shlex.split(self.args) if isinstance(self.args, str) else [str(a) for a in self.args]
        cmd = self.command
        try:
            if isinstance(cmd, str):
                fields = {f for _, f, _, _ in string.Formatter().parse(cmd) if f is not None}
                self._check_fields(fields, raw)
                q = {k: shlex.quote(v) if v else "''" for k, v in raw.items()}
                q["port"] = raw["port"]
                q["args"] = " ".join(shlex.quote(a) for a in args_list)
                argv = shlex.split(cmd.format(**q))
            else:
                argv = []
                for item in cmd:
                    item = str(item)
                    if item == "{args}":
                        argv.extend(args_list)
                        continue
                    fields = {f for _, f, _, _ in string.Formatter().parse(item) if f is not None}
                    self._check_fields(fields, raw)
                    argv.append(item.format(**raw, args=" ".join(args_list)))
        except (IndexError, ValueError) as e:
            raise ServerStartError(f"bad server command template {cmd!r}: {e}") from None
        if not argv:
            raise ServerStartError("the server command is empty")
        return argv

    def _check_fields(self, fields: set[str], raw: dict[str, str]) -> None:
        for f in fields:
            name = re.split(r"[.\[!:]", f, maxsplit=1)[0]
            if name not in PLACEHOLDERS:
                raise ServerStartError(f"unknown placeholder {{{f}}} in the server command; "
                                       f"known: {', '.join('{' + p + '}' for p in PLACEHOLDERS)}")
            if name == "model_path" and self.model_path is None:
                raise ServerStartError("the server command uses {model_path} but ServerSpec.model_path is not set")
            if name == "cache_dir" and not raw["cache_dir"]:
                raise ServerStartError("the server command uses {cache_dir} but ServerSpec.cache_dir is not set")


@dataclass
class Timeline:
    """A cold start, in seconds since launch (``time.monotonic()`` right before Popen)."""

    launched_at: str = ""  # wall-clock ISO time of the launch
    device: str = ""
    port: int = 0
    pid: int | None = None
    command: list[str] = field(default_factory=list)
    lock_wait_s: float = 0.0  # waiting for the device before launch; not part of any figure below
    port_open_s: float | None = None  # the port accepted a TCP connection
    health_s: float | None = None  # GET health_path answered 200
    first_token_s: float | None = None  # the first token of the first streamed request (headline)
    ttft_ms: float | None = None  # that request's own time to first token
    first_request: dict[str, Any] | None = None  # the engine's RequestResult of that request
    pinning: dict[str, Any] | None = None  # what CPU pinning did (or why not)
    lines: list[tuple[float, str]] = field(default_factory=list)  # (seconds since launch, log line)
    phases: Any = None  # filled by the log-phase parser
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["lines"] = [[round(t, 6), s] for t, s in self.lines]
        return d


@dataclass
class ServerExit:
    """What :meth:`ServerHandle.stop` found and did."""

    returncode: int | None  # negative: killed by that signal
    exited_before_stop: bool  # the server had already exited when stop() began
    signals: list[str]  # signals sent to the group, in order
    killed: bool  # SIGKILL was needed
    stop_s: float  # how long stopping took
    survivors: list[tuple[int, str, str]]  # (pid, state, comm) still running afterwards: should be []
    gone_at: float = 0.0  # time.monotonic() once the group was gone, before the device lock was released

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------- helpers


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (bind to 0). Another process may take it before
    the server binds it; :meth:`ServerHandle.wait_ready` says so when that happens."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(fam, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _port_open(host: str, port: int, timeout_s: float = 0.5) -> bool:
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(timeout_s)
    try:
        return s.connect_ex((host, port)) == 0
    except OSError:
        return False
    finally:
        s.close()


def _listener_inodes(port: int) -> set[str]:
    """Socket inodes listening on ``port`` (Linux /proc/net/tcp*)."""
    out: set[str] = set()
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                next(f, None)
                for line in f:
                    p = line.split()
                    if len(p) > 9 and p[3] == "0A" and int(p[1].rsplit(":", 1)[1], 16) == port:
                        out.add(p[9])
        except (OSError, ValueError, IndexError):
            continue
    return out


def _socket_owners(inodes: set[str], pids: Sequence[int]) -> set[int]:
    owners: set[int] = set()
    targets = {f"socket:[{i}]" for i in inodes}
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    if os.readlink(f"/proc/{pid}/fd/{fd}") in targets:
                        owners.add(pid)
                        break
                except OSError:
                    continue
        except OSError:
            continue
    return owners


def _port_owner_is_group(port: int, pgid: int) -> bool | None:
    """Whether the listener on ``port`` belongs to the server's group: True / False (someone
    else took the port), or None when it cannot be told (no /proc, no permission)."""
    inodes = _listener_inodes(port)
    if not inodes:
        return None
    members = [p for p, _, _ in _sv.group_members(pgid)]
    if _socket_owners(inodes, members):
        return True
    # the listener may live in a namespace /proc/net does not show, or be a process we may not inspect
    try:
        all_pids = [int(n) for n in os.listdir("/proc") if n.isdigit()]
    except OSError:
        return None
    others = _socket_owners(inodes, [p for p in all_pids if p not in members])
    return False if others else None


# --------------------------------------------------------------------------- in-process safety net

_live: "weakref.WeakSet[ServerHandle]" = weakref.WeakSet()
_live_lock = threading.Lock()
_hooks_installed = False
_prev_handlers: dict[int, Any] = {}


def _atexit_stop_all() -> None:
    for h in list(_live):
        try:
            h.stop(grace_s=min(h.spec.stop_grace_s, 10.0))
        except BaseException:
            pass


def _on_fatal_signal(signum: int, frame: Any) -> None:
    # signal the groups (non-blocking), then die as the default action would; the watchdogs
    # escalate to SIGKILL and release the device locks once the groups are gone
    for h in list(_live):
        try:
            if h._exit is None:
                _sv.kill_group(h.pgid, signal.SIGTERM)
        except BaseException:
            pass
    prev = _prev_handlers.get(signum, signal.SIG_DFL)
    if callable(prev):
        prev(signum, frame)
        return
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _install_hooks() -> None:
    global _hooks_installed
    if _hooks_installed:
        return
    _hooks_installed = True
    atexit.register(_atexit_stop_all)
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGHUP):
        try:
            cur = signal.getsignal(sig)
            if cur in (signal.SIG_DFL, None):
                _prev_handlers[sig] = signal.SIG_DFL
                signal.signal(sig, _on_fatal_signal)
        except (ValueError, OSError):
            pass


# --------------------------------------------------------------------------- the handle


class ServerHandle:
    """A launched server. Use :func:`launch` to make one."""

    def __init__(self, spec: ServerSpec, on_line: OnLine | None = None) -> None:
        self.spec = spec
        self.hooks = spec.hooks if spec.hooks is not None else ServerHooks()
        self.on_line = on_line
        self.device = spec.device
        self.host = spec.host
        self.port = 0
        self.argv: list[str] = []
        self.proc: subprocess.Popen[bytes] | None = None
        self.watchdog: subprocess.Popen[bytes] | None = None
        self.lock: DeviceLock | None = None
        self.lock_wait_s = 0.0
        self.t0 = 0.0  # time.monotonic() right before Popen
        self.launched_at = ""
        self.log_path = Path(spec.log_path) if spec.log_path is not None else None
        self.tmpdir: Path | None = None
        self.cache_root: Path | None = None
        self.stage = "not started"
        self.timeline: Timeline | None = None
        self._lines: list[tuple[float, str]] = []
        self._lines_dropped = 0
        self._tail: deque[str] = deque(maxlen=400)
        self._reader: threading.Thread | None = None
        self._log_file: Any = None
        self._exit: ServerExit | None = None
        self._stop_lock = threading.Lock()
        self._auto_log = False

    # ------------------------------------------------------------------ properties
    @property
    def pid(self) -> int:
        return self.proc.pid if self.proc is not None else 0

    @property
    def pgid(self) -> int:
        return self.pid  # a session leader: its pid is its process group id

    @property
    def root_url(self) -> str:
        h = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{h}:{self.port}"

    @property
    def base_url(self) -> str:
        return self.root_url + "/v1"

    @property
    def returncode(self) -> int | None:
        return self.proc.poll() if self.proc is not None else None

    def alive(self) -> bool:
        """The server process itself is running (not exited)."""
        return self.proc is not None and self.proc.poll() is None

    def group_members(self) -> list[tuple[int, str, str]]:
        """Running processes of the server's group (pid, state, comm)."""
        return _sv.group_members(self.pgid) if self.proc is not None else []

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    # ------------------------------------------------------------------ log capture
    def lines(self) -> list[tuple[float, str]]:
        """Every log line so far as (seconds since launch, text)."""
        return list(self._lines)

    def log_tail(self, n: int = 40) -> str:
        tail = list(self._tail)
        return "\n".join(tail[-n:]) if n > 0 else ""

    def last_line(self) -> str:
        return self._tail[-1] if self._tail else ""

    def _add_line(self, t: float, text: str) -> None:
        if len(self._lines) < MAX_LINES:
            self._lines.append((t, text))
        else:
            self._lines_dropped += 1
        self._tail.append(text)
        cb = self.on_line
        if cb is not None:
            try:
                cb(text, t)
            except Exception as e:  # a broken callback must not stop the log capture
                self.on_line = None
                self._tail.append(f"[pytest-inference] on_line callback failed and was dropped: {e!r}")

    def _read_log(self, fd: int) -> None:
        buf = b""
        f = self._log_file
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                chunk = b""
            t = time.monotonic() - self.t0
            if not chunk:
                break
            if f is not None:
                try:
                    f.write(chunk)
                except (OSError, ValueError):
                    pass
            buf += chunk
            # \r as well: progress bars redraw a line with \r
            parts = re.split(rb"\r\n|\n|\r", buf)
            buf = parts.pop()
            for p in parts:
                if p.strip():
                    self._add_line(t, p.decode("utf-8", "replace").rstrip())
            if len(buf) > 1 << 20:  # a newline-less flood: cut it
                self._add_line(t, buf.decode("utf-8", "replace"))
                buf = b""
        if buf.strip():
            self._add_line(time.monotonic() - self.t0, buf.decode("utf-8", "replace").rstrip())

    # ------------------------------------------------------------------ start
    def _start(self, progress: Progress | None = None) -> None:
        spec = self.spec
        _install_hooks()
        self.lock = DeviceLock(spec.device, spec.lock_dir)
        self.stage = f"waiting for device {spec.device}"
        try:
            self.lock_wait_s = self.lock.acquire(timeout_s=spec.lock_timeout_s, progress=progress)
        except DeviceLockError as e:  # a timeout, or an unsafe lock directory / planted symlink
            self.lock = None
            raise ServerStartError(str(e), stage=self.stage) from None
        try:
            self._start_locked()
        except BaseException:
            self._cleanup_failed_start()
            raise

    def _start_locked(self) -> None:
        spec = self.spec
        if spec.port:
            self.port = int(spec.port)
            if _port_open(spec.host, self.port, 0.5):
                raise ServerStartError(f"something already listens on {spec.host}:{self.port}; "
                                       "stop it or use port=0 (a free port)", stage="launch")
        else:
            self.port = free_port(spec.host)
        env = dict(os.environ)
        if spec.env:
            env.update({k: str(v) for k, v in spec.env.items()})
        cache_dir = Path(spec.cache_dir).resolve() if spec.cache_dir is not None else None
        self.argv = spec.format_command(self.port, cache_dir)
        exe = self.argv[0]
        if os.sep not in exe and shutil.which(exe, path=env.get("PATH")) is None:
            raise ServerStartError(f"cannot start the server: executable {exe!r} not found on PATH",
                                   stage="launch")
        safe_dev = re.sub(r"[^A-Za-z0-9_.-]", "_", spec.device) or "device"
        if cache_dir is not None:
            self.cache_root = cache_dir / "cache"
            self.cache_root.mkdir(parents=True, exist_ok=True)
            env.update(self.hooks.environment(self.cache_root))
            self.tmpdir = cache_dir / "tmp" / safe_dev
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            self.tmpdir.mkdir(parents=True, exist_ok=True)
        else:
            self.tmpdir = Path(tempfile.mkdtemp(prefix=f"pytest-inference-server-{safe_dev}-"))
        env["TMPDIR"] = str(self.tmpdir)
        if self.log_path is None:
            self._auto_log = True
            fd, name = tempfile.mkstemp(prefix=f"pytest-inference-server-{safe_dev}-", suffix=".log")
            os.close(fd)
            self.log_path = Path(name)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = open(self.log_path, "wb", buffering=0)
        self.launched_at = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        self.stage = "launching"
        self.t0 = time.monotonic()
        try:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=subprocess.STDOUT, env=env, cwd=spec.cwd,
                                         start_new_session=True, close_fds=True, bufsize=0)
        except FileNotFoundError as e:
            what = e.filename or exe
            raise ServerStartError(f"cannot start the server: {what!r} not found"
                                   + (f" (cwd {spec.cwd})" if spec.cwd and what != exe else ""),
                                   stage="launch") from None
        except PermissionError:
            raise ServerStartError(f"cannot start the server: {exe!r} is not executable", stage="launch") from None
        except OSError as e:
            raise ServerStartError(f"cannot start the server ({exe!r}): {e.strerror or e}", stage="launch") from None
        with _live_lock:
            _live.add(self)
        self._start_watchdog()
        assert self.proc.stdout is not None
        self._reader = threading.Thread(target=self._read_log, args=(self.proc.stdout.fileno(),),
                                        name=f"server-log-{self.pid}", daemon=True)
        self._reader.start()
        self.lock.write_owner(pgid=self.pgid, port=self.port, command=" ".join(self.argv)[:500])  # type: ignore[union-attr]
        self.stage = "waiting for port"

    def _start_watchdog(self) -> None:
        assert self.proc is not None and self.lock is not None
        cmd = _sv.guardian_command(os.getpid(), pgid=self.pgid, grace_s=self.spec.watchdog_grace_s,
                                   lock_fd=self.lock.fd, control_stdin=True,
                                   cleanup=([self.tmpdir] if self.tmpdir is not None else []) + list(self.spec.cleanup_dirs))
        fds: tuple[int, ...] = (self.lock.fd,) if self.lock.fd is not None else ()
        try:
            self.watchdog = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                             stderr=self._log_file if self._log_file is not None else None,
                                             start_new_session=True, close_fds=True, pass_fds=fds)
        except OSError as e:
            self._tail.append(f"[pytest-inference] could not start the watchdog: {e}")
            self.watchdog = None

    def _cleanup_failed_start(self) -> None:
        if self.proc is not None:
            self.stop(grace_s=5.0)
            return
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        if self._auto_log and self.log_path is not None:
            try:
                if self.log_path.stat().st_size == 0:  # nothing ran: no log worth keeping
                    self.log_path.unlink()
            except OSError:
                pass
        if self.tmpdir is not None:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
        self._remove_cleanup_dirs()
        if self.lock is not None:
            self.lock.release()

    # ------------------------------------------------------------------ readiness
    def _fail(self, msg: str, *, stage: str, returncode: int | None = None) -> ServerStartError:
        """Stop the server, then build the error (the tail is complete once it is stopped)."""
        elapsed = self.elapsed()
        if self._exit is None:
            # an exited leader: give the log reader a moment to read its last words before the group goes
            if returncode is not None and self._reader is not None:
                self._reader.join(0.3)
            self.stop(grace_s=5.0)
        tail = self.log_tail(TAIL_LINES)
        in_use = bool(_ADDR_IN_USE.search(tail))
        if in_use:
            msg += (f"; the log says port {self.port} is already in use: another process took it between "
                    "choosing it and the server binding it (port race) or it is not free; retry, or pass a port")
        if self.timeline is not None:
            self.timeline.error = msg
            self.timeline.lines = self.lines()
        full = f"{msg}\n--- last {min(TAIL_LINES, len(self._tail))} log lines ({self.log_path}) ---\n{tail}"
        return ServerStartError(full, returncode=returncode, stage=stage, elapsed_s=elapsed, tail=tail,
                                port_in_use=in_use, timeline=self.timeline)

    def _died(self, stage: str) -> ServerStartError:
        rc = self.proc.poll() if self.proc is not None else None
        if rc is None:
            how = "exited"
        elif rc >= 0:
            how = f"exit code {rc}"
        else:
            try:
                how = f"killed by {signal.Signals(-rc).name}"
            except ValueError:
                how = f"killed by signal {-rc}"
        return self._fail(f"server exited during start ({how}) after {self.elapsed():.1f} s, while {stage}",
                          stage=stage, returncode=rc)

    def _health(self, timeout_s: float) -> int | None:
        """Status of GET health_path, or None if it could not be asked."""
        c = http.client.HTTPConnection(self.host, self.port, timeout=max(0.1, timeout_s))
        try:
            hdrs = {"Connection": "close"}
            if self.spec.api_key:
                hdrs["Authorization"] = f"Bearer {self.spec.api_key}"
            c.request("GET", self.spec.health_path, headers=hdrs)
            r = c.getresponse()
            r.read()
            return r.status
        except (OSError, http.client.HTTPException):
            return None
        finally:
            c.close()

    def wait_ready(self, first_token: bool = True, progress: Progress | None = None,
                   timeout_s: float | None = None) -> Timeline:
        """Block until the server is ready: the port accepts, ``GET health_path`` answers 200
        and (``first_token``) one streamed chat request (``max_tokens`` 8, ``ignore_eos``)
        delivered its first token. Returns the :class:`Timeline`.

        Raises :class:`ServerStartError` as soon as the server exits, on timeout
        (``timeout_s``, default ``spec.start_timeout_s``, counted from launch) and when the
        first request fails; the server is stopped in every failure (Ctrl-C included).
        ``progress(text, elapsed_s)`` is called about every 2 s with the stage and the last
        log line."""
        if self.proc is None:
            raise ServerStartError("the server was not launched", stage="launch")
        if self._exit is not None:
            raise ServerStartError("the server was already stopped", stage="launch")
        timeout = self.spec.start_timeout_s if timeout_s is None else timeout_s
        deadline = self.t0 + timeout
        tl = self.timeline = Timeline(launched_at=self.launched_at, device=self.device, port=self.port,
                                      pid=self.pid, command=list(self.argv), lock_wait_s=self.lock_wait_s)
        next_progress = [time.monotonic() + 2.0]

        def tick(force: bool = False) -> None:
            if progress is None:
                return
            now = time.monotonic()
            if force or now >= next_progress[0]:
                next_progress[0] = now + 2.0
                last = self.last_line()
                try:
                    progress(self.stage + (f" | {last[-200:]}" if last else ""), now - self.t0)
                except Exception:
                    pass

        try:
            # 1. the port
            self.stage = "waiting for port"
            tick(force=True)
            while True:
                if self.proc.poll() is not None:
                    raise self._died(self.stage)
                if _port_open(self.host, self.port, 0.5):
                    tl.port_open_s = self.elapsed()
                    break
                if time.monotonic() >= deadline:
                    raise self._fail(f"server did not open port {self.port} within {timeout:g} s",
                                     stage=self.stage)
                tick()
                time.sleep(0.02)
            if self.proc.poll() is None and _port_owner_is_group(self.port, self.pgid) is False:
                raise self._fail(f"port {self.port} is answered by a process outside the server's group "
                                 "(another process took it: port race); retry, or pass a free port",
                                 stage=self.stage)
            # 2. /health
            self.stage = f"waiting for {self.spec.health_path}"
            tick(force=True)
            last_status: int | None = None
            while True:
                if self.proc.poll() is not None:
                    raise self._died(self.stage)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise self._fail(f"{self.spec.health_path} did not answer 200 within {timeout:g} s "
                                     f"(last answer: {last_status if last_status is not None else 'none'})",
                                     stage=self.stage)
                last_status = self._health(min(2.0, left))
                if last_status == 200:
                    tl.health_s = self.elapsed()
                    break
                tick()
                time.sleep(0.05)
            # pinning (best effort; before the first request, so that request is not burst-delivered)
            t = time.monotonic()
            try:
                tl.pinning = dict(self.hooks.pin(self.pgid, self.group_members(), self.spec.pin_cpus))
            except Exception as e:  # best effort: a failed pinning is recorded, the start goes on
                tl.pinning = {"done": False, "reason": f"failed: {e!r}"}
            tl.pinning["took_s"] = round(time.monotonic() - t, 4)
            tl.pinning["mode"] = self.spec.pin_cpus
            # 3. the first streamed token
            if first_token:
                self.stage = "first token"
                tick(force=True)
                self._first_token(tl, deadline, timeout, tick)
            self.stage = "ready"
            tl.lines = self.lines()
            return tl
        except ServerStartError:
            raise
        except BaseException:
            # Ctrl-C, a crash in a callback...: never leave the server behind
            try:
                self.stop(grace_s=5.0)
            finally:
                tl.error = "interrupted"
            raise

    def _first_token(self, tl: Timeline, deadline: float, timeout: float, tick: Callable[..., None]) -> None:
        from ..engine import EndpointError, RequestSpec, StreamClient

        left = deadline - time.monotonic()
        if left <= 0:
            raise self._fail(f"no time left for the first request within {timeout:g} s", stage=self.stage)
        req = RequestSpec(model=self.spec.model, prompt=self.spec.first_token_prompt,
                          max_tokens=self.spec.first_token_max_tokens, ignore_eos=True)
        try:
            with StreamClient(self.base_url, api_key=self.spec.api_key, timeout_s=left) as client:
                run = client.run([req], concurrency=1, warmup=0, progress=lambda done, total: tick())
            res = run.results[0]
        except EndpointError as e:
            if self.proc is not None and self.proc.poll() is not None:
                raise self._died(self.stage) from None
            raise self._fail(f"the first streamed request failed: {e}", stage=self.stage) from None
        if not res.ok or res.ttft_ms is None:
            if self.proc is not None and self.proc.poll() is not None:
                raise self._died(self.stage)
            if time.monotonic() >= deadline:
                raise self._fail(f"no first token within {timeout:g} s ({res.error or 'no token'})",
                                 stage=self.stage)
            raise self._fail(f"the first streamed request failed: {res.error or 'no token event'}"
                             + (f" (HTTP {res.status})" if res.status and res.status != 200 else ""),
                             stage=self.stage)
        t_first = res.send_ns / 1e9 + res.ttft_ms / 1000.0  # perf_counter == monotonic (CLOCK_MONOTONIC)
        tl.first_token_s = t_first - self.t0
        tl.ttft_ms = res.ttft_ms
        tl.first_request = res.to_dict()

    # ------------------------------------------------------------------ stop
    def stop(self, grace_s: float = 30.0) -> ServerExit:
        """SIGTERM the whole process group, wait up to ``grace_s`` for every process of it to
        end, then SIGKILL the group; reap, remove the private TMPDIR, release the device.
        Idempotent: later calls return the first call's :class:`ServerExit`. A Ctrl-C while
        waiting sends SIGKILL at once (and is re-raised)."""
        with self._stop_lock:
            if self._exit is not None:
                return self._exit
            t = time.monotonic()
            proc = self.proc
            signals: list[str] = []
            killed = False
            interrupted: BaseException | None = None
            exited_before = proc is None or proc.poll() is not None
            if proc is not None:
                pgid = self.pgid
                try:
                    if self._running(pgid):
                        _sv.kill_group(pgid, signal.SIGTERM)
                        signals.append("SIGTERM")
                        if not self._wait_gone(pgid, grace_s):
                            _sv.kill_group(pgid, signal.SIGKILL)
                            signals.append("SIGKILL")
                            killed = True
                            self._wait_gone(pgid, 10.0)
                except BaseException as e:  # Ctrl-C while waiting: no more grace
                    interrupted = e
                    _sv.kill_group(pgid, signal.SIGKILL)
                    signals.append("SIGKILL")
                    killed = True
                    self._wait_gone(pgid, 5.0)
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass
            survivors = self.group_members() if proc is not None else []
            gone_at = time.monotonic()
            if self._reader is not None:
                self._reader.join(2.0)
            if proc is not None and proc.stdout is not None:
                try:
                    proc.stdout.close()
                except OSError:
                    pass
            if self._log_file is not None:
                try:
                    self._log_file.close()
                except OSError:
                    pass
                self._log_file = None
            if self.tmpdir is not None:
                shutil.rmtree(self.tmpdir, ignore_errors=True)
            if not survivors:  # a survivor may still write there: the watchdog removes it later
                self._remove_cleanup_dirs()
            self._stop_watchdog()
            if self.lock is not None:
                self.lock.release()
            self.stage = "stopped"
            self._exit = ServerExit(returncode=proc.returncode if proc is not None else None,
                                    exited_before_stop=exited_before, signals=signals, killed=killed,
                                    stop_s=gone_at - t, survivors=survivors, gone_at=gone_at)
            with _live_lock:
                _live.discard(self)
            if interrupted is not None:
                raise interrupted
            return self._exit

    def _remove_cleanup_dirs(self) -> None:
        for d in self.spec.cleanup_dirs:
            shutil.rmtree(d, ignore_errors=True)

    def _running(self, pgid: int) -> bool:
        return (self.proc is not None and self.proc.poll() is None) or _sv.group_alive(pgid)

    def _wait_gone(self, pgid: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while True:
            if not self._running(pgid):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)

    def _stop_watchdog(self) -> None:
        if self.watchdog is not None:
            _sv.release_guardian(self.watchdog, timeout_s=2.0)

    @property
    def exit(self) -> ServerExit | None:
        return self._exit

    # ------------------------------------------------------------------ context manager
    def __enter__(self) -> "ServerHandle":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop(grace_s=self.spec.stop_grace_s)

    def __del__(self) -> None:
        try:
            if self._exit is None and self.proc is not None:
                self.stop(grace_s=5.0)
        except Exception:
            pass

    def __repr__(self) -> str:
        return (f"ServerHandle(pid={self.pid}, device={self.device!r}, url={self.root_url!r}, "
                f"stage={self.stage!r})")


def launch(spec: ServerSpec, on_line: OnLine | None = None, progress: Progress | None = None) -> ServerHandle:
    """Take the device lock (waiting if another process holds it; ``progress`` says so),
    start the server in its own session with a watchdog, and return at once.
    ``on_line(line, t_s)`` is called from a background thread for every log line."""
    h = ServerHandle(spec, on_line=on_line)
    h._start(progress=progress)
    return h
