"""Pure judgment of NFS connections against the path MTU: the MSS-lock race.

A TCP connection fixes its maximum segment size when it is opened.  An NFS mount made
before the node's MTU went from 1500 to 9000 keeps ``mss:1448`` for its whole life (``ss``
may even show ``pmtu:9000`` next to it), so it moves 1448-byte segments on a jumbo-frame
path until it is remounted.  A connection is *below the path MTU* when its MSS is smaller
than the current path MTU allows, less the largest TCP option block::

    allowed = path_mtu - IP header (20, IPv6 40) - TCP header (20)
    stale   = mss < allowed - 40      (40 bytes: the most TCP options can take)

Why: our ``advmss`` (what we announced at connect time) below the same bound means we
negotiated before tuning — remount; a normal ``advmss`` with a small ``mss`` means the
server announced a small MSS — its side is not tuned.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

from .parse import TcpConnection

TCP_HEADER = 20
TCP_OPTIONS_MAX = 40
NFS_PORT = 2049

REMOUNT = "negotiated before tuning — remount"
SERVER_SIDE = "the server announced a smaller MSS — its MTU is lower than this node's"


def mss_allowed(path_mtu: int, ipv6: bool = False) -> int:
    """The largest MSS a path MTU carries without TCP options."""
    return path_mtu - (40 if ipv6 else 20) - TCP_HEADER


@dataclass(frozen=True)
class StaleConnection:
    connection: TcpConnection
    path_mtu: int
    reason: str

    def to_dict(self) -> dict[str, object]:
        return {**self.connection.to_dict(), "path_mtu": self.path_mtu,
                "mss_allowed": mss_allowed(self.path_mtu, ":" in self.connection.peer_host), "reason": self.reason}

    def line(self) -> str:
        c = self.connection
        return (f"{c.local} -> {c.peer}: mss {c.mss} on a path MTU of {self.path_mtu} "
                f"(allows {mss_allowed(self.path_mtu, ':' in c.peer_host)}): {self.reason}")


def is_nfs_connection(conn: TcpConnection, server: str | None = None, port: int = NFS_PORT) -> bool:
    if conn.peer_port != port:
        return False
    return server is None or conn.peer_host == server


def stale_connections(connections: Iterable[TcpConnection],
                      path_mtu: int | Callable[[TcpConnection], int | None]) -> list[StaleConnection]:
    """The connections whose MSS is below what their current path MTU allows.

    ``path_mtu`` is one MTU for all, or a function giving each connection's (``None``: unknown,
    the connection is not judged).  A connection without an ``mss`` is not judged either.
    """
    out = []
    for conn in connections:
        mtu = path_mtu(conn) if callable(path_mtu) else path_mtu
        if mtu is None or conn.mss is None:
            continue
        ipv6 = ":" in conn.peer_host
        bound = mss_allowed(mtu, ipv6) - TCP_OPTIONS_MAX
        if conn.mss >= bound:
            continue
        ours_small = conn.advmss is None or conn.advmss < bound
        out.append(StaleConnection(conn, mtu, REMOUNT if ours_small else SERVER_SIDE))
    return out
