"""The Kubernetes suite's fixtures: the run's mode, its settings, one observation per session.

    pytest suites/k8s --manifests fixtures/k8s/reference          # static: YAML, no cluster
    pytest suites/k8s --kubeconfig ~/.kube/config --namespace vllm  # live, read-only

Bad input (a missing or empty manifests folder, YAML that does not parse, a kubeconfig that does
not load, an unknown context) is one line: a usage error when this folder is on the command line,
else each k8s test fails with it. An unreachable API fails the tests with one line.
"""

from __future__ import annotations

import pytest

from pytest_inference.checks import tag
from pytest_inference.k8s.checks import CHECKS
from pytest_inference.k8s.model import STATIC
from pytest_inference.k8s.suite import K8sUsage, report, resolve, settings_from


def pytest_configure(config):
    try:
        resolve(config)
    except K8sUsage as exc:
        raise pytest.UsageError(str(exc)) from None


def pytest_report_header(config):
    try:
        return [resolve(config).header(config)]
    except K8sUsage:
        return None


@pytest.fixture(scope="session")
def k8s_run(request):
    """Which mode: static (``--manifests``), live (``--kubeconfig``/``--context``), or none (skip)."""
    try:
        run = resolve(request.config)
    except K8sUsage as exc:
        pytest.fail(str(exc), pytrace=False)
    if run.mode is None:
        pytest.skip(run.skip_reason)
    return run


@pytest.fixture(scope="session")
def k8s_settings(request, k8s_run, inference_target):
    """Names, selectors and budgets the checks use (options > target > defaults)."""
    return settings_from(request.config, inference_target, k8s_run)


@pytest.fixture(scope="session")
def _k8s_observed(request, k8s_run, k8s_settings, inference_session):
    """(observation, None) or (None, one-line error): read once, reported by every test that needs it."""
    if k8s_run.mode == STATIC:
        obs = k8s_run.observation
    else:
        from pytest_inference.k8s.observe import K8sError, observe

        try:
            obs = observe(k8s_run.cluster, k8s_settings, watch_s=request.config.getoption("k8s_watch_s"))
        except K8sError as exc:
            return None, str(exc)
    inference_session.add_metadata(k8s_mode=obs.mode, k8s_source=obs.source, k8s_namespace=obs.namespace)
    return obs, None


@pytest.fixture
def k8s_observation(_k8s_observed):
    """The manifests (static) or what the cluster shows (live, read-only), read once per session."""
    obs, error = _k8s_observed
    if error:
        pytest.fail(error, pytrace=False)
    return obs


@pytest.fixture
def k8s_check(request, claim, k8s_observation, k8s_settings):
    """``k8s_check("K8S-DEPLOY-001")``: run one check, report it as a claim, fail with one line."""

    def run(cid: str):
        spec = CHECKS[cid]
        tag(request, cid, spec.title)
        if k8s_observation.mode not in spec.modes:
            pytest.skip(f"{cid} needs a live cluster (--kubeconfig): manifests carry no cluster history or status")
        return report(spec.fn(k8s_observation, k8s_settings), claim, mode=k8s_observation.mode)

    return run
