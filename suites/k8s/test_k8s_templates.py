"""Manifests applied raw from a template break at run time: '$$' is the shell's PID."""

import pytest

pytestmark = pytest.mark.k8s


def test_no_unrendered_template_leftovers(k8s_check):
    """K8S-TEMPLATE-001: no ${…} outside shell scripts, no $$, no {{ }}."""
    k8s_check("K8S-TEMPLATE-001")
