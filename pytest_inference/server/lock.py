"""At most one server per device on this machine: an exclusive lock file per device.

``DeviceLock("cpu").acquire(progress=...)`` takes ``<lock_dir>/cpu.lock`` with the same
``flock`` primitive as the ``filelock`` package (``filelock.lock_descriptor`` on a
descriptor this module owns, so the launcher can hand that descriptor to the server's
watchdog, the guardian of :mod:`pytest_inference.supervise`: the lock then outlives a SIGKILLed holder
until its server is really gone).
The kernel drops an ``flock`` when its last holder dies, so a crash never leaves a stale
lock behind.

Who holds it is written next to it, in ``<device>.owner`` (JSON: pid, pgid of the server,
since, command), so a waiter can say "waiting for device cpu, held by pid 1234".
The default directory is per machine (``/tmp/pytest-inference-locks``, or
``$PYTEST_INFERENCE_LOCK_DIR``), shared by every user and every xdist worker.

A shared, world-writable directory is hostile ground, so nothing here follows a symlink or
changes the mode of a file it did not create: the directory is created with a safe mode
(the default one sticky ``1777``, any other ``0700``) and must be a real directory owned by
us or root, sticky whenever others may write to it; a lock file is created ``O_EXCL`` or
else opened ``O_NOFOLLOW`` read-only (``flock`` needs no write access, so no lock file is ever
made writable by others) and must be a regular file with one link; the owner file is
written to a fresh ``O_EXCL | O_NOFOLLOW`` temporary file and renamed into place, and read
``O_NOFOLLOW``. An unsafe directory or a planted symlink is :class:`DeviceLockUnsafe`, one line.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import time
from pathlib import Path
from typing import Any, Callable

from ..supervise import pid_alive, read_json, write_json_atomic

__all__ = ["DeviceLock", "DeviceLockError", "DeviceLockTimeout", "DeviceLockUnsafe", "default_lock_dir"]


def default_lock_dir() -> Path:
    env = os.environ.get("PYTEST_INFERENCE_LOCK_DIR")
    return Path(env) if env else Path("/tmp/pytest-inference-locks")


try:  # filelock >= 3.30: the same primitive as FileLock, on a descriptor we own
    from filelock import lock_descriptor as _fl_lock, unlock_descriptor as _fl_unlock  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - older filelock: flock directly (what FileLock uses on Unix)
    import fcntl

    def _fl_lock(fd: int, *, blocking: bool = True, poll_interval: float = 0.05) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except OSError as e:
            if e.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                return False
            raise
        return True

    def _fl_unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)


class DeviceLockError(Exception):
    """The device lock cannot be had; the message is one line."""


class DeviceLockTimeout(DeviceLockError, TimeoutError):
    pass


class DeviceLockUnsafe(DeviceLockError):
    """The lock directory or a lock file is not safe to use (symlink, foreign owner, not sticky...)."""


_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def ensure_dir(path: Path, shared: bool) -> None:
    """Create the lock directory with a safe mode, or check the one that is there."""
    try:
        if shared:
            os.mkdir(path, 0o1777)
            os.chmod(path, 0o1777)  # we just created it: undo the umask (every user shares it)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError as e:
        if not path.is_dir():
            raise DeviceLockUnsafe(f"cannot create the lock directory {path}: {e.strerror or e}") from None
    try:
        st = os.lstat(path)
    except OSError as e:
        raise DeviceLockUnsafe(f"cannot use the lock directory {path}: {e.strerror or e}") from None
    hint = "remove it, or set PYTEST_INFERENCE_LOCK_DIR to a directory of your own"
    if stat.S_ISLNK(st.st_mode):
        raise DeviceLockUnsafe(f"lock directory {path} is a symlink (refusing to follow it); {hint}")
    if not stat.S_ISDIR(st.st_mode):
        raise DeviceLockUnsafe(f"lock directory {path} is not a directory; {hint}")
    if st.st_uid not in (os.geteuid(), 0):
        raise DeviceLockUnsafe(f"lock directory {path} is owned by uid {st.st_uid}, neither us "
                               f"(uid {os.geteuid()}) nor root; {hint}")
    if st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX:
        raise DeviceLockUnsafe(f"lock directory {path} is writable by others but not sticky "
                               f"(mode {stat.S_IMODE(st.st_mode):o}): anyone could replace its lock files; {hint}")


def _open_lock_file(path: Path) -> int:
    """An fd for flock on ``path``: created here (O_EXCL), or an existing regular file opened
    read-only without following a symlink. Never chmods."""
    try:
        return os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, 0o644)
    except FileExistsError:
        pass
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW | _CLOEXEC | os.O_NONBLOCK)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise DeviceLockUnsafe(f"lock file {path} is a symlink (refusing to follow it); remove it") from None
        raise DeviceLockUnsafe(f"cannot open lock file {path}: {e.strerror or e}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise DeviceLockUnsafe(f"lock file {path} is not a regular file; remove it")
        if st.st_nlink != 1:
            raise DeviceLockUnsafe(f"lock file {path} has {st.st_nlink} hard links (a planted link?); remove it")
    except BaseException:
        os.close(fd)
        raise
    return fd


class DeviceLock:
    """Exclusive, cross-process lock of one device (``"cpu"``, ``"gpu0"``...)."""

    def __init__(self, device: str, lock_dir: str | os.PathLike[str] | None = None) -> None:
        self.device = device
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", device) or "device"
        self.lock_dir = Path(lock_dir) if lock_dir is not None else default_lock_dir()
        self.path = self.lock_dir / f"{safe}.lock"
        self.owner_path = self.lock_dir / f"{safe}.owner"
        self.fd: int | None = None
        self.wait_s = 0.0

    # ------------------------------------------------------------------ holder info
    def holder(self) -> dict[str, Any] | None:
        """What the current holder wrote (pid, pgid, since, command), plus ``alive``; None if unknown."""
        info = read_json(self.owner_path, limit=65536)
        if not isinstance(info, dict):
            return None
        pid = info.get("pid")
        info["alive"] = isinstance(pid, int) and pid_alive(pid)
        return info

    def describe_holder(self) -> str:
        h = self.holder()
        if h is None:
            return "held by another process"
        s = f"held by pid {h.get('pid')}"
        if not h.get("alive"):
            s += " (gone; its watchdog is stopping its server)"
        if h.get("since"):
            s += f" since {h['since']}"
        return s

    def write_owner(self, **info: Any) -> None:
        """Record who holds the lock (call while holding it)."""
        data = {"pid": os.getpid(), "device": self.device,
                "since": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **info}
        try:
            # a fresh file (O_EXCL, no symlink followed), readable by all: never a chmod of someone else's
            write_json_atomic(self.owner_path, data, mode=0o644, indent=None)
        except OSError:
            pass  # best effort: the owner file only improves the waiting message

    # ------------------------------------------------------------------ acquire / release
    def _open(self) -> int:
        # the default directory is shared by every user of the machine (sticky 1777); any other is ours
        ensure_dir(self.lock_dir, shared=self.lock_dir == Path("/tmp/pytest-inference-locks"))
        return _open_lock_file(self.path)

    def acquire(self, timeout_s: float | None = None,
                progress: Callable[[str, float], None] | None = None,
                poll_s: float = 0.1, progress_every_s: float = 2.0) -> float:
        """Block until the lock is ours; return the seconds waited. ``progress(text, waited_s)``
        is called right away when the lock is busy and then every ``progress_every_s``."""
        if self.fd is not None:
            raise RuntimeError(f"device lock {self.path} is already held by this object")
        fd = self._open()
        t0 = time.monotonic()
        next_progress = t0
        try:
            while not _fl_lock(fd, blocking=False):
                now = time.monotonic()
                waited = now - t0
                if timeout_s is not None and waited >= timeout_s:
                    raise DeviceLockTimeout(f"device {self.device} is busy ({self.describe_holder()}); "
                                            f"gave up after {waited:.0f} s (lock {self.path})")
                if progress is not None and now >= next_progress:
                    try:
                        progress(f"waiting for device {self.device}, {self.describe_holder()}", waited)
                    except Exception:
                        pass
                    next_progress = now + progress_every_s
                time.sleep(poll_s)
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd
        self.wait_s = time.monotonic() - t0
        return self.wait_s

    def release(self) -> None:
        fd, self.fd = self.fd, None
        if fd is None:
            return
        try:
            h = self.holder()
            if h is not None and h.get("pid") == os.getpid():
                self.owner_path.unlink()
        except OSError:
            pass
        try:
            _fl_unlock(fd)  # releases the open file description: for an inheriting watchdog too
        finally:
            os.close(fd)

    @property
    def held(self) -> bool:
        return self.fd is not None

    def __enter__(self) -> "DeviceLock":
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"DeviceLock({self.device!r}, {str(self.path)!r}, held={self.held})"
