"""The lab object: :class:`NetLab` builds the server and node namespaces, the export and ganesha,
sets the node's tuning, records each step in its state file (:mod:`.registry`) under a guardian
(:mod:`pytest_inference.supervise`), and tears it all down; see :mod:`pytest_inference.netlab`."""

from __future__ import annotations

import atexit
import logging
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .. import supervise
from . import netns, teardown
from .common import (HOST_KEYS, TUNED_CORE_MAX, TUNED_MTU, TUNED_TCP_RMEM, TUNED_TCP_WMEM, UNTUNED_CORE_MAX,
                     UNTUNED_MTU, LabError, LabUnavailable)
from .ganesha import Ganesha, fsal_vfs_present
from .host import HOST, sysctl_path
from .model import write_model
from .registry import records, safe_registry

__all__ = ["NetLab"]

log = logging.getLogger("pytest_inference.netlab")

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
    if not fsal_vfs_present():
        raise LabUnavailable("nfs-ganesha's VFS backend (libfsalvfs) not found (Debian package: nfs-ganesha-vfs)")
    try:
        import libnfs.libnfs  # noqa: F401 - the client the lab's reads use, in this Python
    except ImportError:
        from ..storage.nfs_reader import binding_missing

        raise LabUnavailable(binding_missing()) from None
    if not os.access(sysctl_path("net.core.rmem_max"), os.W_OK):
        raise LabUnavailable("net.core.rmem_max is not writable here (not the host's network namespace?)")
    netns.check_namespaces()



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
    ganesha_class = Ganesha  # the NFS server's starter (a subclass may write another configuration)
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
        self.ganesha_server: Ganesha | None = None
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
            supervise.write_json_atomic(self.state_path, self._state)

    def _pick_names(self) -> None:
        """A token whose /24 and names collide with no live lab's (names must be unique host-wide:
        namespaces are; veth names too, as they are created before being moved on older kernels)."""
        used: set[str] = set()
        try:
            used = {str(record.get("subnet", "")) for _, record in records()}
        except OSError:
            pass
        for _ in range(64):
            n = int(self.token, 16)
            subnet = f"10.{100 + (n >> 8) % 150}.{n % 256}"
            names = [f"pti-srv-{self.token}", f"pti-node-{self.token}"]
            if (subnet not in used and not any(netns.netns_exists(x) for x in names)
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
        HOST.acquire(self, self.host_settings, self.lock_timeout_s, self.progress)
        self._holds_host = True
        self.host_originals = dict(HOST.originals)
        self._pick_names()  # after the lock wait, which may be long: names free *now*
        # 2. private directory and the state file, then the guardian, before any system change
        self.tmpdir = Path(tempfile.mkdtemp(prefix=f"pti-netlab-{self.token}-"))
        reg = safe_registry(create=True)
        self.state_path = reg / f"{self.token}.json"
        self._save_state(token=self.token, owner_pid=os.getpid(), owner_start=supervise.start_time(os.getpid()),
                         subnet=self.subnet, server_netns=self.server_netns, node_netns=self.node_netns,
                         server_device=self.server_device, node_device=self.node_device,
                         tmpdir=str(self.tmpdir), host_restore=dict(HOST.originals),
                         since=time.strftime("%Y-%m-%dT%H:%M:%S%z"), started_at=time.time())
        self._start_guardian()
        # 3. export contents
        self.export_dir = self.tmpdir / "export"
        model = self.export_dir / self.model_dir
        names = write_model(model, self.weights_mib, self.shards)
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
        netns.create([self.server_netns, self.node_netns],
                     lambda i: self._save_state(**{k: None for k in keys[i:]}),  # not created: not ours to delete
                     (self.server_device, self.node_device), (self.server_addr, self.node_addr), self.offloads)
        self._ns_defaults = netns.fresh_tcp_defaults(self.node_netns)
        netns.ns_sysctl(self.server_netns, {"net.ipv4.tcp_rmem": TUNED_TCP_RMEM, "net.ipv4.tcp_wmem": TUNED_TCP_WMEM})
        self._apply_tuning(self._want_tuned)
        # 5. the server
        self.ganesha_server = self.ganesha_class(self.ganesha_binary, self.tmpdir, self.export_dir,
                                                 self.server_netns, self.server_addr, self.nfs4_minor_versions,
                                                 self.token)
        self.ganesha_server.start(self.node_prefix(), self.ready_timeout_s, self._ganesha_started)

    def _ganesha_started(self, pid: int) -> None:
        self.ganesha = self.ganesha_server.proc
        self.ganesha_log = self.ganesha_server.log_path
        self._save_state(ganesha_pid=pid, ganesha_start=supervise.start_time(pid))

    def _start_guardian(self) -> None:
        assert self.state_path is not None
        self._save_state(teardown=teardown.command(self.state_path),
                         what=f"lab {self.token} ({self.server_netns}, {self.node_netns}, {self.tmpdir})")
        fd = HOST.lock_fd
        cmd = supervise.guardian_command(os.getpid(), state=self.state_path, lock_fd=fd,
                                         owner_file=HOST.lock.owner_path if fd is not None else None)
        try:
            self.guardian = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                             start_new_session=True, close_fds=True,
                                             pass_fds=(fd,) if fd is not None else ())
        except OSError as e:
            raise LabError(f"cannot start the lab's guardian process: {e}") from None
        self._save_state(guardian_pid=self.guardian.pid, guardian_start=supervise.start_time(self.guardian.pid))

    # ------------------------------------------------------------------ tuning
    def set_mtu(self, mtu: int) -> None:
        """Set the MTU of both veth ends (open TCP connections keep their MSS)."""
        netns.set_mtu([(self.server_netns, self.server_device), (self.node_netns, self.node_device)], mtu)
        self.mtu = int(mtu)

    def _apply_tuning(self, tuned: bool) -> None:
        want = {k: str(TUNED_CORE_MAX if tuned else UNTUNED_CORE_MAX) for k in HOST_KEYS}
        err = HOST.conflict(self, want)
        if err:
            raise LabError(err)
        self.set_mtu(TUNED_MTU if tuned else UNTUNED_MTU)
        netns.ns_sysctl(self.node_netns, {"net.ipv4.tcp_rmem": TUNED_TCP_RMEM, "net.ipv4.tcp_wmem": TUNED_TCP_WMEM}
                        if tuned else self._ns_defaults)
        HOST.apply(self, want)
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
        problems = teardown.teardown(self._state, restore_host=False)
        if self.ganesha is not None:
            try:
                self.ganesha.wait(timeout=5)
            except subprocess.TimeoutExpired:
                problems.append(f"ganesha {self.ganesha.pid} did not exit")
        if self._holds_host:
            def mark() -> None:
                if self.state_path is not None and self.state_path.exists():
                    self._save_state(host_restore={})
            problems += HOST.release(self, mark)
            self._holds_host = False
        if self.guardian is not None:
            supervise.release_guardian(self.guardian, timeout_s=5.0)
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

