"""The vLLM Deployment's HA choices (seed article B)."""

import pytest

pytestmark = pytest.mark.k8s


def test_rolling_update_strategy(k8s_check):
    """K8S-DEPLOY-001: RollingUpdate maxSurge 0 / maxUnavailable 1 (no spare GPU for a surge pod)."""
    k8s_check("K8S-DEPLOY-001")


def test_startup_budget_covers_model_load(k8s_check):
    """K8S-DEPLOY-002: startupProbe initialDelay + failureThreshold x period >= model load x margin."""
    k8s_check("K8S-DEPLOY-002")


def test_prestop_drains_queue(k8s_check):
    """K8S-DEPLOY-003: preStop polls running + waiting and never calls an unanswered /metrics drained."""
    k8s_check("K8S-DEPLOY-003")


def test_grace_period_outlasts_drain(k8s_check):
    """K8S-DEPLOY-004: terminationGracePeriodSeconds > the hook's sleep + the longest drain."""
    k8s_check("K8S-DEPLOY-004")


def test_liveness_spares_loading_pod(k8s_check):
    """K8S-DEPLOY-005: a liveness probe cannot kill a pod that is still loading the model."""
    k8s_check("K8S-DEPLOY-005")


def test_images_pinned(k8s_check):
    """K8S-DEPLOY-006: every image pinned to a version tag or digest."""
    k8s_check("K8S-DEPLOY-006")


def test_pod_disruption_budget(k8s_check):
    """K8S-DEPLOY-007: a PodDisruptionBudget allows one vLLM pod down at a time."""
    k8s_check("K8S-DEPLOY-007")
