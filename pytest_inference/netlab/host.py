"""Host-wide network settings: ``net.core.rmem_max``/``wmem_max`` are read-only inside a namespace
and mirror the host, so a lab changes the host's and restores them at stop.

Every process that does (xdist workers, other users) takes the exclusive lock
``${PYTEST_INFERENCE_LOCK_DIR:-/tmp/pytest-inference-locks}/host-net-sysctl.lock`` (the
:class:`~pytest_inference.server.lock.DeviceLock` primitive) for the lab's lifetime. Within one
process, several labs share it **only if they want the same host values**: the first to start
records the original values, the last to stop restores them (:data:`HOST`).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping
from typing import Any

from .common import HOST_KEYS, LabError, lock_dir

__all__ = ["HOST", "HostNet", "sysctl_path", "read_host_sysctl", "write_host_sysctl"]

log = logging.getLogger("pytest_inference.netlab")


def sysctl_path(key: str) -> str:
    return "/proc/sys/" + key.replace(".", "/")


def read_host_sysctl(key: str) -> str:
    with open(sysctl_path(key)) as f:
        return " ".join(f.read().split())


def write_host_sysctl(key: str, value: str | int) -> None:
    value = str(value)
    try:
        if read_host_sysctl(key) == " ".join(value.split()):
            return
    except OSError:
        pass
    with open(sysctl_path(key), "w") as f:
        f.write(value)



class HostNet:
    """The host lock and the original ``rmem_max``/``wmem_max`` values, for this process.

    Labs of one process share it when they want the same values (refcounted); the first takes
    the cross-process lock and records the originals, the last restores them and unlocks."""

    def __init__(self) -> None:
        self.mu = threading.RLock()
        self.pid = os.getpid()
        self.lock: Any = None  # a DeviceLock
        self.originals: dict[str, str] = {}
        self.want: dict[str, str] = {}
        self.labs: list[Any] = []

    def _check_fork(self) -> None:
        if self.pid != os.getpid():  # a forked child does not own the parent's labs
            self.__init__()  # type: ignore[misc]

    def conflict(self, lab: Any, want: Mapping[str, str]) -> str | None:
        others = [x for x in self.labs if x is not lab]
        if others and dict(want) != self.want:
            have = ", ".join(f"{k}={v}" for k, v in self.want.items())
            new = ", ".join(f"{k}={v}" for k, v in want.items())
            return (f"another lab in this process holds the host network settings; stop it first "
                    f"(lab {others[0].token} has {have}; this one wants {new})")
        return None

    def acquire(self, lab: Any, want: Mapping[str, str], timeout_s: float,
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

            lk = DeviceLock("host-net-sysctl", lock_dir())

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
            from .registry import reap_orphans

            for line in reap_orphans():
                log.warning("netlab: %s", line)
            try:
                self.originals = {k: read_host_sysctl(k) for k in HOST_KEYS}
            except OSError as e:
                lk.release()
                raise LabError(f"cannot read the host network settings: {e}") from None
            lk.write_owner(what="pytest-inference netlab (net.core.rmem_max/wmem_max)", labs=[lab.token],
                           originals=self.originals, want=dict(want))
            self.lock, self.want, self.labs = lk, dict(want), [lab]

    @property
    def lock_fd(self) -> int | None:
        return self.lock.fd if self.lock is not None else None

    def apply(self, lab: Any, want: Mapping[str, str]) -> None:
        with self.mu:
            if lab not in self.labs:
                raise LabError("this lab does not hold the host network settings")
            err = self.conflict(lab, want)
            if err:
                raise LabError(err)
            self.want = dict(want)
            for k, v in want.items():
                try:
                    write_host_sysctl(k, v)
                except OSError as e:
                    raise LabError(f"cannot set host {k}={v}: {e}") from None

    def release(self, lab: Any, before_unlock: Callable[[], None]) -> list[str]:
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
                    write_host_sysctl(k, v)
                except OSError as e:
                    problems.append(f"could not restore host {k}={v}: {e}")
            before_unlock()
            lk, self.lock = self.lock, None
            if lk is not None:
                lk.release()
            self.want = {}
        return problems


HOST = HostNet()
