"""pytest-inference's own in-cluster manifests (``pytest-inference k8s manifests``): the plain Jobs,
the node DaemonSet and the Sonobuoy plugins run a pinned image with no API rights they do not use,
never turn a failure into success, tolerate only the taints the node probes need, and never retry a
run. A manifest set without pytest-inference's objects has nothing here to judge: these skip."""

import pytest

from pytest_inference.checks import tag
from pytest_inference.k8s.checks import CHECKS, applies

pytestmark = pytest.mark.k8s


@pytest.fixture
def incluster_check(request, k8s_check, k8s_observation):
    """``k8s_check`` for the in-cluster checks, skipping (with the reason) when there is nothing of
    pytest-inference's to judge."""

    def run(cid: str):
        tag(request, cid, CHECKS[cid].title)  # a skipped check still shows in the conformance summary
        why = applies(cid, k8s_observation)
        if why:
            pytest.skip(f"{cid}: {why}")
        return k8s_check(cid)

    return run


def test_suite_images_pinned(incluster_check):
    """K8S-SUITE-001: every container of the Jobs, the DaemonSet and the plugins runs a pinned image."""
    incluster_check("K8S-SUITE-001")


def test_suite_rbac_minimal(incluster_check):
    """K8S-SUITE-002: no ServiceAccount token unless a Role needs it; roles read named resources only."""
    incluster_check("K8S-SUITE-002")


def test_suite_does_not_mask_failures(incluster_check):
    """K8S-SUITE-003: no '|| true', '; true', 'set +e', or 'exit 0' after a failing command."""
    incluster_check("K8S-SUITE-003")


def test_node_daemonset_tolerates_only_what_it_needs(incluster_check):
    """K8S-SUITE-004: the node DaemonSet tolerates the GPU and not-tuned taints by key, and is not privileged."""
    incluster_check("K8S-SUITE-004")


def test_suite_jobs_do_not_retry(incluster_check):
    """K8S-SUITE-005: backoffLimit 0, restartPolicy Never."""
    incluster_check("K8S-SUITE-005")
