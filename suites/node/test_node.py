"""Node tuning: "MTU 9000, TCP buffers of 16 MiB, and no NFS connection made before the MTU went up".

The node is --node (local://, netns://NAME, kubectl://NAMESPACE/POD, recorded://DIR), else the
embedded local NFS lab's node. The MTU is that of the interface that routes to the NFS server.
"""

import pytest

pytestmark = pytest.mark.node

BUFFERS = {
    "node.rmem_max": ("rmem_max", "net.core.rmem_max"),
    "node.wmem_max": ("wmem_max", "net.core.wmem_max"),
    "node.tcp_rmem_max": ("tcp_rmem_max", "max of net.ipv4.tcp_rmem"),
    "node.tcp_wmem_max": ("tcp_wmem_max", "max of net.ipv4.tcp_wmem"),
}


def _details(snap, **extra):
    return {"node": snap.node, "nfs_server": snap.nfs_server, "device": snap.device, "notes": snap.notes, **extra}


def test_mtu_of_the_interface_to_the_nfs_server(node_snapshot, claim):
    if node_snapshot.mtu is None:
        claim.inconclusive("node.mtu", node_snapshot.errors.get("mtu", "MTU not probed"), unit="B")
        return
    claim("node.mtu", [node_snapshot.mtu], unit="B", details=_details(node_snapshot))


@pytest.mark.parametrize("metric", list(BUFFERS))
def test_tcp_buffer_limits(node_snapshot, claim, metric):
    attr, source = BUFFERS[metric]
    value = node_snapshot.value(attr)
    if value is None:
        claim.inconclusive(metric, node_snapshot.errors.get(attr, f"{source} not probed"), unit="B")
        return
    claim(metric, [value], unit="B", details=_details(node_snapshot, source=source))


def test_no_nfs_connection_negotiated_before_tuning(node_snapshot, claim):
    """A connection opened at MTU 1500 keeps mss 1448 after the MTU goes to 9000, until a remount."""
    metric = "node.stale_nfs_connections"
    if metric in node_snapshot.errors:
        claim.inconclusive(metric, node_snapshot.errors[metric])
        return
    if not node_snapshot.connections:
        claim.inconclusive(metric, f"no established NFS connection on {node_snapshot.node} to judge "
                           "(nothing mounted from the server?)")
        return
    stale = node_snapshot.stale
    claim(metric, [len(stale)], details=_details(
        node_snapshot, connections=[c.to_dict() for c in node_snapshot.connections],
        stale=[s.line() for s in stale], remediation="remount the NFS share (or reboot the node) after the MTU change",
        explain="; ".join(s.line() for s in stale[:3]) + (f"; … {len(stale) - 3} more" if len(stale) > 3 else "")))
