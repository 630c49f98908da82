"""Glue between pytest and the k8s checks: which mode a run is in, its settings, and how a
check's result becomes a claim (and, when it fails, a one-line test failure).

Modes: ``--manifests DIR`` is static; ``--kubeconfig FILE`` or ``--context NAME`` is live.
Neither: every k8s test skips and says how to choose (``pytest suites`` runs every suite, and a
kubeconfig of some other cluster is not taken by surprise).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from .. import checks
from .model import LIVE, STATIC, CheckResult, Observation, Settings

NO_MODE = ("the k8s suite needs a cluster or manifests: --kubeconfig FILE [--context NAME] judges a live cluster "
           "(read-only), --manifests DIR judges YAML without one (e.g. --manifests fixtures/k8s/reference)")

RUN_KEY: pytest.StashKey["K8sRun"] = pytest.StashKey()


class K8sUsage(Exception):
    """Bad k8s options or input; one line."""


@dataclass
class K8sRun:
    mode: str | None
    observation: Observation | None = None   # static: loaded at once
    cluster: Any = None                       # live: connected, not yet read
    skip_reason: str = ""
    notes: list[str] = field(default_factory=list)

    def header(self, config: pytest.Config) -> str:
        if self.mode == STATIC and self.observation is not None:
            return f"k8s: static, {self.observation.source} ({len(self.observation.objects)} objects)"
        if self.mode == LIVE:
            ns = config.getoption("k8s_namespace") or self.cluster.namespace
            mut = "MUTATIONS ALLOWED" if config.getoption("k8s_allow_mutations") else "read-only"
            return f"k8s: live, {self.cluster.describe()}, namespace {ns}, {mut}"
        return "k8s: no --kubeconfig/--context or --manifests: the k8s tests skip"


def resolve(config: pytest.Config) -> K8sRun:
    """The run's mode, loaded once per process (a bad option raises :class:`K8sUsage`)."""
    run = config.stash.get(RUN_KEY, None)
    if run is not None:
        return run
    opt = config.getoption
    manifests, kubeconfig, context = opt("k8s_manifests"), opt("k8s_kubeconfig"), opt("k8s_context")
    if manifests and (kubeconfig or context):
        raise K8sUsage("--manifests (static) and --kubeconfig/--context (live) exclude each other; choose one")
    if manifests:
        from .manifests import ManifestError, load_manifests

        try:
            run = K8sRun(STATIC, observation=load_manifests(manifests))
        except ManifestError as exc:
            raise K8sUsage(str(exc)) from None
    elif kubeconfig or context:
        from .observe import K8sError, connect

        try:
            run = K8sRun(LIVE, cluster=connect(kubeconfig, context, namespace=opt("k8s_namespace")))
        except K8sError as exc:
            raise K8sUsage(str(exc)) from None
    else:
        run = K8sRun(None, skip_reason=NO_MODE)
    config.stash[RUN_KEY] = run
    return run


def settings_from(config: pytest.Config, target: Any, run: K8sRun) -> Settings:
    """The k8s checks' settings: model load, margin and drain from the run's settings (option, else
    the target's [workload], else the default), the rest from the k8s options."""
    from ..session import SESSION_KEY
    from ..settings import RunSettings

    state = config.stash.get(SESSION_KEY, None)
    run_settings = state.settings if state is not None and state.target is target else RunSettings(config, target)
    opt = config.getoption
    load, src = run_settings.model_load_s, run_settings.source("model_load_s")
    margin, drain = run_settings.model_load_margin, run_settings.max_drain_s
    nreq = target.requirement("storage.nconnect")
    nconnect = int(nreq.threshold) if nreq is not None and nreq.op in (">=", ">") else 8
    if nreq is not None and nreq.op == ">":
        nconnect += 1
    ns = opt("k8s_namespace")
    if run.mode == LIVE and not ns:
        ns = run.cluster.namespace
    return Settings(
        namespace=ns, deployment=opt("k8s_deployment"), deployment_selector=opt("k8s_deployment_selector"),
        tuner_daemonset=opt("k8s_tuner"), tuner_namespace=opt("k8s_tuner_namespace"),
        taint_key=opt("k8s_taint_key"), gpu_node_selector=opt("k8s_gpu_node_selector"),
        model_load_s=load, model_load_source=src if load is not None else "", model_load_margin=margin,
        max_drain_s=drain, nconnect_min=nconnect,
    )


def with_namespace(s: Settings, ns: str | None) -> Settings:
    return replace(s, namespace=ns)


def report(result: CheckResult, claim: Any, *, mode: str) -> CheckResult:
    """Record a check's figure as a claim (:func:`pytest_inference.checks.report`), its mode a parameter."""
    return checks.report(result, claim, parameters={"check": result.id, "mode": mode})
