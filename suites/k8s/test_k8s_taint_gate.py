"""The taint gate: GPU nodes join with the network-not-tuned taint, only the tuner tolerates it, and
no workload pod is bound to a node before the taint left it."""

import pytest

pytestmark = pytest.mark.k8s


def test_taint_gate_timeline(k8s_check):
    """K8S-TAINT-001 (live): every workload pod on a GPU node was bound after the taint left the node."""
    k8s_check("K8S-TAINT-001")


def test_only_tuner_tolerates_taint(k8s_check):
    """K8S-TAINT-002: no workload but the tuner tolerates the taint."""
    k8s_check("K8S-TAINT-002")
