"""Pure parsers for what the kernel prints about mounts and connections.

Nothing here touches the world: every function takes text a probe collected (from this host,
a network namespace, a Kubernetes node, or a recording) and returns plain data, so the
parsing is tested on recorded kernel output.

- :func:`parse_mountinfo` / :func:`mount_for` — ``/proc/self/mountinfo`` and the mount that
  holds a path; :class:`Mount` knows whether it is NFS and reads its options (``nconnect``
  is printed by the kernel *only* when it was set: absent means one connection).
- :func:`parse_ss` — ``ss -tin`` output: one :class:`TcpConnection` per socket with its
  ``mss``, ``pmtu``, ``advmss``.  ``rcvmss:``/``advmss:`` contain ``mss:`` too, so the
  parse anchors on word boundaries.
- :func:`parse_route_get` — ``ip -o route get ADDR``: the device (and a route MTU if set);
  :func:`parse_link_mtu` — ``ip -o link show dev DEV``: its MTU.
- :func:`sysctl_max` — the largest number of a multi-value sysctl such as ``tcp_rmem``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable

NFS_FSTYPES = ("nfs", "nfs4")


def _unescape(field_: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal (``\\040``)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field_)


def _options(text: str) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for item in text.split(","):
        if not item:
            continue
        key, sep, value = item.partition("=")
        out[key] = value if sep else None
    return out


@dataclass(frozen=True)
class Mount:
    """One line of mountinfo."""

    mount_id: int
    mount_point: str
    root: str
    fstype: str
    source: str
    mount_options: dict[str, str | None] = field(default_factory=dict)
    super_options: dict[str, str | None] = field(default_factory=dict)

    @property
    def is_nfs(self) -> bool:
        return self.fstype in NFS_FSTYPES

    def option(self, name: str) -> str | None:
        if name in self.super_options:
            return self.super_options[name]
        return self.mount_options.get(name)

    def has_flag(self, name: str) -> bool:
        return name in self.super_options or name in self.mount_options

    def _int(self, name: str) -> int | None:
        value = self.option(name)
        try:
            return int(value) if value is not None else None
        except ValueError:
            return None

    @property
    def nfs_version(self) -> str | None:
        """``4.1``, ``4.2``, ``3``…: ``vers=`` (or ``nfsvers=``); ``nfs4`` without one means 4."""
        if not self.is_nfs:
            return None
        value = self.option("vers") or self.option("nfsvers")
        if value:
            return value
        return "4" if self.fstype == "nfs4" else None

    @property
    def nconnect(self) -> int:
        """TCP connections per server: the kernel prints ``nconnect=`` only when it was set."""
        return self._int("nconnect") or 1

    @property
    def rsize(self) -> int | None:
        return self._int("rsize")

    @property
    def wsize(self) -> int | None:
        return self._int("wsize")

    @property
    def proto(self) -> str | None:
        return self.option("proto")

    @property
    def hard(self) -> bool | None:
        if self.has_flag("soft"):
            return False
        if self.has_flag("hard"):
            return True
        return None

    @property
    def server_addr(self) -> str | None:
        """``addr=`` of an NFS mount, else the host part of ``server:/export``."""
        if not self.is_nfs:
            return None
        if self.option("addr"):
            return self.option("addr")
        host, sep, _ = self.source.rpartition(":")
        return host.strip("[]") if sep and host else None

    def nfs_options(self) -> dict[str, object]:
        """The options a storage claim reports, ``None`` where the kernel did not print one."""
        return {"vers": self.nfs_version, "rsize": self.rsize, "wsize": self.wsize, "proto": self.proto,
                "hard": self.hard, "addr": self.server_addr, "nconnect": self.nconnect,
                "nconnect_set": self.option("nconnect") is not None}

    def describe(self) -> str:
        return f"{self.mount_point} ({self.fstype} from {self.source})"


class ParseError(ValueError):
    """Text that is not what the probe expected; the message is one line."""


def parse_mountinfo(text: str) -> list[Mount]:
    """``/proc/PID/mountinfo``: ``ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [TAGS…] - FSTYPE SOURCE SUPER``."""
    mounts = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        left, sep, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if not sep or len(fields) < 6 or len(tail) < 2:
            raise ParseError(f"mountinfo line {n} is not in the kernel's format: {line[:80]!r}")
        try:
            mount_id = int(fields[0])
        except ValueError:
            raise ParseError(f"mountinfo line {n} does not start with a mount id: {line[:80]!r}") from None
        mounts.append(Mount(
            mount_id=mount_id, root=_unescape(fields[3]), mount_point=_unescape(fields[4]),
            mount_options=_options(fields[5]), fstype=tail[0], source=_unescape(tail[1]),
            super_options=_options(tail[2]) if len(tail) > 2 else {},
        ))
    return mounts


def mount_for(mounts: Iterable[Mount], path: str) -> Mount | None:
    """The mount that holds the absolute (resolved) ``path``: the longest mount point that is a
    prefix of it; of several mounts on one point the last one (it hides the others)."""
    best: Mount | None = None
    for m in mounts:
        mp = m.mount_point.rstrip("/") or "/"
        if path == mp or mp == "/" or path.startswith(mp + "/"):
            if best is None or len(mp) >= len(best.mount_point.rstrip("/") or "/"):
                best = m
    return best


@dataclass(frozen=True)
class TcpConnection:
    """One established TCP socket of ``ss -tin``."""

    local: str
    peer: str
    mss: int | None = None
    pmtu: int | None = None
    advmss: int | None = None
    rcvmss: int | None = None
    process: str | None = None

    @property
    def peer_host(self) -> str:
        return _split_hostport(self.peer)[0]

    @property
    def peer_port(self) -> int | None:
        return _split_hostport(self.peer)[1]

    @property
    def local_port(self) -> int | None:
        return _split_hostport(self.local)[1]

    def to_dict(self) -> dict[str, object]:
        return {"local": self.local, "peer": self.peer, "mss": self.mss, "pmtu": self.pmtu,
                "advmss": self.advmss, "rcvmss": self.rcvmss, "process": self.process}


def _split_hostport(addr: str) -> tuple[str, int | None]:
    host, sep, port = addr.rpartition(":")
    if not sep:
        return addr, None
    host = host.strip("[]")
    if host.startswith("::ffff:"):
        host = host[len("::ffff:"):]
    try:
        return host, int(port)
    except ValueError:
        return host, None


_KV = {name: re.compile(rf"(?<![A-Za-z_]){name}:(\d+)") for name in ("mss", "pmtu", "advmss", "rcvmss")}
_ADDR = re.compile(r"^(?:ESTAB\s+|tcp\s+ESTAB\s+)?(\d+)\s+(\d+)\s+(\S+)\s+(\S+)(?:\s+(.*))?$")


def parse_ss(text: str) -> list[TcpConnection]:
    """``ss -tin [-p] [state established] …``: a socket line, then an indented info line.

    Works with and without the ``State`` column and the ``users:(…)`` process column. The
    header line and sockets without an info line are tolerated (mss stays ``None``).
    """
    conns: list[TcpConnection] = []
    current: dict | None = None

    def flush() -> None:
        if current is not None:
            conns.append(TcpConnection(**current))

    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith(("Recv-Q", "State", "Netid")):
            continue
        if line[0].isspace():
            if current is None:
                continue
            for name, rx in _KV.items():
                m = rx.search(line)
                if m and current.get(name) is None:
                    current[name] = int(m.group(1))
            continue
        m = _ADDR.match(line.strip())
        if not m:
            continue
        flush()
        proc = m.group(5)
        pm = re.search(r'users:\(\("([^"]+)"', proc or "")
        current = {"local": m.group(3), "peer": m.group(4), "process": pm.group(1) if pm else None}
    flush()
    return conns


@dataclass(frozen=True)
class Route:
    dev: str
    src: str | None = None
    mtu: int | None = None
    via: str | None = None


def parse_route_get(text: str) -> Route:
    """``ip -o route get ADDR``: ``ADDR [via GW] dev DEV src SRC … [mtu N]``."""
    words = text.replace("\\", " ").split()

    def after(key: str) -> str | None:
        return words[words.index(key) + 1] if key in words and words.index(key) + 1 < len(words) else None

    dev = after("dev")
    if not dev:
        raise ParseError(f"no route device in {text.strip()[:80]!r}")
    mtu = after("mtu")
    return Route(dev=dev, src=after("src"), via=after("via"), mtu=int(mtu) if mtu and mtu.isdigit() else None)


def parse_link_mtu(text: str) -> int:
    """``ip -o link show dev DEV``: ``2: eth0: <…> mtu 1500 qdisc …``."""
    m = re.search(r"\bmtu (\d+)", text)
    if not m:
        raise ParseError(f"no mtu in {text.strip()[:80]!r}")
    return int(m.group(1))


def sysctl_max(value: str) -> int:
    """The largest integer of a sysctl value (``4096 131072 33554432`` → 33554432)."""
    numbers = [int(x) for x in value.split() if x.lstrip("-").isdigit()]
    if not numbers:
        raise ParseError(f"sysctl value has no number: {value.strip()[:40]!r}")
    return max(numbers)
