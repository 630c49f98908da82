"""The network tuner DaemonSet: it reaches every GPU node, may only get/patch nodes, and does not
turn a failed tuning into success."""

import pytest

pytestmark = pytest.mark.k8s


def test_tuner_covers_gpu_nodes(k8s_check):
    """K8S-TUNER-001: tolerates the taint and the GPU taints, hostNetwork; live: a running pod per GPU node."""
    k8s_check("K8S-TUNER-001")


def test_tuner_rbac_nodes_get_patch_only(k8s_check):
    """K8S-TUNER-002: the tuner's ServiceAccount may get and patch nodes, nothing else."""
    k8s_check("K8S-TUNER-002")


def test_tuner_does_not_mask_failures(k8s_check):
    """K8S-TUNER-003: no '|| true' after tuning or taint removal; multi-command scripts under set -e."""
    k8s_check("K8S-TUNER-003")
