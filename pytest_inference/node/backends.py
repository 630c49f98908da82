"""Where node probes run: this host, a network namespace, a Kubernetes node, or a recording.

A backend runs one command (argv, never a shell string) on the node and returns its stdout;
probes only read files and run ``ip`` and ``ss``, so every backend needs just :meth:`run`.
Chosen by URL, in the spirit of testinfra's ``--hosts``::

    local://                   this host, as the current process sees it
    netns://NAME               the network namespace /run/netns/NAME, with this host's mounts
    kubectl://NAMESPACE/POD    ``kubectl exec`` into a hostNetwork + hostPID pod on the node;
                               the command enters PID 1's mount and network namespaces with
                               nsenter, so it sees the node, not the pod (``?container=C``,
                               ``?nsenter=0`` to run in the pod as it is)
    recorded://DIR             answers from files a probe recorded earlier (tests, vendor reports)

Each backend raises :class:`NodeError` with one line when a command cannot run.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import subprocess
from pathlib import Path
from typing import Sequence
from urllib.parse import parse_qs, urlsplit

__all__ = ["Backend", "LocalBackend", "NetnsBackend", "KubectlBackend", "RecordedBackend", "NodeError",
           "backend_from_url", "record_key"]


class NodeError(Exception):
    """A node probe could not run; the message is one line meant for the user."""


class Backend:
    """Runs argv on a node. Subclasses set :attr:`prefix` or override :meth:`run`."""

    name = "node"
    prefix: tuple[str, ...] = ()

    def argv(self, argv: Sequence[str]) -> list[str]:
        return [*self.prefix, *argv]

    def run(self, argv: Sequence[str], timeout: float = 30.0) -> str:
        full = self.argv(argv)
        try:
            proc = subprocess.run(full, capture_output=True, text=True, timeout=timeout)
        except FileNotFoundError:
            raise NodeError(f"{self.name}: command not found: {full[0]}") from None
        except subprocess.TimeoutExpired:
            raise NodeError(f"{self.name}: {shlex.join(argv)} did not finish in {timeout:.0f} s") from None
        if proc.returncode != 0:
            err = (proc.stderr or proc.stdout).strip().splitlines()
            raise NodeError(f"{self.name}: {shlex.join(argv)} failed (exit {proc.returncode})"
                            + (f": {err[-1][:200]}" if err else ""))
        return proc.stdout

    def read(self, path: str) -> str:
        return self.run(["cat", path])

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


class LocalBackend(Backend):
    """This host (or whatever namespaces the current process is in)."""

    name = "local://"

    def read(self, path: str) -> str:
        try:
            return Path(path).read_text()
        except OSError as exc:
            raise NodeError(f"{self.name}: cannot read {path}: {exc.strerror}") from None


class NetnsBackend(Backend):
    """A named network namespace: network-side files and commands are the namespace's,
    mounts stay the host's (``nsenter --net``, unlike ``ip netns exec``, which also unshares
    the mount namespace and remounts /sys)."""

    def __init__(self, netns: str) -> None:
        if not netns or "/" in netns:
            raise NodeError(f"netns://{netns}: not a namespace name")
        self.netns = netns
        self.name = f"netns://{netns}"
        self.prefix = ("nsenter", f"--net=/run/netns/{netns}")

    def read(self, path: str) -> str:
        # /proc/sys/net/* answers for the namespace of the reader: read from inside it
        return self.run(["cat", path])


class KubectlBackend(Backend):
    """A hostNetwork + hostPID pod on a Kubernetes node, reached with ``kubectl exec``.

    With ``nsenter`` (default) the command runs in PID 1's mount and network namespaces, i.e.
    the node's: its mountinfo, its sysctls (``net.core.*`` and the per-namespace
    ``net.ipv4.tcp_*``), its ``ss``.  The pod needs ``privileged: true`` for that.
    """

    def __init__(self, pod: str, namespace: str = "default", *, kubeconfig: str | None = None,
                 context: str | None = None, container: str | None = None, nsenter: bool = True,
                 kubectl: str = "kubectl") -> None:
        self.pod, self.namespace, self.container = pod, namespace, container
        self.name = f"kubectl://{namespace}/{pod}"
        prefix = [kubectl]
        if kubeconfig:
            prefix += ["--kubeconfig", kubeconfig]
        if context:
            prefix += ["--context", context]
        prefix += ["exec", "-n", namespace, pod]
        if container:
            prefix += ["-c", container]
        prefix += ["--"]
        if nsenter:
            prefix += ["nsenter", "-t", "1", "-m", "-n", "--"]
        self.prefix = tuple(prefix)


def record_key(argv: Sequence[str]) -> str:
    """File name under which :class:`RecordedBackend` keeps one command's output."""
    text = shlex.join(argv)
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")[:60]
    return f"{slug}-{hashlib.sha1(text.encode()).hexdigest()[:8]}.out"


class RecordedBackend(Backend):
    """Answers from a folder of recorded outputs (see :func:`record_key`); ``cat PATH`` may also
    be answered by a file at ``DIR/PATH`` (e.g. ``DIR/proc/self/mountinfo``)."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        self.name = f"recorded://{self.folder}"
        if not self.folder.is_dir():
            raise NodeError(f"{self.name}: not a folder")

    def run(self, argv: Sequence[str], timeout: float = 30.0) -> str:
        keyed = self.folder / record_key(argv)
        if keyed.is_file():
            return keyed.read_text()
        if len(argv) == 2 and argv[0] == "cat":
            direct = self.folder / argv[1].lstrip("/")
            if direct.is_file():
                return direct.read_text()
        raise NodeError(f"{self.name}: nothing recorded for {shlex.join(argv)}")

    @staticmethod
    def record(folder: str | os.PathLike, backend: Backend, argv: Sequence[str]) -> str:
        """Run ``argv`` on ``backend`` and keep its output for a later :class:`RecordedBackend`."""
        out = backend.run(argv)
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / record_key(argv)).write_text(out)
        return out


def backend_from_url(url: str, *, kubeconfig: str | None = None, context: str | None = None) -> Backend:
    """``local://``, ``netns://NAME``, ``kubectl://NAMESPACE/POD[?container=C&nsenter=0]``, ``recorded://DIR``.
    Errors are one line and never repeat a user/password part of the URL."""
    from ..report.redact import redact_userinfo

    shown = redact_userinfo(url)
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # "Invalid IPv6 URL"
        raise NodeError(f"{shown}: not a valid node URL ({exc})") from None
    if "@" in parts.netloc:
        raise NodeError(f"{shown}: a node URL carries no user or password")
    url = shown
    scheme = parts.scheme
    if scheme in ("", "local") and parts.netloc in ("", "localhost") and parts.path in ("", "/"):
        return LocalBackend()
    if scheme == "netns":
        if parts.netloc and parts.path.strip("/"):
            raise NodeError(f"{url}: expected netns://NAME")
        return NetnsBackend(parts.netloc or parts.path.strip("/"))
    if scheme == "kubectl":
        segs = [s for s in (parts.netloc + parts.path).split("/") if s]
        if len(segs) != 2:
            raise NodeError(f"{url}: expected kubectl://NAMESPACE/POD")
        q = parse_qs(parts.query)
        return KubectlBackend(segs[1], segs[0], kubeconfig=kubeconfig, context=context,
                              container=(q.get("container") or [None])[0],
                              nsenter=(q.get("nsenter") or ["1"])[0] not in ("0", "false", "no"))
    if scheme == "recorded":
        return RecordedBackend(parts.netloc + parts.path if parts.netloc else parts.path)
    raise NodeError(f"{url}: unknown node URL; use local://, netns://NAME, kubectl://NAMESPACE/POD or recorded://DIR")
