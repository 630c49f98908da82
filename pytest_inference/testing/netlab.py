"""A real network test lab: an NFS server and a "node" in two network namespaces joined by a veth pair.

The storage and node suites make claims such as "the node reads its weights from NFS at ≥ X MB/s",
"the node's NIC MTU is 9000", "the node's TCP buffers allow 16 MiB windows". Mocking those would
test nothing; this module builds the real thing on one Linux machine, as root::

    from pytest_inference.testing.netlab import NetLab, LabUnavailable, LabError

    with NetLab(tuned=True, weights_mib=256, shards=4) as lab:
        subprocess.run(lab.node_prefix() + [sys.executable, "client.py", lab.nfs_url("model")])

* **server**: nfs-ganesha (userspace NFSv4, the kernel here has no NFS client *or* server we could
  use) in the namespace ``pti-srv-<token>``, exporting a private temporary directory that holds
  ``model/`` (``shards`` safetensors files totalling ``weights_mib`` MiB, ``config.json``,
  ``model.safetensors.index.json``) and any ``extra_files``. Its buffers are always tuned: the
  lab measures the *node*.
* **node**: the namespace ``pti-node-<token>``. Clients run there with host mounts and the node's
  network (``lab.node_prefix()`` = ``nsenter --net=/run/netns/pti-node-<token>``): a process
  started with ``ip netns exec`` gets a private mount namespace, ``nsenter --net`` does not.
* **tuned** node: MTU 9000 on both veth ends, ``tcp_rmem``/``tcp_wmem`` max 16 MiB in the node
  namespace, host-wide ``net.core.rmem_max``/``wmem_max`` 16 MiB. **untuned**: MTU 1500, the
  kernel's default ``tcp_rmem``/``tcp_wmem`` (a fresh namespace on this kernel gets a tcp_rmem
  max of 32 MiB, computed from memory; that would pass a "≥ 16 MiB" claim, so the lab writes the
  classic defaults ``4096 131072 6291456`` / ``4096 16384 4194304`` when the fresh max is ≥
  16 MiB), host ``rmem_max``/``wmem_max`` 212992. ``tune()``/``untune()`` switch in place, on
  purpose without reconnecting anything (the MSS of open TCP connections stays what it was:
  the "MSS-lock" effect the node suite looks for).
* ``offloads=False`` (default) turns TSO/GSO/GRO off on both veth ends: with offloads on, veth
  moves 64 KiB super-packets and the MTU makes no throughput difference.

**Host-wide settings.** ``net.core.rmem_max``/``wmem_max`` are read-only inside a namespace and
mirror the host, so a lab changes the host's and restores them at stop. Every process that does
(xdist workers, other users) takes the exclusive lock
``${PYTEST_INFERENCE_LOCK_DIR:-/tmp/pytest-inference-locks}/host-net-sysctl.lock`` (the
:class:`~pytest_inference.server.lock.DeviceLock` primitive) for the lab's lifetime; a waiter logs
who holds it and gives up after ``lock_timeout_s`` (600 s) with :class:`LabError`. Within one
process, several labs may be alive at once **only if they want the same host values** (e.g. two
tuned labs): they share the lock, the first to start records the original values and the last
to stop restores them. A lab wanting different values, or a ``tune()``/``untune()`` that would
change the shared values under another live lab, raises ``LabError("another lab in this process
holds the host network settings; stop it first ...")`` instead of deadlocking on its own lock.

**Nothing leaks.** ``stop()`` (idempotent, also run at exit) kills ganesha and every other
process left in the lab's namespaces, deletes the veth pair and both namespaces, removes the
temporary directory and restores the host values. A *guardian* process started with each lab
does the same when the owning process dies without ``stop()`` (SIGKILLed pytest, a killed xdist
worker): the pattern of :mod:`pytest_inference.server.watchdog` — its own session, SIGINT/SIGHUP
ignored, parent death seen by pidfd, by EOF on its stdin pipe (``done`` on it means a normal
stop), by ``getppid()`` changing, or by ``kill(parent, 0)`` failing. It inherits the host lock's
open file description, so after an owner's death no other lab can take the host settings before
the guardian has restored them. What to tear down is read from a state file
(``<lock dir>/netlab/<token>.json``) that the owner rewrites *before* creating each resource, so
a death at any point leaves nothing the guardian does not know of. ``python -m
pytest_inference.testing.netlab down`` tears down labs whose owner and guardian are both gone (so
does every lab start, under the lock, before it records the host's original values: an orphan's
leaked 16 MiB is never taken for the machine's own setting).

This file is also the guardian's program: it runs as ``python -I -S netlab.py _guardian ...``
(standard library only, ~20 ms to start), so nothing outside the standard library is imported at
module level.

**libnfs client notes** (the Python binding, PyPI ``libnfs``): read in chunks of at most 1 MiB —
one ``read()`` of 2 MiB or more returns a short, corrupted buffer and breaks the session. The
binding crawls when used from several threads of one process: use one process per stream.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import secrets
import select
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_TCP_RMEM",
    "DEFAULT_TCP_WMEM",
    "TUNED_CORE_MAX",
    "TUNED_TCP_RMEM",
    "TUNED_TCP_WMEM",
    "UNTUNED_CORE_MAX",
    "LabError",
    "LabUnavailable",
    "NetLab",
]

log = logging.getLogger("pytest_inference.netlab")

MiB = 1024 * 1024
TUNED_TCP_RMEM = "4096 87380 16777216"
TUNED_TCP_WMEM = "4096 65536 16777216"
DEFAULT_TCP_RMEM = "4096 131072 6291456"   # the kernel's classic defaults (before memory scaling)
DEFAULT_TCP_WMEM = "4096 16384 4194304"
TUNED_CORE_MAX = 16 * MiB                   # net.core.rmem_max / wmem_max, tuned
UNTUNED_CORE_MAX = 212992                   # the kernel default of net.core.rmem_max / wmem_max
HOST_KEYS = ("net.core.rmem_max", "net.core.wmem_max")
TUNED_MTU, UNTUNED_MTU = 9000, 1500
NFS_PORT = 2049


class LabUnavailable(Exception):
    """The lab cannot run on this machine; ``str(exc)`` is a one-line reason (for ``pytest.skip``)."""


class LabError(RuntimeError):
    """The lab could run here but something went wrong (start failed, lock timeout, misuse)."""


# ---------------------------------------------------------------------------------------------
# small helpers, shared by the lab and its guardian (standard library only)

def _lock_dir() -> Path:
    env = os.environ.get("PYTEST_INFERENCE_LOCK_DIR")
    return Path(env) if env else Path("/tmp/pytest-inference-locks")


def _registry_dir() -> Path:
    return _lock_dir() / "netlab"


def _safe_registry(create: bool) -> Path | None:
    """The lab registry, checked before anything in it is believed: root tears down what a record
    names (namespaces, a temp folder, host sysctls), so a record planted by another user in the
    shared lock folder must never be read. The folder is private (0700), a real directory, owned by
    us or root (the same checks as the device lock's folder); None when it does not exist."""
    from pytest_inference.server.lock import DeviceLockUnsafe, _ensure_dir

    reg = _registry_dir()
    if not create and not os.path.lexists(reg):
        return None
    try:
        _ensure_dir(reg, shared=False)
        st = os.lstat(reg)
    except (DeviceLockUnsafe, OSError) as e:
        raise LabError(f"netlab: unsafe lab registry: {e}") from None
    if stat.S_IMODE(st.st_mode) & 0o022:
        raise LabError(f"netlab: unsafe lab registry: {reg} is writable by others "
                       f"(mode {stat.S_IMODE(st.st_mode):o}); remove it")
    return reg


def _read_record(path: Path) -> dict[str, Any] | None:
    """A lab record, only if it is a regular file of ours (or root's), read without following a link."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid not in (os.geteuid(), 0) or st.st_nlink != 1:
            return None
        with os.fdopen(fd, "rb", closefd=False) as fh:
            data = json.loads(fh.read(1 << 20))
    except (OSError, ValueError):
        return None
    finally:
        os.close(fd)
    return data if isinstance(data, dict) else None


def _run(argv: list[str], *, check: bool = True, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """Run a short system command; with ``check`` a failure raises LabError with its stderr."""
    try:
        cp = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise LabError(f"{argv[0]!r} not found") from None
    except subprocess.TimeoutExpired:
        raise LabError(f"{' '.join(argv)} did not finish within {timeout:g} s") from None
    if check and cp.returncode != 0:
        raise LabError(f"`{' '.join(argv)}` failed (exit {cp.returncode}): "
                       f"{(cp.stderr or cp.stdout).strip()[-500:]}")
    return cp


def _sysctl_path(key: str) -> str:
    return "/proc/sys/" + key.replace(".", "/")


def _read_host_sysctl(key: str) -> str:
    with open(_sysctl_path(key)) as f:
        return " ".join(f.read().split())


def _write_host_sysctl(key: str, value: str | int) -> None:
    value = str(value)
    try:
        if _read_host_sysctl(key) == " ".join(value.split()):
            return
    except OSError:
        pass
    with open(_sysctl_path(key), "w") as f:
        f.write(value)


def _proc_start_time(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat (start time in clock ticks): tells a pid from a reused one."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
        rest = data[data.rfind(b")") + 2:].split()
        if rest[0] in (b"Z", b"X", b"x"):
            return None
        return int(rest[19])
    except (OSError, IndexError, ValueError):
        return None


def _same_process(pid: int | None, start_time: int | None) -> bool:
    return bool(pid) and start_time is not None and _proc_start_time(pid) == start_time  # type: ignore[arg-type]


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _proc_start_time(pid) is not None  # a zombie is not alive


def _netns_exists(name: str) -> bool:
    return os.path.exists(f"/run/netns/{name}")


def _netns_pids(name: str) -> list[int]:
    if not _netns_exists(name):
        return []
    cp = _run(["ip", "netns", "pids", name], check=False, timeout=10)
    return [int(x) for x in cp.stdout.split() if x.isdigit() and int(x) != os.getpid()]


def _kill_wait(pids: Iterable[int], sig: int, timeout_s: float) -> list[int]:
    """Send ``sig`` to each pid and wait until all are gone; returns the survivors."""
    pids = [p for p in pids if _pid_alive(p)]
    for p in pids:
        try:
            os.kill(p, sig)
        except OSError:
            pass
    deadline = time.monotonic() + timeout_s
    while True:
        pids = [p for p in pids if _pid_alive(p)]
        if not pids or time.monotonic() >= deadline:
            return pids
        time.sleep(0.02)


def _write_json_atomic(path: Path, data: Mapping[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def _teardown(state: Mapping[str, Any], *, restore_host: bool, grace_s: float = 5.0) -> list[str]:
    """Remove everything ``state`` names, in an order that works from any partial start:
    ganesha (SIGTERM: it exits cleanly), every other process left in the lab's namespaces
    (SIGKILL: a client a test left behind keeps a namespace, and its veth, alive), the veth pair,
    the namespaces, the temporary directory, and, with ``restore_host``, the host sysctls.
    Idempotent: what is already gone is skipped. Returns problems (empty when all went)."""
    problems: list[str] = []
    gpid, gstart = state.get("ganesha_pid"), state.get("ganesha_start")
    if _same_process(gpid, gstart):
        left = _kill_wait([gpid], signal.SIGTERM, grace_s)
        if left:
            _kill_wait(left, signal.SIGKILL, 5.0)
    for ns in (state.get("server_netns"), state.get("node_netns")):
        if ns:
            pids = _netns_pids(ns)
            if pids:
                left = _kill_wait(pids, signal.SIGKILL, 5.0)
                if left:
                    problems.append(f"processes {left} in namespace {ns} survive SIGKILL")
    ns, dev = state.get("server_netns"), state.get("server_device")
    if ns and dev and _netns_exists(ns):
        _run(["ip", "-n", ns, "link", "del", dev], check=False)  # deletes the peer too
    for ns in (state.get("server_netns"), state.get("node_netns")):
        if ns and _netns_exists(ns):
            cp = _run(["ip", "netns", "del", ns], check=False)
            if cp.returncode != 0 and _netns_exists(ns):
                problems.append(f"ip netns del {ns}: {cp.stderr.strip()}")
    tmp = state.get("tmpdir")
    if tmp:
        shutil.rmtree(tmp, ignore_errors=True)
        if os.path.exists(tmp):
            problems.append(f"could not remove {tmp}")
    if restore_host:
        for key, value in (state.get("host_restore") or {}).items():
            try:
                _write_host_sysctl(key, value)
            except OSError as e:
                problems.append(f"could not restore {key}={value}: {e}")
    return problems


def _reap_orphans() -> list[str]:
    """Tear down labs whose owner *and* guardian are gone (a guardian SIGKILLed too, the OOM
    killer) and put back the host values they left changed. Call only while holding the host
    lock: every lab start does, before it records the host's "original" values, so a leaked
    16 MiB is never mistaken for the machine's own setting. Newest first, so that with several
    orphans the oldest one's originals are what stays. Returns one line per lab torn down."""
    reg = _safe_registry(create=False)
    orphans: list[tuple[float, Path, dict[str, Any]]] = []
    for p in reg.glob("*.json") if reg is not None else []:
        state = _read_record(p)
        if state is None:
            continue
        if _same_process(state.get("owner_pid"), state.get("owner_start")):
            continue
        if _same_process(state.get("guardian_pid"), state.get("guardian_start")):
            continue  # its guardian is on it (and holds the lock: we could not be here, unless done)
        orphans.append((float(state.get("started_at") or 0), p, state))
    out = []
    for _, p, state in sorted(orphans, key=lambda x: x[0], reverse=True):
        problems = _teardown(state, restore_host=True)
        try:
            p.unlink()
        except OSError:
            pass
        restored = ", ".join(f"{k}={v}" for k, v in (state.get("host_restore") or {}).items())
        out.append(f"lab {state.get('token')}: torn down (owner {state.get('owner_pid')} and its guardian gone"
                   + (f"; host restored to {restored}" if restored else "")
                   + (f"; {'; '.join(problems)}" if problems else "") + ")")
    return out


# ---------------------------------------------------------------------------------------------
# the guardian (runs as `python -I -S netlab.py _guardian --parent PID --state FILE [--lock-fd N]`)

def _glog(msg: str) -> None:
    try:
        sys.stderr.write(f"[pytest-inference netlab guardian {os.getpid()}] {msg}\n")
        sys.stderr.flush()
    except Exception:
        pass


def _parent_gone(parent: int, ppid0: int) -> bool:
    if ppid0 == parent and os.getppid() != parent:
        return True
    return not _pid_alive(parent)


def _guardian_main(argv: list[str]) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="netlab.py _guardian")
    p.add_argument("--parent", type=int, required=True)
    p.add_argument("--state", required=True)
    p.add_argument("--lock-fd", type=int, default=None, help="inherited host-lock descriptor, held until exit")
    p.add_argument("--owner-file", default=None, help="the host lock's owner record, removed if it names the parent")
    p.add_argument("--poll", type=float, default=0.25)
    args = p.parse_args(argv)
    for sig in (signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    ppid0 = os.getppid()
    poller = select.poll()
    pidfd = None
    try:
        pidfd = os.pidfd_open(args.parent)  # type: ignore[attr-defined]
        poller.register(pidfd, select.POLLIN)
    except (AttributeError, OSError):
        pidfd = None
    poller.register(0, select.POLLIN)
    stdin_open = True
    while True:
        gone = False
        for fd, _ in poller.poll(int(args.poll * 1000)):
            if fd == pidfd:
                gone = True
            elif fd == 0:
                try:
                    data = os.read(0, 64)
                except OSError:
                    data = b""
                if b"done" in data:
                    return 0  # the owner stopped the lab itself
                if not data and stdin_open:
                    gone = True  # EOF without "done": the owner died
                    poller.unregister(0)
                    stdin_open = False
        if gone or _parent_gone(args.parent, ppid0):
            break
    try:
        state = json.loads(Path(args.state).read_text())
    except (OSError, ValueError):
        return 0  # no state: the owner finished its stop just before dying
    _glog(f"owner {args.parent} is gone; tearing down lab {state.get('token')} "
          f"({state.get('server_netns')}, {state.get('node_netns')}, {state.get('tmpdir')})")
    problems = _teardown(state, restore_host=True)
    for path in (args.state, args.owner_file):
        try:
            if path == args.owner_file and json.loads(Path(path).read_text()).get("pid") != args.parent:
                continue  # the lock's owner record names someone else: not ours to remove
            os.unlink(path)
        except (OSError, ValueError, TypeError, AttributeError):
            pass
    for pr in problems:
        _glog(pr)
    # the inherited host lock is released when this process exits
    return 1 if problems else 0


# ---------------------------------------------------------------------------------------------
# host-wide settings: one holder per process, shared by the labs of the process

class _HostNet:
    """The host lock and the original ``rmem_max``/``wmem_max`` values, for this process.

    Labs of one process share it when they want the same values (refcounted); the first takes
    the cross-process lock and records the originals, the last restores them and unlocks."""

    def __init__(self) -> None:
        self.mu = threading.RLock()
        self.pid = os.getpid()
        self.lock: Any = None  # a DeviceLock
        self.originals: dict[str, str] = {}
        self.want: dict[str, str] = {}
        self.labs: list[NetLab] = []

    def _check_fork(self) -> None:
        if self.pid != os.getpid():  # a forked child does not own the parent's labs
            self.__init__()  # type: ignore[misc]

    def conflict(self, lab: NetLab, want: Mapping[str, str]) -> str | None:
        others = [x for x in self.labs if x is not lab]
        if others and dict(want) != self.want:
            have = ", ".join(f"{k}={v}" for k, v in self.want.items())
            new = ", ".join(f"{k}={v}" for k, v in want.items())
            return (f"another lab in this process holds the host network settings; stop it first "
                    f"(lab {others[0].token} has {have}; this one wants {new})")
        return None

    def acquire(self, lab: NetLab, want: Mapping[str, str], timeout_s: float,
                progress: Callable[[str, float], None] | None) -> None:
        with self.mu:
            self._check_fork()
            err = self.conflict(lab, want)
            if err:
                raise LabError(err)
            if self.labs:
                self.labs.append(lab)
                return
            from pytest_inference.server.lock import DeviceLock, DeviceLockError

            lk = DeviceLock("host-net-sysctl", _lock_dir())

            def waiting(text: str, waited: float) -> None:
                msg = (f"netlab {lab.token}: waiting {waited:.0f} s for the host network settings "
                       f"({text.replace('waiting for device host-net-sysctl, ', '')}; lock {lk.path})")
                log.warning(msg)
                if progress is not None:
                    progress(msg, waited)

            try:
                lk.acquire(timeout_s=timeout_s, progress=waiting, progress_every_s=10.0)
            except DeviceLockError as e:  # a timeout, or an unsafe lock folder/file: one line either way
                raise LabError(f"netlab: the host network settings lock: {e}") from None
            for line in _reap_orphans():
                log.warning("netlab: %s", line)
            try:
                self.originals = {k: _read_host_sysctl(k) for k in HOST_KEYS}
            except OSError as e:
                lk.release()
                raise LabError(f"cannot read the host network settings: {e}") from None
            lk.write_owner(what="pytest-inference netlab (net.core.rmem_max/wmem_max)", labs=[lab.token],
                           originals=self.originals, want=dict(want))
            self.lock, self.want, self.labs = lk, dict(want), [lab]

    @property
    def lock_fd(self) -> int | None:
        return self.lock.fd if self.lock is not None else None

    def apply(self, lab: NetLab, want: Mapping[str, str]) -> None:
        with self.mu:
            if lab not in self.labs:
                raise LabError("this lab does not hold the host network settings")
            err = self.conflict(lab, want)
            if err:
                raise LabError(err)
            self.want = dict(want)
            for k, v in want.items():
                try:
                    _write_host_sysctl(k, v)
                except OSError as e:
                    raise LabError(f"cannot set host {k}={v}: {e}") from None

    def release(self, lab: NetLab, before_unlock: Callable[[], None]) -> list[str]:
        """Drop ``lab``; if it was the last, restore the originals, then call ``before_unlock``
        (the lab marks its state file "host restored" so its guardian will not write them
        again after another process has taken the lock), then unlock."""
        problems: list[str] = []
        with self.mu:
            if lab not in self.labs:
                return problems
            self.labs.remove(lab)
            if self.labs:
                before_unlock()
                return problems
            for k, v in self.originals.items():
                try:
                    _write_host_sysctl(k, v)
                except OSError as e:
                    problems.append(f"could not restore host {k}={v}: {e}")
            before_unlock()
            lk, self.lock = self.lock, None
            if lk is not None:
                lk.release()
            self.want = {}
        return problems


_HOST = _HostNet()
_live: list[NetLab] = []
_live_mu = threading.Lock()


def _stop_all_at_exit() -> None:
    with _live_mu:
        labs = list(_live)
    for lab in reversed(labs):
        try:
            lab.stop()
        except Exception:
            pass


atexit.register(_stop_all_at_exit)


# ---------------------------------------------------------------------------------------------
# availability

_available: tuple[bool, str] | None = None
_available_mu = threading.Lock()


def _ganesha_fsal_vfs_present() -> bool:
    import glob

    pats = ["/usr/lib/*/ganesha/libfsalvfs*", "/usr/lib/ganesha/libfsalvfs*", "/usr/lib64/ganesha/libfsalvfs*",
            "/usr/local/lib*/ganesha/libfsalvfs*"]
    return any(glob.glob(p) for p in pats)


def _check_available(ganesha: str, offloads: bool) -> None:
    if not sys.platform.startswith("linux"):
        raise LabUnavailable("the network lab needs Linux (network namespaces)")
    if os.geteuid() != 0:
        raise LabUnavailable("the network lab needs root (network namespaces, veth, host sysctls)")
    for tool, pkg in (("ip", "iproute2"), ("nsenter", "util-linux")) + (() if offloads else (("ethtool", "ethtool"),)):
        if shutil.which(tool) is None:
            raise LabUnavailable(f"{tool} not found (Debian package: {pkg})")
    if shutil.which(ganesha) is None:
        raise LabUnavailable(f"{ganesha} not found (install the Debian packages nfs-ganesha nfs-ganesha-vfs: "
                             "as root, bash scripts/install-nfs-lab.sh)")
    if not _ganesha_fsal_vfs_present():
        raise LabUnavailable("nfs-ganesha's VFS backend (libfsalvfs) not found (Debian package: nfs-ganesha-vfs)")
    try:
        import libnfs.libnfs  # noqa: F401 - the client the lab's reads use, in this Python
    except ImportError:
        from ..storage.nfs_reader import binding_missing

        raise LabUnavailable(binding_missing()) from None
    if not os.access(_sysctl_path("net.core.rmem_max"), os.W_OK):
        raise LabUnavailable("net.core.rmem_max is not writable here (not the host's network namespace?)")
    global _available
    with _available_mu:
        if _available is None:
            probe = f"pti-probe-{os.getpid()}-{secrets.token_hex(2)}"
            try:
                cp = _run(["ip", "netns", "add", probe], check=False, timeout=10)
                if cp.returncode != 0:
                    _available = (False, f"`ip netns add` does not work here: {cp.stderr.strip()[:200]}")
                else:
                    cp = _run(["ip", "netns", "exec", probe, "true"], check=False, timeout=10)
                    _available = ((True, "") if cp.returncode == 0 else
                                  (False, f"`ip netns exec` does not work here: {cp.stderr.strip()[:200]}"))
            except LabError as e:
                _available = (False, f"ip netns unusable: {e}")
            finally:
                if _netns_exists(probe):
                    _run(["ip", "netns", "del", probe], check=False)
        ok, why = _available
    if not ok:
        raise LabUnavailable(why)


# ---------------------------------------------------------------------------------------------
# the model files

class _RandomBytes:
    """Incompressible filler, fast: slices of a 32 MiB ``os.urandom`` pool at pseudo-random
    offsets (``os.urandom`` alone makes ~350 MB/s here, which made a 2 GiB lab take 6 s to
    build). Nothing in the lab depends on the bytes being globally unique."""

    def __init__(self, pool_size: int) -> None:
        self.pool = memoryview(os.urandom(pool_size))
        self.k = 0

    def take(self, n: int) -> bytes | memoryview:
        if n >= len(self.pool):
            return os.urandom(n)
        self.k += 1
        off = (self.k * 2_654_435_761) % (len(self.pool) - n + 1)
        return self.pool[off:off + n]


def _safetensors_shard(path: Path, size: int, tensor: str, rnd: _RandomBytes, chunk: int = 8 * MiB) -> None:
    """A valid safetensors file of exactly ``size`` bytes: one U8 tensor of random bytes.

    Format: 8-byte little-endian header length, a JSON header (padded with spaces to a multiple
    of 8), the tensor data. Tiny sizes that cannot hold a header get plain random bytes."""
    header = b""
    for _ in range(4):  # the data length's digit count depends on the header length: iterate
        n = size - 8 - len(header)
        h = json.dumps({"__metadata__": {"format": "pt", "generator": "pytest-inference netlab"},
                        tensor: {"dtype": "U8", "shape": [max(n, 0)], "data_offsets": [0, max(n, 0)]}},
                       separators=(",", ":")).encode()
        h += b" " * (-len(h) % 8)
        stable, header = len(h) == len(header), h
        if stable:
            break
    n = size - 8 - len(header)
    with open(path, "wb") as f:
        if n < 0:
            f.write(os.urandom(size))
            return
        f.write(len(header).to_bytes(8, "little") + header)
        while n > 0:
            k = min(chunk, n)
            f.write(rnd.take(k))
            n -= k


def _write_model(model: Path, weights_mib: float, shards: int) -> list[str]:
    model.mkdir(parents=True, exist_ok=True)
    total = int(weights_mib * MiB)
    base, extra = divmod(total, shards)
    names, weight_map = [], {}
    rnd = _RandomBytes(min(32 * MiB, max(total, 1)))
    for i in range(shards):
        name = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        tensor = f"model.layers.{i}.weight"
        _safetensors_shard(model / name, base + (extra if i == shards - 1 else 0), tensor, rnd)
        names.append(name)
        weight_map[tensor] = name
    (model / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {"total_size": total}, "weight_map": weight_map}, indent=1))
    (model / "config.json").write_text(json.dumps({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 128,
        "intermediate_size": 256, "num_hidden_layers": shards, "num_attention_heads": 4,
        "num_key_value_heads": 4, "vocab_size": 2048, "torch_dtype": "uint8",
        "_netlab": {"weights_bytes": total, "shards": shards}}, indent=1))
    return names


# ---------------------------------------------------------------------------------------------
# the lab

_READY_PROBE = r"""
import socket, sys, time
addr, port, deadline = sys.argv[1], int(sys.argv[2]), time.monotonic() + float(sys.argv[3])
while True:
    try:
        socket.create_connection((addr, port), timeout=0.5).close()
        sys.exit(0)
    except OSError as e:
        if time.monotonic() >= deadline:
            print(f"{addr}:{port}: {e}", file=sys.stderr)
            sys.exit(1)
        time.sleep(0.03)
"""


class NetLab:
    """An NFS server and a tuned or untuned node, in two network namespaces; see the module doc.

    ``weights_mib``/``shards``: the size and number of the safetensors files in ``model/``.
    ``extra_files``: ``{"path/in/export": source file or directory}``, copied in.
    ``offloads``: leave the veth offloads (TSO/GSO/GRO) on; off by default, so MTU matters.
    ``lock_timeout_s``: how long to wait for another process's lab to give back the host
    settings. ``progress(text, waited_s)``: called while waiting (also logged as a warning on
    the ``pytest_inference.netlab`` logger), e.g. to print to pytest's terminal.
    """

    ganesha_binary = "ganesha.nfsd"
    model_dir = "model"
    ready_timeout_s = 15.0

    def __init__(self, tuned: bool = True, weights_mib: float = 256, shards: int = 4,
                 extra_files: Mapping[str, str | os.PathLike[str]] | None = None, offloads: bool = False,
                 *, lock_timeout_s: float = 600.0, progress: Callable[[str, float], None] | None = None,
                 nfs4_minor_versions: Sequence[int] = (0, 1, 2)) -> None:
        if shards < 1:
            raise ValueError("shards must be ≥ 1")
        if weights_mib <= 0:
            raise ValueError("weights_mib must be > 0")
        for rel in (extra_files or {}):
            if os.path.isabs(rel) or ".." in Path(rel).parts or not str(rel).strip("/"):
                raise ValueError(f"extra_files key {rel!r} must be a relative path inside the export")
        self._want_tuned = bool(tuned)
        self.tuned: bool = bool(tuned)
        self.weights_mib, self.shards = weights_mib, shards
        self.extra_files = {str(k): Path(v) for k, v in (extra_files or {}).items()}
        self.offloads = offloads
        self.nfs4_minor_versions = tuple(int(m) for m in nfs4_minor_versions)
        if not self.nfs4_minor_versions or not set(self.nfs4_minor_versions) <= {0, 1, 2}:
            raise ValueError("nfs4_minor_versions: a non-empty subset of 0, 1, 2")
        self.lock_timeout_s, self.progress = lock_timeout_s, progress
        self.token = secrets.token_hex(3)
        self.server_netns = self.node_netns = ""
        self.server_device = self.node_device = ""
        self.server_addr = self.node_addr = ""
        self.subnet = ""
        self.tmpdir: Path | None = None
        self.export_dir: Path | None = None  # type: ignore[assignment]
        self.weight_files: list[str] = []  # paths relative to the export
        self.mtu: int | None = None
        self.ganesha: subprocess.Popen[bytes] | None = None
        self.ganesha_log: Path | None = None
        self.guardian: subprocess.Popen[bytes] | None = None
        self.state_path: Path | None = None
        self.start_s: float | None = None  # seconds start() took
        self._state: dict[str, Any] = {}
        self._ns_defaults: dict[str, str] = {}
        self._started = self._stopped = False
        self._holds_host = False
        self.host_originals: dict[str, str] = {}  # host values before the first lab of this process

    # ------------------------------------------------------------------ availability
    @classmethod
    def check_available(cls, offloads: bool = False) -> None:
        """Raise :class:`LabUnavailable` (one-line reason) when the lab cannot run here."""
        _check_available(cls.ganesha_binary, offloads)

    # ------------------------------------------------------------------ properties
    @property
    def netns_path(self) -> str:
        return f"/run/netns/{self.node_netns}"

    def node_prefix(self) -> list[str]:
        """argv prefix running a command in the node's network with the host's mounts."""
        return ["nsenter", f"--net={self.netns_path}"]

    def server_prefix(self) -> list[str]:
        return ["nsenter", f"--net=/run/netns/{self.server_netns}"]

    def node_run(self, argv: list[str], **kw: Any) -> subprocess.CompletedProcess[Any]:
        """``subprocess.run`` of ``argv`` in the node's network (keywords passed through)."""
        return subprocess.run(self.node_prefix() + list(argv), **kw)

    def nfs_url(self, rel: str = "") -> str:
        """libnfs URL of ``rel`` (a path relative to the export), NFSv4."""
        rel = str(rel).strip("/")
        return f"nfs://{self.server_addr}/export{'/' + rel if rel else ''}?version=4"

    @property
    def host_settings(self) -> dict[str, str]:
        """The host values this lab wants now (``net.core.rmem_max``/``wmem_max``)."""
        v = str(TUNED_CORE_MAX if self.tuned else UNTUNED_CORE_MAX)
        return {k: v for k in HOST_KEYS}

    def __repr__(self) -> str:
        st = "stopped" if self._stopped else "running" if self._started else "new"
        return (f"NetLab({self.token}, {'tuned' if self.tuned else 'untuned'}, {st}, "
                f"server {self.server_addr or '?'}, node {self.node_addr or '?'})")

    # ------------------------------------------------------------------ state file
    def _save_state(self, **changes: Any) -> None:
        self._state.update(changes)
        if self.state_path is not None:
            _write_json_atomic(self.state_path, self._state)

    def _pick_names(self) -> None:
        """A token whose /24 and names collide with no live lab's (names must be unique host-wide:
        namespaces are; veth names too, as they are created before being moved on older kernels)."""
        reg = _safe_registry(create=False)
        used: set[str] = set()
        try:
            for p in reg.glob("*.json") if reg is not None else []:
                record = _read_record(p)
                if record is not None:
                    used.add(str(record.get("subnet", "")))
        except OSError:
            pass
        for _ in range(64):
            n = int(self.token, 16)
            subnet = f"10.{100 + (n >> 8) % 150}.{n % 256}"
            names = [f"pti-srv-{self.token}", f"pti-node-{self.token}"]
            if (subnet not in used and not any(_netns_exists(x) for x in names)
                    and not os.path.exists(f"/sys/class/net/ptis{self.token}")):
                break
            self.token = secrets.token_hex(3)
        self.subnet = subnet
        self.server_netns, self.node_netns = f"pti-srv-{self.token}", f"pti-node-{self.token}"
        self.server_device, self.node_device = f"ptis{self.token}", f"ptin{self.token}"  # 10 chars ≤ 15
        self.server_addr, self.node_addr = f"{subnet}.1", f"{subnet}.2"

    # ------------------------------------------------------------------ start
    def start(self) -> NetLab:
        """Build the lab; returns self. Raises LabUnavailable (cannot run here) or LabError."""
        if self._started:
            raise LabError("this lab was already started (make a new NetLab)")
        self.check_available(self.offloads)
        self._started = True
        t0 = time.monotonic()
        with _live_mu:
            _live.append(self)
        try:
            self._start(t0)
        except BaseException as e:
            problems = self._stop()
            if isinstance(e, (LabError, LabUnavailable)) and problems:
                raise LabError(f"{e} (and cleanup: {'; '.join(problems)})") from e
            raise
        self.start_s = time.monotonic() - t0
        log.info("netlab %s up in %.2f s: server %s (%s), node %s (%s), %s", self.token, self.start_s,
                 self.server_addr, self.server_netns, self.node_addr, self.node_netns,
                 "tuned" if self.tuned else "untuned")
        return self

    def _start(self, t0: float) -> None:
        # 1. host lock first: a lab that cannot get the host settings builds nothing
        _HOST.acquire(self, self.host_settings, self.lock_timeout_s, self.progress)
        self._holds_host = True
        self.host_originals = dict(_HOST.originals)
        self._pick_names()  # after the lock wait, which may be long: names free *now*
        # 2. private directory and the state file, then the guardian, before any system change
        self.tmpdir = Path(tempfile.mkdtemp(prefix=f"pti-netlab-{self.token}-"))
        reg = _safe_registry(create=True)
        self.state_path = reg / f"{self.token}.json"
        self._save_state(token=self.token, owner_pid=os.getpid(), owner_start=_proc_start_time(os.getpid()),
                         subnet=self.subnet, server_netns=self.server_netns, node_netns=self.node_netns,
                         server_device=self.server_device, node_device=self.node_device,
                         tmpdir=str(self.tmpdir), host_restore=dict(_HOST.originals),
                         since=time.strftime("%Y-%m-%dT%H:%M:%S%z"), started_at=time.time())
        self._start_guardian()
        # 3. export contents
        self.export_dir = self.tmpdir / "export"
        model = self.export_dir / self.model_dir
        names = _write_model(model, self.weights_mib, self.shards)
        self.weight_files = [f"{self.model_dir}/{n}" for n in names]
        for rel, src in self.extra_files.items():
            dst = self.export_dir / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            if src.is_dir():
                shutil.copytree(src, dst, dirs_exist_ok=True)
            else:
                shutil.copyfile(src, dst)
        # 4. network
        keys = ["server_netns", "node_netns"]
        for i, key in enumerate(keys):
            cp = _run(["ip", "netns", "add", self._state[key]], check=False)
            if cp.returncode != 0:  # not created: not ours to delete (it may be another lab's)
                self._save_state(**{k: None for k in keys[i:]})
                raise LabError(f"ip netns add {getattr(self, key)} failed: {cp.stderr.strip()}")
        _run(["ip", "link", "add", self.server_device, "netns", self.server_netns, "type", "veth",
              "peer", "name", self.node_device, "netns", self.node_netns])
        for ns, dev, addr in ((self.server_netns, self.server_device, self.server_addr),
                              (self.node_netns, self.node_device, self.node_addr)):
            _run(["ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", dev])
            _run(["ip", "-n", ns, "link", "set", "lo", "up"])
            _run(["ip", "-n", ns, "link", "set", dev, "up"])
            if not self.offloads:
                _run(["ip", "netns", "exec", ns, "ethtool", "-K", dev, "tso", "off", "gso", "off", "gro", "off"])
        cur = _run(["ip", "netns", "exec", self.node_netns, "cat", "/proc/sys/net/ipv4/tcp_rmem",
                    "/proc/sys/net/ipv4/tcp_wmem"]).stdout.splitlines()
        fresh = {"net.ipv4.tcp_rmem": " ".join(cur[0].split()), "net.ipv4.tcp_wmem": " ".join(cur[1].split())}
        self._ns_defaults = {
            k: (v if int(v.split()[-1]) < 16 * MiB else default)
            for (k, v), default in zip(fresh.items(), (DEFAULT_TCP_RMEM, DEFAULT_TCP_WMEM))}
        self._ns_sysctl(self.server_netns, {"net.ipv4.tcp_rmem": TUNED_TCP_RMEM, "net.ipv4.tcp_wmem": TUNED_TCP_WMEM})
        self._apply_tuning(self._want_tuned)
        # 5. the server
        self._start_ganesha()

    def _start_guardian(self) -> None:
        assert self.state_path is not None
        cmd = [sys.executable, "-I", "-S", os.path.abspath(__file__), "_guardian",
               "--parent", str(os.getpid()), "--state", str(self.state_path)]
        fds: tuple[int, ...] = ()
        fd = _HOST.lock_fd
        if fd is not None:
            cmd += ["--lock-fd", str(fd), "--owner-file", str(_HOST.lock.owner_path)]
            fds = (fd,)
        try:
            self.guardian = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                             start_new_session=True, close_fds=True, pass_fds=fds)
        except OSError as e:
            raise LabError(f"cannot start the lab's guardian process: {e}") from None
        self._save_state(guardian_pid=self.guardian.pid, guardian_start=_proc_start_time(self.guardian.pid))

    def _ns_sysctl(self, ns: str, values: Mapping[str, str]) -> None:
        _run(["ip", "netns", "exec", ns, "sysctl", "-q", "-w"] + [f"{k}={v}" for k, v in values.items()])

    def _write_conf(self) -> Path:
        assert self.tmpdir is not None and self.export_dir is not None
        rec = self.tmpdir / "recovery"
        rec.mkdir(exist_ok=True)
        conf = self.tmpdir / "ganesha.conf"
        conf.write_text(f"""\
# pytest-inference netlab {self.token}
NFS_CORE_PARAM {{ Bind_addr = {self.server_addr}; NFS_Port = {NFS_PORT}; Protocols = 4;
                  Enable_NLM = false; Enable_RQUOTA = false; }}
NFSv4 {{ Graceless = true; RecoveryBackend = fs; RecoveryRoot = "{rec}"; Only_Numeric_Owners = true;
         Minor_Versions = {", ".join(str(m) for m in self.nfs4_minor_versions)}; }}
NFS_KRB5 {{ Active_krb5 = false; }}
EXPORT {{
    Export_Id = 1; Path = "{self.export_dir}"; Pseudo = /export; Protocols = 4; Transports = TCP;
    Access_Type = RW; Squash = No_Root_Squash; SecType = sys;
    FSAL {{ Name = VFS; }}
}}
""")
        return conf

    def _log_tail(self, n: int = 15) -> str:
        lines: list[str] = []
        for p in (self.ganesha_log, self.tmpdir / "ganesha.out" if self.tmpdir else None):
            try:
                if p is not None:
                    lines += [x for x in p.read_text(errors="replace").splitlines() if x.strip()]
            except OSError:
                pass
        return "\n".join(lines[-n:]) or "(empty log)"

    def _start_ganesha(self) -> None:
        assert self.tmpdir is not None
        conf = self._write_conf()
        self.ganesha_log = self.tmpdir / "ganesha.log"
        pidfile = self.tmpdir / "ganesha.pid"
        argv = ["ip", "netns", "exec", self.server_netns, self.ganesha_binary, "-F", "-f", str(conf),
                "-L", str(self.ganesha_log), "-p", str(pidfile)]
        with open(self.tmpdir / "ganesha.out", "wb") as out:
            try:
                self.ganesha = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                                start_new_session=True, close_fds=True)
            except OSError as e:
                raise LabError(f"cannot start ganesha: {e}") from None
        # `ip netns exec` execs in place: this pid is ganesha's
        self._save_state(ganesha_pid=self.ganesha.pid, ganesha_start=_proc_start_time(self.ganesha.pid))
        probe = subprocess.Popen(self.node_prefix() + [sys.executable, "-I", "-S", "-c", _READY_PROBE,
                                                       self.server_addr, str(NFS_PORT), str(self.ready_timeout_s)],
                                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + self.ready_timeout_s + 5
        try:
            while True:
                rc = probe.poll()
                if rc is not None:
                    break
                if self.ganesha.poll() is not None:
                    raise LabError(f"ganesha exited with {self.ganesha.returncode} during start; its log:\n"
                                   + self._log_tail())
                if time.monotonic() > deadline:
                    raise LabError("the readiness probe hung")
                time.sleep(0.02)
        finally:
            if probe.poll() is None:
                probe.kill()
            probe.wait()
        if rc != 0:
            err = probe.stderr.read().decode(errors="replace").strip() if probe.stderr else ""
            raise LabError(f"ganesha did not answer on {self.server_addr}:{NFS_PORT} from the node within "
                           f"{self.ready_timeout_s:g} s ({err}); its log:\n" + self._log_tail())
        if probe.stderr:
            probe.stderr.close()
        # Listening is not serving: with a bad configuration ganesha listens, then gives up a few
        # ms later. Ready = its "NFS SERVER INITIALIZED" log line (or, should a version not
        # write it, still running 2 s after it first answered).
        answered = time.monotonic()
        while True:
            if self.ganesha.poll() is not None:
                raise LabError(f"ganesha exited with {self.ganesha.returncode} during start; its log:\n"
                               + self._log_tail())
            try:
                if b"NFS SERVER INITIALIZED" in self.ganesha_log.read_bytes():
                    return
            except OSError:
                pass
            if time.monotonic() - answered > 2.0:
                log.debug("netlab %s: no 'NFS SERVER INITIALIZED' in ganesha's log; it has been up 2 s", self.token)
                return
            time.sleep(0.02)

    # ------------------------------------------------------------------ tuning
    def set_mtu(self, mtu: int) -> None:
        """Set the MTU of both veth ends (open TCP connections keep their MSS)."""
        for ns, dev in ((self.server_netns, self.server_device), (self.node_netns, self.node_device)):
            _run(["ip", "-n", ns, "link", "set", "dev", dev, "mtu", str(int(mtu))])
        self.mtu = int(mtu)

    def _apply_tuning(self, tuned: bool) -> None:
        want = {k: str(TUNED_CORE_MAX if tuned else UNTUNED_CORE_MAX) for k in HOST_KEYS}
        err = _HOST.conflict(self, want)
        if err:
            raise LabError(err)
        self.set_mtu(TUNED_MTU if tuned else UNTUNED_MTU)
        self._ns_sysctl(self.node_netns, {"net.ipv4.tcp_rmem": TUNED_TCP_RMEM, "net.ipv4.tcp_wmem": TUNED_TCP_WMEM}
                        if tuned else self._ns_defaults)
        _HOST.apply(self, want)
        self.tuned = tuned
        self._save_state(tuned=tuned)

    def _require_running(self) -> None:
        if not self._started or self._stopped:
            raise LabError(f"{self!r} is not running")

    def tune(self) -> None:
        """MTU 9000, 16 MiB TCP buffers in the node, host rmem_max/wmem_max 16 MiB; in place."""
        self._require_running()
        self._apply_tuning(True)

    def untune(self) -> None:
        """MTU 1500, default TCP buffers in the node, host rmem_max/wmem_max 212992; in place."""
        self._require_running()
        self._apply_tuning(False)

    # ------------------------------------------------------------------ stop
    def stop(self) -> None:
        """Tear everything down and restore the host; idempotent. Raises LabError if something
        could not be removed (after trying everything)."""
        if not self._started or self._stopped:
            return
        problems = self._stop()
        if problems:
            raise LabError(f"netlab {self.token} stop: " + "; ".join(problems))

    def _stop(self) -> list[str]:
        if self._stopped:
            return []
        self._stopped = True
        problems = _teardown(self._state, restore_host=False)
        if self.ganesha is not None:
            try:
                self.ganesha.wait(timeout=5)
            except subprocess.TimeoutExpired:
                problems.append(f"ganesha {self.ganesha.pid} did not exit")
        if self._holds_host:
            def mark() -> None:
                if self.state_path is not None and self.state_path.exists():
                    self._save_state(host_restore={})
            problems += _HOST.release(self, mark)
            self._holds_host = False
        if self.guardian is not None:
            from pytest_inference.server.watchdog import release_watchdog

            release_watchdog(self.guardian, timeout_s=5.0)
        if self.state_path is not None:
            try:
                self.state_path.unlink()
            except FileNotFoundError:
                pass
        with _live_mu:
            if self in _live:
                _live.remove(self)
        return problems

    def __enter__(self) -> NetLab:
        if not self._started:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ info
    def info(self) -> dict[str, Any]:
        return {"token": self.token, "tuned": self.tuned, "mtu": self.mtu, "server_addr": self.server_addr,
                "node_addr": self.node_addr, "server_netns": self.server_netns, "node_netns": self.node_netns,
                "server_device": self.server_device, "node_device": self.node_device,
                "netns_path": self.netns_path, "export_dir": str(self.export_dir), "model_dir": self.model_dir,
                "weight_files": self.weight_files, "nfs_url": self.nfs_url(),
                "tmpdir": str(self.tmpdir), "state_path": str(self.state_path),
                "ganesha_pid": self.ganesha.pid if self.ganesha else None,
                "guardian_pid": self.guardian.pid if self.guardian else None, "start_s": self.start_s,
                "host_originals": self.host_originals}


# ---------------------------------------------------------------------------------------------
# command line

def _cli_down() -> int:
    """Tear down orphaned labs (owner and guardian both gone), under the host lock."""
    from pytest_inference.server.lock import DeviceLock, DeviceLockError

    lk = DeviceLock("host-net-sysctl", _lock_dir())
    try:
        lk.acquire(timeout_s=120, progress=lambda text, waited: print(f"{text} ({waited:.0f} s)", file=sys.stderr))
    except DeviceLockError as e:
        print(f"netlab down: {e}", file=sys.stderr)
        return 1
    try:
        reaped = _reap_orphans()
        for line in reaped:
            print(line)
        reg = _safe_registry(create=False)
        for p in sorted(reg.glob("*.json")) if reg is not None else []:
            state = _read_record(p)
            if state is None:
                continue
            print(f"lab {state.get('token')}: owner {state.get('owner_pid')} alive, left alone")
        print(f"{len(reaped)} lab(s) torn down")
    finally:
        lk.release()
    return 0


def _cli(argv: list[str]) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m pytest_inference.testing.netlab",
                                description="Start (up) or clean up (down) a pytest-inference network lab.")
    sub = p.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="start a lab, print its details as JSON, run until Ctrl-C/SIGTERM")
    g = up.add_mutually_exclusive_group()
    g.add_argument("--tuned", dest="tuned", action="store_true", default=True)
    g.add_argument("--untuned", dest="tuned", action="store_false")
    up.add_argument("--weights-mib", type=float, default=256)
    up.add_argument("--shards", type=int, default=4)
    up.add_argument("--offloads", action="store_true", help="leave veth offloads on")
    sub.add_parser("down", help="tear down labs whose owner and guardian processes are both gone")
    args = p.parse_args(argv)
    if args.cmd == "down":
        return _cli_down()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        lab = NetLab(tuned=args.tuned, weights_mib=args.weights_mib, shards=args.shards,
                     offloads=args.offloads).start()
    except LabUnavailable as e:
        print(f"netlab unavailable: {e}", file=sys.stderr)
        return 2
    except LabError as e:
        print(f"netlab failed: {e}", file=sys.stderr)
        return 1
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    print(json.dumps(lab.info()), flush=True)  # one line: easy to read from a script
    print(f"client: {' '.join(lab.node_prefix())} nfs-ls '{lab.nfs_url(lab.model_dir)}'   (Ctrl-C stops the lab)",
          file=sys.stderr, flush=True)
    while not stop.wait(1.0):
        pass
    lab.stop()
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_guardian":
        sys.exit(_guardian_main(sys.argv[2:]))
    sys.exit(_cli(sys.argv[1:]))
