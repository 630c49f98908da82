"""Node tuning: "MTU 9000, TCP buffers of 16 MiB, and no NFS connection made before the MTU went up".

The node is --node (local://, netns://NAME, kubectl://NAMESPACE/POD, recorded://DIR), else the
embedded local NFS lab's node. The MTU is that of the interface that routes to the NFS server.
One test per node metric of ``pytest_inference.node.probes.NODE_SETTINGS`` (the table the k8s
suite's K8S-NODE-001 judges too); the target's requirements judge them.
"""

import pytest

from pytest_inference.catalog import find
from pytest_inference.node.probes import NODE_SETTINGS

pytestmark = pytest.mark.node

REMOUNT = "remount the NFS share (or reboot the node) after the MTU change"


def _details(snap, setting):
    out = {"node": snap.node, "nfs_server": snap.nfs_server, "device": snap.device, "notes": snap.notes,
           "source": setting.source}
    if setting.field == "stale":
        # a connection opened at MTU 1500 keeps mss 1448 after the MTU goes to 9000, until a remount
        stale = snap.stale
        out.update(connections=[c.to_dict() for c in snap.connections], stale=[s.line() for s in stale],
                   remediation=REMOUNT,
                   explain="; ".join(s.line() for s in stale[:3]) + (f"; … {len(stale) - 3} more" if len(stale) > 3 else ""))
    return out


@pytest.mark.parametrize("metric", list(NODE_SETTINGS))
def test_node_setting(node_snapshot, claim, metric):
    """MTU to the NFS server, the four TCP buffer limits, and no NFS connection negotiated before tuning."""
    m = find(metric)
    unit = m.unit if m else None
    value, why = node_snapshot.reading(metric)
    if value is None:
        claim.inconclusive(metric, why, unit=unit)
        return
    claim(metric, [value], unit=unit, details=_details(node_snapshot, NODE_SETTINGS[metric]))
