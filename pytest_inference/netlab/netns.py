"""The lab's network: two network namespaces joined by a veth pair, their addresses, MTU, offloads
and per-namespace TCP buffer sysctls (``ip``, ``ethtool``, ``nsenter``)."""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Callable, Mapping

from .common import DEFAULT_TCP_RMEM, DEFAULT_TCP_WMEM, MiB, LabError, LabUnavailable, run

__all__ = ["netns_exists", "netns_pids", "check_namespaces", "create", "set_mtu", "ns_sysctl", "fresh_tcp_defaults"]


def netns_exists(name: str) -> bool:
    return os.path.exists(f"/run/netns/{name}")


def netns_pids(name: str) -> list[int]:
    """Processes in namespace ``name`` (never this one)."""
    if not netns_exists(name):
        return []
    cp = run(["ip", "netns", "pids", name], check=False, timeout=10)
    return [int(x) for x in cp.stdout.split() if x.isdigit() and int(x) != os.getpid()]


_available: tuple[bool, str] | None = None
_available_mu = threading.Lock()


def check_namespaces() -> None:
    """Raise :class:`LabUnavailable` unless ``ip netns add`` / ``exec`` work here (tried once per process)."""
    global _available
    with _available_mu:
        if _available is None:
            probe = f"pti-probe-{os.getpid()}-{secrets.token_hex(2)}"
            try:
                cp = run(["ip", "netns", "add", probe], check=False, timeout=10)
                if cp.returncode != 0:
                    _available = (False, f"`ip netns add` does not work here: {cp.stderr.strip()[:200]}")
                else:
                    cp = run(["ip", "netns", "exec", probe, "true"], check=False, timeout=10)
                    _available = ((True, "") if cp.returncode == 0 else
                                  (False, f"`ip netns exec` does not work here: {cp.stderr.strip()[:200]}"))
            except LabError as e:
                _available = (False, f"ip netns unusable: {e}")
            finally:
                if netns_exists(probe):
                    run(["ip", "netns", "del", probe], check=False)
        ok, why = _available
    if not ok:
        raise LabUnavailable(why)


def create(namespaces: list[str], on_failed: Callable[[int], None], devices: tuple[str, str],
           addrs: tuple[str, str], offloads: bool) -> None:
    """Create the namespaces ``namespaces`` (server, node), then the veth pair ``devices`` between
    them with ``addrs`` (/24), links up, offloads off unless ``offloads``. ``on_failed(i)`` is called
    when namespace ``i`` could not be made: it and the ones after it are not ours to delete (they may
    be another lab's)."""
    for i, ns in enumerate(namespaces):
        cp = run(["ip", "netns", "add", ns], check=False)
        if cp.returncode != 0:
            on_failed(i)
            raise LabError(f"ip netns add {ns} failed: {cp.stderr.strip()}")
    (srv_ns, node_ns), (srv_dev, node_dev) = namespaces, devices
    run(["ip", "link", "add", srv_dev, "netns", srv_ns, "type", "veth", "peer", "name", node_dev, "netns", node_ns])
    for ns, dev, addr in ((srv_ns, srv_dev, addrs[0]), (node_ns, node_dev, addrs[1])):
        run(["ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", dev])
        run(["ip", "-n", ns, "link", "set", "lo", "up"])
        run(["ip", "-n", ns, "link", "set", dev, "up"])
        if not offloads:
            run(["ip", "netns", "exec", ns, "ethtool", "-K", dev, "tso", "off", "gso", "off", "gro", "off"])


def fresh_tcp_defaults(ns: str) -> dict[str, str]:
    """The untuned ``tcp_rmem``/``tcp_wmem`` for namespace ``ns``: its fresh values, or the kernel's
    classic defaults when the fresh max is ≥ 16 MiB (computed from memory on this kernel: it would
    pass a "≥ 16 MiB" claim)."""
    cur = run(["ip", "netns", "exec", ns, "cat", "/proc/sys/net/ipv4/tcp_rmem",
               "/proc/sys/net/ipv4/tcp_wmem"]).stdout.splitlines()
    fresh = {"net.ipv4.tcp_rmem": " ".join(cur[0].split()), "net.ipv4.tcp_wmem": " ".join(cur[1].split())}
    return {k: (v if int(v.split()[-1]) < 16 * MiB else default)
            for (k, v), default in zip(fresh.items(), (DEFAULT_TCP_RMEM, DEFAULT_TCP_WMEM))}


def ns_sysctl(ns: str, values: Mapping[str, str]) -> None:
    run(["ip", "netns", "exec", ns, "sysctl", "-q", "-w"] + [f"{k}={v}" for k, v in values.items()])


def set_mtu(links: list[tuple[str, str]], mtu: int) -> None:
    """Set the MTU of each (namespace, device)."""
    for ns, dev in links:
        run(["ip", "-n", ns, "link", "set", "dev", dev, "mtu", str(int(mtu))])
