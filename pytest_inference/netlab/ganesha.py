"""The lab's NFS server: nfs-ganesha (userspace NFSv4: the kernel here has no NFS client *or*
server we could use), started in the server namespace, exporting the lab's private folder, and
ready only once it serves (not merely listens)."""

from __future__ import annotations

import glob
import logging
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from .common import NFS_PORT, LabError

__all__ = ["fsal_vfs_present", "Ganesha"]

log = logging.getLogger("pytest_inference.netlab")

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


def fsal_vfs_present() -> bool:
    """Whether nfs-ganesha's VFS backend (libfsalvfs, Debian package nfs-ganesha-vfs) is installed."""
    pats = ["/usr/lib/*/ganesha/libfsalvfs*", "/usr/lib/ganesha/libfsalvfs*", "/usr/lib64/ganesha/libfsalvfs*",
            "/usr/local/lib*/ganesha/libfsalvfs*"]
    return any(glob.glob(p) for p in pats)


class Ganesha:
    """One ganesha of a lab: its configuration, process and log live in ``tmpdir``."""

    def __init__(self, binary: str, tmpdir: Path, export_dir: Path, netns: str, addr: str,
                 minor_versions: Sequence[int], token: str) -> None:
        self.binary, self.tmpdir, self.export_dir = binary, tmpdir, export_dir
        self.netns, self.addr, self.minor_versions, self.token = netns, addr, tuple(minor_versions), token
        self.log_path = tmpdir / "ganesha.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def write_conf(self) -> Path:
        rec = self.tmpdir / "recovery"
        rec.mkdir(exist_ok=True)
        conf = self.tmpdir / "ganesha.conf"
        conf.write_text(f"""\
# pytest-inference netlab {self.token}
NFS_CORE_PARAM {{ Bind_addr = {self.addr}; NFS_Port = {NFS_PORT}; Protocols = 4;
                  Enable_NLM = false; Enable_RQUOTA = false; }}
NFSv4 {{ Graceless = true; RecoveryBackend = fs; RecoveryRoot = "{rec}"; Only_Numeric_Owners = true;
         Minor_Versions = {", ".join(str(m) for m in self.minor_versions)}; }}
NFS_KRB5 {{ Active_krb5 = false; }}
EXPORT {{
    Export_Id = 1; Path = "{self.export_dir}"; Pseudo = /export; Protocols = 4; Transports = TCP;
    Access_Type = RW; Squash = No_Root_Squash; SecType = sys;
    FSAL {{ Name = VFS; }}
}}
""")
        return conf

    def log_tail(self, n: int = 15) -> str:
        lines: list[str] = []
        for p in (self.log_path, self.tmpdir / "ganesha.out"):
            try:
                lines += [x for x in p.read_text(errors="replace").splitlines() if x.strip()]
            except OSError:
                pass
        return "\n".join(lines[-n:]) or "(empty log)"

    def _exited(self) -> LabError:
        assert self.proc is not None
        return LabError(f"ganesha exited with {self.proc.returncode} during start; its log:\n" + self.log_tail())

    def start(self, node_prefix: list[str], ready_timeout_s: float, started: Callable[[int], None]) -> None:
        """Start ganesha, call ``started(pid)`` at once (the owner records it before waiting), then wait
        until it answers from the node (``node_prefix``) and says it is initialized."""
        conf = self.write_conf()
        argv = ["ip", "netns", "exec", self.netns, self.binary, "-F", "-f", str(conf),
                "-L", str(self.log_path), "-p", str(self.tmpdir / "ganesha.pid")]
        with open(self.tmpdir / "ganesha.out", "wb") as out:
            try:
                self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                             start_new_session=True, close_fds=True)
            except OSError as e:
                raise LabError(f"cannot start ganesha: {e}") from None
        started(self.proc.pid)  # `ip netns exec` execs in place: this pid is ganesha's
        probe = subprocess.Popen(node_prefix + [sys.executable, "-I", "-S", "-c", _READY_PROBE,
                                                self.addr, str(NFS_PORT), str(ready_timeout_s)],
                                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + ready_timeout_s + 5
        try:
            while True:
                rc = probe.poll()
                if rc is not None:
                    break
                if self.proc.poll() is not None:
                    raise self._exited()
                if time.monotonic() > deadline:
                    raise LabError("the readiness probe hung")
                time.sleep(0.02)
        finally:
            if probe.poll() is None:
                probe.kill()
            probe.wait()
        if rc != 0:
            err = probe.stderr.read().decode(errors="replace").strip() if probe.stderr else ""
            raise LabError(f"ganesha did not answer on {self.addr}:{NFS_PORT} from the node within "
                           f"{ready_timeout_s:g} s ({err}); its log:\n" + self.log_tail())
        if probe.stderr:
            probe.stderr.close()
        # Listening is not serving: with a bad configuration ganesha listens, then gives up a few
        # ms later. Ready = its "NFS SERVER INITIALIZED" log line (or, should a version not
        # write it, still running 2 s after it first answered).
        answered = time.monotonic()
        while True:
            if self.proc.poll() is not None:
                raise self._exited()
            try:
                if b"NFS SERVER INITIALIZED" in self.log_path.read_bytes():
                    return
            except OSError:
                pass
            if time.monotonic() - answered > 2.0:
                log.debug("netlab %s: no 'NFS SERVER INITIALIZED' in ganesha's log; it has been up 2 s", self.token)
                return
            time.sleep(0.02)
