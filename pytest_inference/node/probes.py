"""Node probes in the spirit of testinfra: ``node.sysctl(...)``, ``node.route_to(...)``,
``node.nfs_connections()``, ``node.mount_for(path)`` — each one command on the node's
backend (:mod:`.backends`), each parsed by a pure function (:mod:`.parse`).

:meth:`Node.snapshot` gathers everything the node suite judges in one pass.  A probe that
cannot run does not stop the others: its error is kept in ``snapshot.errors`` and the
claim that needed it says so.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from .backends import Backend, LocalBackend, NodeError
from .judge import NFS_PORT, StaleConnection, is_nfs_connection, stale_connections
from .parse import (Mount, Route, TcpConnection, mount_for, parse_link_mtu, parse_mountinfo, parse_route_get, parse_ss,
                    sysctl_max)


@dataclass(frozen=True)
class NodeSetting:
    """One node metric and where it comes from. ``field``: the :class:`NodeSnapshot` attribute;
    ``key`` (the metric's name after ``node.``): the snapshot's ``errors`` key and ``to_dict`` name;
    ``sysctl``: read as the largest value of this sysctl (None: a probe of its own)."""

    metric: str
    field: str
    source: str
    sysctl: str | None = None

    @property
    def key(self) -> str:
        return self.metric.split(".", 1)[1]


#: node metric -> what the probes read for it: the one table the probes, the node suite and the k8s
#: suite's K8S-NODE-001 share
NODE_SETTINGS: dict[str, NodeSetting] = {s.metric: s for s in (
    NodeSetting("node.mtu", "mtu", "MTU"),  # of the interface that routes to the NFS server
    NodeSetting("node.rmem_max", "rmem_max", "net.core.rmem_max", "net.core.rmem_max"),
    NodeSetting("node.wmem_max", "wmem_max", "net.core.wmem_max", "net.core.wmem_max"),
    NodeSetting("node.tcp_rmem_max", "tcp_rmem_max", "max of net.ipv4.tcp_rmem", "net.ipv4.tcp_rmem"),
    NodeSetting("node.tcp_wmem_max", "tcp_wmem_max", "max of net.ipv4.tcp_wmem", "net.ipv4.tcp_wmem"),
    NodeSetting("node.stale_nfs_connections", "stale", "NFS connections below the path MTU"),
)}


@dataclass
class NodeSnapshot:
    """What the node suite judges, from one node, at one moment."""

    node: str
    nfs_server: str | None
    route: Route | None = None
    mtu: int | None = None
    rmem_max: int | None = None
    wmem_max: int | None = None
    tcp_rmem_max: int | None = None
    tcp_wmem_max: int | None = None
    connections: list[TcpConnection] = field(default_factory=list)
    stale: list[StaleConnection] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def device(self) -> str | None:
        return self.route.dev if self.route else None

    def value(self, name: str) -> Any:
        return getattr(self, name)

    def reading(self, metric: str) -> tuple[int | None, str]:
        """``(value, "")`` of a :data:`NODE_SETTINGS` metric, or ``(None, why it could not be read)``.
        No NFS connection at all cannot show a stale one: unknown, not zero."""
        s = NODE_SETTINGS[metric]
        if s.key in self.errors:
            return None, self.errors[s.key]
        if s.field == "stale":
            if not self.connections:
                return None, (f"no established NFS connection on {self.node} to judge "
                              "(nothing mounted from the server?)")
            return len(self.stale), ""
        value = getattr(self, s.field)
        return (value, "") if value is not None else (None, f"{s.source} not probed")

    def to_dict(self) -> dict[str, Any]:
        return {
            "node": self.node, "nfs_server": self.nfs_server, "device": self.device, "mtu": self.mtu,
            "route_mtu": self.route.mtu if self.route else None,
            **{s.key: getattr(self, s.field) for s in NODE_SETTINGS.values() if s.sysctl},
            "nfs_connections": [c.to_dict() for c in self.connections],
            "stale_nfs_connections": [s.to_dict() for s in self.stale],
            "errors": dict(self.errors), "notes": list(self.notes),
        }


class Node:
    """Probes of one node through one backend."""

    def __init__(self, backend: Backend | None = None) -> None:
        self.backend = backend or LocalBackend()

    @property
    def name(self) -> str:
        return self.backend.name

    def sysctl(self, name: str) -> str:
        return self.backend.read("/proc/sys/" + name.replace(".", "/")).strip()

    def sysctl_max(self, name: str) -> int:
        return sysctl_max(self.sysctl(name))

    def route_to(self, addr: str) -> Route:
        return parse_route_get(self.backend.run(["ip", "-o", "route", "get", addr]))

    def interface_mtu(self, dev: str) -> int:
        # `ip link`, not /sys/class/net: sysfs shows the namespace it was mounted in, and
        # `nsenter --net` keeps the host's /sys
        return parse_link_mtu(self.backend.run(["ip", "-o", "link", "show", "dev", dev]))

    def path_mtu(self, addr: str) -> tuple[Route, int]:
        """The MTU a new connection to ``addr`` gets: the route's ``mtu`` if set, else its device's."""
        route = self.route_to(addr)
        mtu = self.interface_mtu(route.dev)
        return route, min(mtu, route.mtu) if route.mtu else mtu

    def tcp_connections(self, port: int = NFS_PORT) -> list[TcpConnection]:
        out = self.backend.run(["ss", "-tinp", "state", "established", f"( dport = :{port} )"])
        return parse_ss(out)

    def nfs_connections(self, server: str | None = None, port: int = NFS_PORT) -> list[TcpConnection]:
        return [c for c in self.tcp_connections(port) if is_nfs_connection(c, server, port)]

    def mounts(self) -> list[Mount]:
        return parse_mountinfo(self.backend.read("/proc/self/mountinfo"))

    def mount_for(self, path: str) -> Mount | None:
        if isinstance(self.backend, LocalBackend):
            path = os.path.realpath(path)
        return mount_for(self.mounts(), path)

    def snapshot(self, nfs_server: str | None = None) -> NodeSnapshot:
        snap = NodeSnapshot(node=self.name, nfs_server=nfs_server)
        route_target = nfs_server
        if route_target is None:
            snap.notes.append("no NFS server known (give --nfs-server, or a model path on NFS): "
                              "the MTU is that of the default route's interface")
            route_target = "0.0.0.0"
        try:
            snap.route, snap.mtu = self.path_mtu(route_target)
        except NodeError as exc:
            snap.errors[NODE_SETTINGS["node.mtu"].key] = str(exc)
        for s in NODE_SETTINGS.values():
            if s.sysctl:
                try:
                    setattr(snap, s.field, self.sysctl_max(s.sysctl))
                except (NodeError, ValueError) as exc:
                    snap.errors[s.key] = str(exc)
        try:
            snap.connections = self.nfs_connections(nfs_server)
        except NodeError as exc:
            snap.errors[NODE_SETTINGS["node.stale_nfs_connections"].key] = str(exc)
        else:
            cache: dict[str, int | None] = {}

            def mtu_of(conn: TcpConnection) -> int | None:
                host = conn.peer_host
                if host not in cache:
                    try:
                        cache[host] = self.path_mtu(host)[1]
                    except NodeError as exc:
                        snap.notes.append(f"path MTU to {host} unknown: {exc}")
                        cache[host] = None
                return cache[host]

            snap.stale = stale_connections(snap.connections, mtu_of)
        return snap
