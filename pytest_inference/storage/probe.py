"""The model path's storage: which mount holds it, is it NFS, with which options, how fast.

Two modes:

``mount``  a model folder on this node (``--model-path``): the mount that holds it comes from
           mountinfo (:mod:`pytest_inference.node.parse`), its NFS options from the kernel's
           own line; throughput is :func:`.read.read_bandwidth`
           (several parallel readers, each file's cached pages dropped with
           ``posix_fadvise(DONTNEED)`` then read with ``O_DIRECT`` where the file system
           allows it; the method used is reported).
``url``    an NFS server measured without mounting (``--nfs-url nfs://SERVER/EXPORT/PATH``):
           the userspace client of :mod:`.nfs_reader` in a subprocess, optionally inside the
           node's network namespace; N readers = N TCP connections.

Errors are :class:`StorageError` with one line for the user.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from ..node.backends import LocalBackend, NodeError
from ..node.parse import Mount
from ..node.probes import Node
from .read import read_bandwidth

MB = 1_000_000


class StorageError(Exception):
    """The model path cannot be inspected or read; one line for the user."""


def version_number(vers: str | None) -> float | None:
    """``"4.1"`` → 4.1, ``"4"`` → 4.0, ``"3"`` → 3.0; ``None`` for anything else."""
    if not vers:
        return None
    try:
        return float(vers)
    except ValueError:
        return None


@dataclass
class ModelStorage:
    """Where the model's weights live, as the storage suite judges it."""

    mode: str  # "mount" or "url"
    location: str  # the model path, or the nfs:// URL
    mount: Mount | None = None
    node: str = "local://"
    nfs_server: str | None = None
    version: str | None = None
    nconnect: int | None = None
    notes: list[str] = field(default_factory=list)
    server_rpc: dict[str, Any] | None = None  # URL mode: what the server answered (measure_url_version)

    @property
    def is_nfs(self) -> bool:
        return self.mode == "url" or (self.mount is not None and self.mount.is_nfs)

    def not_nfs_reason(self) -> str:
        if self.mount is None:
            return f"{self.location}: no mount holds it"
        return (f"{self.location} is on {self.mount.fstype} (mount {self.mount.mount_point} from "
                f"{self.mount.source}), not NFS")

    def options(self) -> dict[str, Any]:
        if self.mode == "url":
            return {"url": self.location, "vers": self.version, "client": "libnfs (userspace)",
                    "vers_source": "asked of the server (RPC)" if self.server_rpc else "not measured",
                    "server_rpc": self.server_rpc}
        return self.mount.nfs_options() if self.mount and self.mount.is_nfs else {}

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "location": self.location, "node": self.node, "is_nfs": self.is_nfs,
                "fstype": self.mount.fstype if self.mount else None,
                "mount_point": self.mount.mount_point if self.mount else None,
                "source": self.mount.source if self.mount else None,
                "nfs_server": self.nfs_server, "options": self.options(), "notes": list(self.notes)}


def inspect_path(path: str | os.PathLike, node: Node | None = None) -> ModelStorage:
    """The mount that holds ``path`` on ``node`` (default: this host) and its NFS options."""
    node = node or Node(LocalBackend())
    p = str(path)
    if isinstance(node.backend, LocalBackend):
        if not os.path.exists(p):
            raise StorageError(f"--model-path {p}: no such file or folder")
        p = os.path.realpath(p)
    try:
        mount = node.mount_for(p)
    except (NodeError, ValueError) as exc:
        raise StorageError(f"cannot read the mount table of {node.name}: {exc}") from None
    info = ModelStorage(mode="mount", location=p, mount=mount, node=node.name)
    if mount is not None and mount.is_nfs:
        info.nfs_server = mount.server_addr
        info.version = mount.nfs_version
        info.nconnect = mount.nconnect
        if mount.option("nconnect") is None:
            info.notes.append("the kernel prints nconnect= only when it was set: this mount has 1 connection")
    return info


def inspect_url(url: str) -> ModelStorage:
    """URL mode: the URL checked (one line per defect, a password never repeated). The NFS version
    is *not* taken from it: :func:`measure_url_version` asks the server."""
    from .nfs_reader import ReaderError, split_url

    try:
        server, _port, _path, _query = split_url(url)
    except ReaderError as exc:
        raise StorageError(f"--nfs-url {exc}") from None
    return ModelStorage(mode="url", location=url, nfs_server=server,
                        notes=["URL mode: read by a userspace NFS client (libnfs speaks NFSv3 and NFSv4.0); "
                               "nconnect is a kernel mount option and does not apply"])


def measure_url_version(info: ModelStorage, prefix: Sequence[str] = (), timeout: float = 60.0,
                        python: str | None = None) -> ModelStorage:
    """Ask the server which NFS versions it answers (RPC NULL and empty COMPOUNDs, from the node's
    network when ``prefix`` enters it) and record the highest as ``info.version``; left None, with
    a note, when the server answered but did not show one. An unreachable server is a StorageError."""
    data = _run_reader(info.location, ["--server-version"], prefix, timeout, python)
    info.server_rpc = data
    info.version = data.get("version")
    if info.version is None:
        info.notes.append("the server answered but no NFS version could be established: "
                          + "; ".join(f"{r['call']}: {r.get('accept')}" for r in data.get("rpc", [])))
    else:
        info.notes.append(f"NFS version asked of the server on the wire (RPC): it answers NFSv{info.version}")
    return info


def _run_reader(url: str, args: Sequence[str], prefix: Sequence[str], timeout: float,
                python: str | None) -> dict[str, Any]:
    """The reader module in a subprocess (``prefix``: e.g. nsenter into a netns); its JSON answer."""
    from ..report.redact import redact_userinfo

    argv = [*prefix, python or sys.executable, "-m", "pytest_inference.storage.nfs_reader", url, *args]
    shown = redact_userinfo(url)
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        raise StorageError(f"reading {shown} did not finish in {timeout:.0f} s") from None
    except FileNotFoundError as exc:
        raise StorageError(f"cannot run the NFS reader: {exc.filename} not found") from None
    line = (proc.stdout.strip().splitlines() or [""])[-1]
    try:
        data = json.loads(line)
    except json.JSONDecodeError:
        err = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise StorageError(f"the NFS reader failed ({shlex.join(argv[:3])} …): {redact_userinfo(err)[:200]}") from None
    if not isinstance(data, dict):
        raise StorageError(f"the NFS reader answered {line[:100]!r}")
    if "error" in data:
        raise StorageError(f"--nfs-url {shown}: {data['error']}")
    return data


@dataclass
class ReadRound:
    """One timed read of all weight files."""

    MBps: float
    bytes: int
    seconds: float
    readers: int
    method: str
    cached_fraction: float | None = None
    client_version: str | None = None
    per_reader_MBps: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"MBps": round(self.MBps, 1), "bytes": self.bytes, "seconds": round(self.seconds, 4),
                "readers": self.readers, "method": self.method, "cached_fraction": self.cached_fraction,
                "client_version": self.client_version,
                "per_reader_MBps": [round(x, 1) for x in self.per_reader_MBps]}


def read_mount(path: str | os.PathLike, readers: int = 4, block: int = 8 << 20) -> ReadRound:
    """One read of the weight files under ``path`` on this host, page cache excluded."""
    try:
        r = read_bandwidth(path, readers=readers, block=block)
    except ValueError as exc:
        raise StorageError(f"--model-path {path}: {exc}") from None
    except OSError as exc:
        raise StorageError(f"--model-path {path}: {exc.strerror or exc}") from None
    return ReadRound(MBps=r.MBps, bytes=r.bytes, seconds=r.seconds, readers=readers, method=r.method,
                     cached_fraction=r.cached_fraction)


def read_url(url: str, readers: int = 4, block: int = 1 << 20, prefix: Sequence[str] = (),
             timeout: float = 900.0, python: str | None = None) -> ReadRound:
    """One read through the userspace client, in a subprocess (``prefix``: e.g. nsenter into a netns)."""
    data = _run_reader(url, ["--readers", str(readers), "--block", str(block)], prefix, timeout, python)
    return ReadRound(MBps=data["MBps"], bytes=data["bytes"], seconds=data["seconds"], readers=data["readers"],
                     method=data["method"], client_version=data.get("client_version"),
                     per_reader_MBps=[r["bytes"] / r["seconds"] / MB for r in data["per_reader"] if r["seconds"] > 0])


def measure(read_once: Callable[[], ReadRound], rounds: int, before_round: Callable[[], None] | None = None,
            progress: Callable[[int, int, ReadRound], None] | None = None) -> list[ReadRound]:
    """``rounds`` timed reads; ``before_round`` runs untimed before each (e.g. drop a server's cache)."""
    out = []
    for i in range(max(1, rounds)):
        if before_round:
            before_round()
        out.append(read_once())
        if progress:
            progress(i + 1, rounds, out[-1])
    return out


def drop_file_cache(folder: str | os.PathLike) -> int:
    """Drop the page cache of every file under ``folder`` on *this* host (fsync, then
    ``POSIX_FADV_DONTNEED``): what an NFS server in the lab serves next comes off its disk.
    Returns how many files were dropped."""
    n = 0
    for f in Path(folder).rglob("*"):
        if f.is_file():
            fd = os.open(f, os.O_RDONLY)
            try:
                os.fsync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                n += 1
            except OSError:
                pass
            finally:
                os.close(fd)
    return n
