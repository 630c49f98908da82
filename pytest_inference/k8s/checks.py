"""The pure checks of the Kubernetes suite: observation + settings in, :class:`CheckResult` out —
a measured figure and the findings behind it, never a verdict.

Each check's metadata (title, metric, default requirement, remediation, modes) is data in
``pytest_inference/catalog/checks.toml``; ``@check("K8S-…")`` takes only the id. The verdict is
:func:`pytest_inference.claims.judge`'s, through the claim recorder (:func:`.suite.report`), against
the target's requirement for the metric, else the catalog's default (e.g. ``== 0``), so a target
without a requirement still cannot pass a defective deployment.

A check whose inputs are missing (the object is not in view, RBAC forbids reading it, the cluster
keeps no history) measures nothing and says why: the claim is **inconclusive** — never a pass.
Counting metrics (``k8s.*_defects``, ``k8s.unpinned_images`` …) count findings; headroom metrics
are in seconds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from ..catalog.checks import CheckSpec
from ..catalog.checks import check as check_spec
from ..catalog.checks import checks as catalog_checks
from ..checks import stamp
from ..checks import unimplemented as shared_unimplemented
from . import PART_OF as SUITE_LABEL
from .inventory import (find_deployment, find_tuner, gpu_nodes, tolerates, toleration_of, tuner_pods, workloads)
from .model import (LIVE, STATIC, WORKLOAD_KINDS, CheckResult, Observation, Settings, containers, image_pinned,
                    key_of, label_selector_matches, labels_of, name_of, namespace_of, parse_time, pod_spec,
                    pod_template_labels)
from .shell import (drain_hook_findings, masked_failures, pre_loop_sleep, script_index, scripts, statements,
                    stops_on_error, unguarded_commands)
from .timeline import binding_evidence, judge_timeline, node_evidence

BOTH = (STATIC, LIVE)


@dataclass(frozen=True)
class Check:
    """An implemented check: its catalog entry and the function. A static/live check's ``fn`` takes
    (observation, settings); a mutating check's takes what its mutation gathered."""

    spec: CheckSpec
    fn: Callable[..., CheckResult]

    id = property(lambda self: self.spec.id)
    title = property(lambda self: self.spec.title)
    metric = property(lambda self: self.spec.metric)
    modes = property(lambda self: self.spec.modes)
    mutates = property(lambda self: self.spec.mutates)


CHECKS: dict[str, Check] = {}


def check(cid: str):
    """Register the implementation of catalog check ``cid`` (its metadata comes from the catalog)."""
    spec = check_spec(cid)

    def deco(fn):
        def guarded(*args: Any) -> CheckResult:
            # the loader refuses fields of the wrong type (shape.py); a value of the right type
            # that still makes no sense here (an unrendered "${x}" where a number belongs) is
            # not measured, with one line, never a traceback — and never a pass
            try:
                return stamp(spec, fn(*args))
            except (TypeError, ValueError, AttributeError, KeyError, IndexError, ArithmeticError) as exc:
                text = str(exc).splitlines()[0][:160] if str(exc) else ""
                return stamp(spec, _unsure(f"an object has a value this check cannot read "
                                            f"({type(exc).__name__}: {text})"))

        guarded.__name__, guarded.__doc__, guarded.__wrapped__ = fn.__name__, fn.__doc__, fn
        guarded.spec = spec  # type: ignore[attr-defined]
        if cid in CHECKS:
            raise RuntimeError(f"check {cid} is implemented twice")
        CHECKS[cid] = Check(spec, guarded)
        return guarded
    return deco


def run_check(cid: str, obs: Observation, s: Settings) -> CheckResult:
    return CHECKS[cid].fn(obs, s)


def run_all(obs: Observation, s: Settings) -> dict[str, CheckResult]:
    """Every non-mutating check that applies to the observation's mode and has something to judge in
    it (:func:`applies`: the in-cluster checks only where pytest-inference's own objects are)."""
    return {cid: c.fn(obs, s) for cid, c in CHECKS.items()
            if obs.mode in c.modes and not c.mutates and applies(cid, obs) is None}


def cannot_measure(cid: str, reason: str, **kw: Any) -> CheckResult:
    """Check ``cid``'s result when it could not measure (e.g. nothing to scale): inconclusive, ``reason``."""
    return stamp(check_spec(cid), _unsure(reason, **kw))


def unimplemented() -> tuple[list[str], list[str]]:
    """(catalog ids without an implementation, implemented ids without a catalog entry)."""
    return shared_unimplemented(catalog_checks(), CHECKS)


# --------------------------------------------------------------------------- result helpers


def _res(measured: float | None, *, actual: str, expected: str = "", remediation: str = "", findings=(),
         reason: str = "", subject: str = "") -> CheckResult:
    """A result; id, title, metric and unit are stamped from the catalog by :func:`check`."""
    return CheckResult(id="", title="", metric="", measured=measured, expected=expected, actual=actual,
                       remediation=remediation, findings=list(findings), reason=reason, subject=subject)


def _count(findings: list[dict[str, Any]], *, ok: str, expected: str = "", remediation: str = "",
           subject: str = "") -> CheckResult:
    """A counting check: the number of findings, listing the first ones."""
    if not findings:
        return _res(0, expected=expected, actual=ok, remediation=remediation, subject=subject)
    shown = "; ".join(f["text"] for f in findings[:3])
    more = f" (+{len(findings) - 3} more)" if len(findings) > 3 else ""
    return _res(len(findings), expected=expected, actual=f"{len(findings)} found: {shown}{more}",
                remediation=remediation, findings=findings, subject=subject)


def _unsure(reason: str, *, expected: str = "", remediation: str = "", subject: str = "",
            findings=()) -> CheckResult:
    """Nothing measured: the claim is inconclusive with ``reason``."""
    return _res(None, expected=expected, actual="not judged", remediation=remediation, reason=reason,
                subject=subject, findings=findings)


def _need(obs: Observation, *kinds: str) -> str | None:
    """Why the observation cannot answer (a kind it could not read), else None."""
    for k in kinds:
        if k in obs.unavailable:
            return f"could not read {k} objects: {obs.unavailable[k]}"
    return None


def _ref(obs: Observation, obj: dict[str, Any]) -> str:
    return obs.where(obj)


def _vllm_container(dep: dict[str, Any]) -> dict[str, Any] | None:
    cs = [c for _, c in containers(pod_spec(dep), init=False)]
    for c in cs:
        text = " ".join([str(c.get("image", ""))] + [str(x) for x in (c.get("command") or []) + (c.get("args") or [])])
        if "vllm" in text.lower():
            return c
    return cs[0] if cs else None


def _probe_window(probe: dict[str, Any]) -> float:
    """Seconds the kubelet gives a probe before it acts: initialDelay + failureThreshold x period."""
    return (float(probe.get("initialDelaySeconds") or 0)
            + float(probe.get("failureThreshold") or 3) * float(probe.get("periodSeconds") or 10))


def _measured_load_s(obs: Observation, dep: dict[str, Any]) -> tuple[float | None, str]:
    """Longest container start -> Ready among the Deployment's pods (live), with the pod."""
    if not obs.live:
        return None, ""
    sel = (dep.get("spec") or {}).get("selector")
    c = _vllm_container(dep)
    best: tuple[float | None, str] = (None, "")
    for p in obs.of_kind("Pod"):
        if namespace_of(p) != namespace_of(dep) or not label_selector_matches(sel, labels_of(p)):
            continue
        st = p.get("status") or {}
        ready = next((parse_time(x.get("lastTransitionTime")) for x in st.get("conditions") or []
                      if x.get("type") == "Ready" and x.get("status") == "True"), None)
        for cs in st.get("containerStatuses") or []:
            if c is not None and cs.get("name") != c.get("name"):
                continue
            started = parse_time(((cs.get("state") or {}).get("running") or {}).get("startedAt"))
            if ready and started and ready >= started:
                v = (ready - started).total_seconds()
                if best[0] is None or v > best[0]:
                    best = (v, name_of(p))
    return best


def _load(obs: Observation, s: Settings, dep: dict[str, Any]) -> tuple[float | None, str]:
    measured, pod = _measured_load_s(obs, dep)
    if s.model_load_s is not None:
        src = s.model_load_source or "configured"
        if measured is not None:
            src += f"; measured {measured:.0f} s on pod {pod}"
        return s.model_load_s, src
    if measured is not None:
        return measured, f"measured on pod {pod} (container start -> Ready)"
    return None, ""


# --------------------------------------------------------------------------- taint gate


@check("K8S-TAINT-001")
def taint_gate_timeline(obs: Observation, s: Settings) -> CheckResult:
    expected = f"every workload pod on a GPU node was bound after {s.taint_key} left the node"
    fix = (f"GPU nodes must join with {s.taint_key}:NoSchedule, only the tuner may tolerate it, and the tuner "
           "must remove it only after tuning succeeded; then restart the pods bound too early (their NFS mounts "
           "keep the untuned MSS)")
    why = _need(obs, "Node", "Pod")
    if why:
        return _unsure(why, expected=expected)
    tuner, _ = find_tuner(obs, s)
    nodes = node_evidence(obs, s, tuner)
    if not nodes:
        return _unsure("no GPU node in view (none matches --gpu-node-selector, has nvidia.com/gpu or "
                       f"amd.com/gpu capacity, or carries {s.taint_key})", expected=expected)
    res = judge_timeline(nodes, binding_evidence(obs, s, tuner, nodes))
    findings = [dict(p.to_dict(), text=p.text) for p in res.pairs if p.kind != "ok"]
    if not res.pairs:
        ns = f" of namespace {s.namespace}" if s.namespace else ""
        return _unsure(f"no workload pod{ns} is bound to one of the {len(nodes)} GPU nodes: nothing to judge",
                       expected=expected)
    if res.violations:
        v = res.violations
        shown = "; ".join(p.text for p in v[:3]) + (f" (+{len(v) - 3} more)" if len(v) > 3 else "")
        return _res(len(v), expected=expected, actual=f"{len(v)} pod(s) bound before the gate opened: "
                    f"{shown}", remediation=fix, findings=findings)
    if res.unknown:
        u = res.unknown
        return _unsure(f"{len(u)} of {len(res.pairs)} bindings cannot be judged: {u[0].text}",
                       expected=expected, remediation=fix, findings=findings)
    return _res(0, expected=expected, remediation=fix, findings=[p.to_dict() for p in res.pairs],
                actual=f"{len(res.pairs)} binding(s) on {len(nodes)} GPU node(s), all after the taint left")


@check("K8S-TAINT-002")
def only_tuner_tolerates(obs: Observation, s: Settings) -> CheckResult:
    tuner, _ = find_tuner(obs, s)
    findings = []
    for w in workloads(obs, s):
        if tuner is not None and w is tuner:
            continue
        spec = pod_spec(w)
        if tolerates(spec, s.taint_key):
            t = toleration_of(spec, s.taint_key) or {}
            how = "tolerates every taint (operator Exists, no key)" if not t.get("key") else f"tolerates {s.taint_key}"
            findings.append({"object": _ref(obs, w), "toleration": t, "text": f"{_ref(obs, w)} {how}"})
    return _count(findings, expected=f"no workload but the tuner tolerates {s.taint_key}",
                  ok="no workload but the tuner tolerates the taint",
                  remediation=f"remove the {s.taint_key} toleration (and any keyless 'operator: Exists') from "
                  "every workload: only the network tuner may run on an untuned node")


# --------------------------------------------------------------------------- tuner


@check("K8S-TUNER-001")
def tuner_coverage(obs: Observation, s: Settings) -> CheckResult:
    expected = (f"a tuner DaemonSet with hostNetwork that tolerates {s.taint_key} and the GPU taints"
                + (", with a running pod on every GPU node" if obs.live else ""))
    fix = (f"deploy the tuner as a DaemonSet with hostNetwork: true, tolerations for {s.taint_key} and every taint "
           "the GPU nodes carry (e.g. nvidia.com/gpu), and node affinity to the GPU pool")
    why = _need(obs, "DaemonSet")
    if why:
        return _unsure(why, expected=expected)
    tuner, reason = find_tuner(obs, s)
    if tuner is None:
        return _res(1, expected=expected, actual=reason, remediation=fix,
                    findings=[{"text": reason}])
    spec = pod_spec(tuner) or {}
    findings = []
    ref = _ref(obs, tuner)
    if not any(t.get("key") == s.taint_key for t in spec.get("tolerations") or []) and not tolerates(spec, s.taint_key):
        findings.append({"text": f"{ref} does not tolerate {s.taint_key}: it cannot start on a node that joins "
                         "with the taint, so the node is never tuned and never opened"})
    dep, _ = find_deployment(obs, s)
    for t in (pod_spec(dep) or {}).get("tolerations") or [] if dep else []:
        key = t.get("key")
        if key and key != s.taint_key and t.get("effect") in (None, "", "NoSchedule") and not tolerates(spec, key):
            findings.append({"text": f"{ref} does not tolerate {key}, which the vLLM pods tolerate (the GPU nodes "
                             "carry it)"})
    if not spec.get("hostNetwork"):
        findings.append({"text": f"{ref} lacks hostNetwork: true, so its sysctls and MTU change the pod's network "
                         "namespace, not the node's"})
    if obs.live:
        if "Pod" in obs.unavailable:
            return _unsure(_need(obs, "Pod") or "", expected=expected, findings=findings)
        by_node = {}
        for p in tuner_pods(obs, tuner):
            by_node.setdefault((p.get("spec") or {}).get("nodeName"), []).append(p)
        gpus = gpu_nodes(obs, s)
        if not gpus:
            return _unsure("no GPU node in view to cover", expected=expected, findings=findings)
        for n in gpus:
            pods = by_node.get(name_of(n), [])
            running = [p for p in pods if (p.get("status") or {}).get("phase") == "Running"]
            if not running:
                state = ", ".join(f"{name_of(p)} {(p.get('status') or {}).get('phase', '?')}" for p in pods) or "no pod"
                findings.append({"node": name_of(n), "text": f"GPU node {name_of(n)} has no running tuner pod ({state})"})
    return _count(findings, expected=expected, remediation=fix, subject=ref,
                  ok="the tuner tolerates the taint, uses hostNetwork" + (" and runs on every GPU node" if obs.live else ""))


_BUILTIN_ROLES = {"cluster-admin", "admin", "edit", "view"}


def _rule_excess(rule: dict[str, Any]) -> list[str]:
    out = []
    if rule.get("nonResourceURLs"):
        out.append(f"nonResourceURLs {rule['nonResourceURLs']}")
    groups = set(rule.get("apiGroups") or [])
    res = set(rule.get("resources") or [])
    verbs = set(rule.get("verbs") or [])
    if groups - {""}:
        out.append(f"apiGroups {sorted(groups - {''})}")
    if res - {"nodes"}:
        out.append(f"resources {sorted(res - {'nodes'})}")
    if verbs - {"get", "patch"}:
        out.append(f"verbs {sorted(verbs - {'get', 'patch'})}")
    return out


def _bindings_of(obs: Observation, accounts: set[tuple[str, str]],
                 also: Callable[[dict[str, Any]], bool] = lambda b: False):
    """Each ClusterRoleBinding/RoleBinding binding one of ``accounts`` (``(namespace, name)`` of
    ServiceAccounts), or that ``also`` picks: ``(binding, its name for a finding, the role it grants
    (None: not in view), its roleRef, which of accounts it binds)``."""
    for b in obs.of_kind("ClusterRoleBinding", "RoleBinding"):
        bns = namespace_of(b) or "default"
        subj = {((x.get("namespace") or bns), x.get("name")) for x in b.get("subjects") or []
                if x.get("kind") == "ServiceAccount"}
        if not (subj & accounts) and not also(b):
            continue
        rr = b.get("roleRef") or {}
        role = obs.get(rr.get("kind", ""), rr.get("name", ""), None if rr.get("kind") == "ClusterRole" else bns)
        yield b, f"{b.get('kind')} {name_of(b)}", role, rr, subj & accounts


def _builtin_role(rr: dict[str, Any]) -> bool:
    """A roleRef to one of Kubernetes' own roles (cluster-admin, admin, edit, view, system:...)."""
    return rr.get("name") in _BUILTIN_ROLES or str(rr.get("name", "")).startswith("system:")


@check("K8S-TUNER-002")
def tuner_rbac(obs: Observation, s: Settings) -> CheckResult:
    expected = "the tuner's ServiceAccount may get and patch nodes, and nothing else"
    tuner, reason = find_tuner(obs, s)
    if tuner is None:
        return _unsure(f"no tuner to judge ({reason})", expected=expected)
    why = _need(obs, "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")
    if why:
        return _unsure(why, expected=expected)
    ns = namespace_of(tuner) or "default"
    sa = (pod_spec(tuner) or {}).get("serviceAccountName") or (pod_spec(tuner) or {}).get("serviceAccount") or "default"
    findings, unknown, grants_patch = [], [], False
    for b, bref, role, rr, _ in _bindings_of(obs, {(ns, sa)}):
        if b.get("kind") == "RoleBinding" and (namespace_of(b) or "default") != ns:
            continue
        if role is None:
            if _builtin_role(rr):
                findings.append({"binding": bref, "text": f"{bref} grants the built-in {rr.get('kind')} "
                                 f"{rr.get('name')}: far beyond nodes get/patch"})
            else:
                unknown.append(f"{bref} refers to {rr.get('kind')} {rr.get('name')}, which is not in view")
            continue
        for i, rule in enumerate(role.get("rules") or []):
            excess = _rule_excess(rule)
            if "*" in str(rule.get("verbs")) or "*" in str(rule.get("resources")) or "*" in str(rule.get("apiGroups")):
                excess = excess or ["wildcard"]
            if excess:
                findings.append({"role": _ref(obs, role), "rule": rule,
                                 "text": f"{_ref(obs, role)} rule {i + 1} adds {', '.join(excess)}"})
            if "nodes" in (rule.get("resources") or []) and {"patch", "*"} & set(rule.get("verbs") or []):
                grants_patch = True
    subject = f"ServiceAccount {ns}/{sa}"
    if findings:
        return _count(findings, expected=expected, ok="", subject=subject)
    if unknown:
        return _unsure("; ".join(unknown), expected=expected, subject=subject)
    if not grants_patch:
        text = f"nothing grants {subject} patch on nodes: the tuner cannot remove the taint"
        return _res(1, expected=expected, actual=text, subject=subject,
                    findings=[{"text": text}])
    return _count([], expected=expected, subject=subject, ok="nodes get/patch only")


@check("K8S-TUNER-003")
def tuner_masking(obs: Observation, s: Settings) -> CheckResult:
    expected = "every tuning step and the taint removal fail the pod when they fail (no '|| true', set -e)"
    tuner, reason = find_tuner(obs, s)
    if tuner is None:
        return _unsure(f"no tuner to judge ({reason})", expected=expected)
    findings = []
    for field_, c in containers(pod_spec(tuner)):
        for where, script, argv, _ in scripts(c):
            for n, line in masked_failures(script):
                findings.append({"container": c.get("name"), "line": n,
                                 "text": f"{field_[:-1]} {c.get('name')} {where} line {n}: '{line}' masks a failure"})
            if unguarded_commands(script, argv):
                findings.append({"container": c.get("name"),
                                 "text": f"{field_[:-1]} {c.get('name')} {where} runs several commands without "
                                 "'set -e': every failure but the last is ignored"})
        for where, argv in ((w, a) for w, a, _ in _plain_exec(c)):
            if "||" in argv:
                findings.append({"container": c.get("name"), "text": f"{c.get('name')} {where}: '||' in argv"})
    return _count(findings, expected=expected, ok="no masked failures",
                  subject=_ref(obs, tuner))


def _plain_exec(c: dict[str, Any]) -> Iterator[tuple[str, list[Any], Any]]:
    from .shell import exec_points

    for where, argv, paths in exec_points(c):
        if script_index(argv) is None:
            yield where, argv, paths


# --------------------------------------------------------------------------- vLLM Deployment


def _deployment_or_unsure(obs: Observation, s: Settings, expected: str, *also: str):
    """The vLLM Deployment, or an inconclusive result: no Deployment visible, none identified, or
    one of the ``also`` kinds the check needs beside it not readable."""
    why = _need(obs, "Deployment")
    if why:
        return None, _unsure(why, expected=expected)
    dep, reason = find_deployment(obs, s)
    if dep is None:
        return None, _unsure(reason + " (name it with --vllm-deployment or --vllm-selector)", expected=expected)
    why = _need(obs, *also) if also else None
    if why:
        return None, _unsure(why, expected=expected, subject=_ref(obs, dep))
    return dep, None


@check("K8S-DEPLOY-001")
def rollout_strategy(obs: Observation, s: Settings) -> CheckResult:
    expected = "strategy RollingUpdate with maxSurge 0 and maxUnavailable 1"
    dep, unsure = _deployment_or_unsure(obs, s, expected)
    if unsure:
        return unsure
    st = (dep.get("spec") or {}).get("strategy") or {}
    kind = st.get("type", "RollingUpdate")
    ru = st.get("rollingUpdate") or {}
    surge, unavail = ru.get("maxSurge", "25%"), ru.get("maxUnavailable", "25%")
    findings = []
    if kind != "RollingUpdate":
        findings.append({"text": f"strategy {kind}: every replica stops at once"})
    else:
        if str(surge) not in ("0", "0%"):
            findings.append({"text": f"maxSurge {surge}" + (" (the default)" if "maxSurge" not in ru else "")
                             + ": a surge pod needs a spare GPU node and stays Pending"})
        if str(unavail) != "1":
            findings.append({"text": f"maxUnavailable {unavail}" + (" (the default)" if "maxUnavailable" not in ru else "")})
    return _count(findings, expected=expected, ok="RollingUpdate maxSurge 0, maxUnavailable 1",
                  subject=_ref(obs, dep))


@check("K8S-DEPLOY-002")
def startup_budget(obs: Observation, s: Settings) -> CheckResult:
    dep, unsure = _deployment_or_unsure(obs, s, "startup budget >= model load x margin")
    if unsure:
        return unsure
    load, src = _load(obs, s, dep)
    margin = s.model_load_margin
    expected = (f"startupProbe initialDelaySeconds + failureThreshold x periodSeconds >= model load "
                f"{'%.0f s' % load if load is not None else '?'} x {margin:g}")
    c = _vllm_container(dep) or {}
    probe = c.get("startupProbe")
    if load is None:
        return _unsure("no model-load time: pass --model-load-s (or set model_load_s in the target), or run "
                       "live against Ready vLLM pods to measure it", expected=expected, subject=_ref(obs, dep))
    need = load * margin
    fix = (f"raise startupProbe failureThreshold (or periodSeconds) so the budget reaches {need:.0f} s; e.g. "
           f"initialDelaySeconds 120 + failureThreshold {max(1, int(-(-(need - 120) // 10)))} x periodSeconds 10")
    if not probe:
        return _res(-need, expected=expected, remediation=fix, subject=_ref(obs, dep),
                    actual=f"container {c.get('name')} has no startupProbe (budget 0 s) for a {load:.0f} s load "
                    f"({src})", findings=[{"text": "no startupProbe", "load_s": load, "load_source": src}])
    budget = _probe_window(probe)
    head = budget - need
    actual = (f"budget {probe.get('initialDelaySeconds') or 0} + {probe.get('failureThreshold') or 3} x "
              f"{probe.get('periodSeconds') or 10} = {budget:.0f} s for a {load:.0f} s load ({src}) x {margin:g} "
              f"= {need:.0f} s: headroom {head:+.0f} s")
    details = [{"budget_s": budget, "load_s": load, "load_source": src, "margin": margin, "text": actual}]
    return _res(head, expected=expected, actual=actual, remediation=fix,
                subject=_ref(obs, dep), findings=details)


def _prestop_script(c: dict[str, Any]) -> tuple[str | None, str]:
    """(script, '') of the container's preStop exec hook, else (None, what is there instead)."""
    pre = ((c.get("lifecycle") or {}).get("preStop")) or {}
    if not pre:
        return None, "no preStop hook"
    ex = (pre.get("exec") or {}).get("command")
    if not ex:
        kind = next(iter(pre), "?")
        return None, f"preStop is {kind}, not an exec hook that polls the queue"
    i = script_index(ex)
    if i is None:
        return None, f"preStop runs {' '.join(map(str, ex))[:80]}, whose contents the spec does not show"
    return str(ex[i]), ""


@check("K8S-DEPLOY-003")
def prestop_drain(obs: Observation, s: Settings) -> CheckResult:
    expected = ("a preStop exec hook that polls /metrics until vllm:num_requests_running and "
                "vllm:num_requests_waiting are 0, and never calls an unanswered /metrics drained")
    dep, unsure = _deployment_or_unsure(obs, s, expected)
    if unsure:
        return unsure
    c = _vllm_container(dep) or {}
    script, other = _prestop_script(c)
    if script is None:
        if "does not show" in other:
            return _unsure(other, expected=expected, subject=_ref(obs, dep))
        return _count([{"text": other}], expected=expected, ok="", subject=_ref(obs, dep))
    findings = [{"text": f"preStop {t}"} for t in drain_hook_findings(script)]
    return _count(findings, expected=expected, subject=_ref(obs, dep),
                  ok="the preStop hook polls running + waiting and checks the fetch")


@check("K8S-DEPLOY-004")
def grace_period(obs: Observation, s: Settings) -> CheckResult:
    dep, unsure = _deployment_or_unsure(obs, s, "terminationGracePeriodSeconds > drain")
    if unsure:
        return unsure
    c = _vllm_container(dep) or {}
    script, _ = _prestop_script(c)
    pre = pre_loop_sleep(script) if script else 0.0
    drain = pre + s.max_drain_s
    spec = pod_spec(dep) or {}
    grace = float(spec.get("terminationGracePeriodSeconds", 30))
    head = grace - drain
    expected = f"terminationGracePeriodSeconds > {drain:.0f} s (hook sleep {pre:.0f} s + longest drain {s.max_drain_s:.0f} s)"
    actual = (f"terminationGracePeriodSeconds {grace:.0f}" + (" (the default)" if "terminationGracePeriodSeconds" not in spec else "")
              + f" vs drain {drain:.0f} s: headroom {head:+.0f} s")
    fix = (f"set terminationGracePeriodSeconds to at least {drain + 10:.0f}: the kubelet kills the pod when it ends, "
           "drain or not")
    return _res(head, expected=expected, actual=actual, remediation=fix,
                subject=_ref(obs, dep), findings=[{"grace_s": grace, "pre_sleep_s": pre, "max_drain_s": s.max_drain_s,
                                                   "text": actual}])


@check("K8S-DEPLOY-005")
def liveness_during_load(obs: Observation, s: Settings) -> CheckResult:
    expected = "a livenessProbe only behind a startupProbe (or a liveness window longer than the load)"
    dep, unsure = _deployment_or_unsure(obs, s, expected)
    if unsure:
        return unsure
    findings, unknown = [], []
    load, src = _load(obs, s, dep)
    for _, c in containers(pod_spec(dep), init=False):
        live = c.get("livenessProbe")
        if not live or c.get("startupProbe"):
            continue
        window = _probe_window(live)
        if load is None:
            unknown.append(f"container {c.get('name')}: liveness acts after {window:.0f} s and no model-load time is known")
        elif window < load * s.model_load_margin:
            findings.append({"container": c.get("name"), "window_s": window, "load_s": load,
                             "text": f"container {c.get('name')} has a livenessProbe (acts after {window:.0f} s) and no "
                             f"startupProbe: it kills a pod still loading for {load:.0f} s ({src})"})
    if findings:
        return _count(findings, expected=expected, ok="", subject=_ref(obs, dep))
    if unknown:
        return _unsure("; ".join(unknown) + " (pass --model-load-s)", expected=expected,
                       subject=_ref(obs, dep))
    return _count([], expected=expected, subject=_ref(obs, dep),
                  ok="liveness waits for the startupProbe (or there is none)")


@check("K8S-DEPLOY-006")
def images_pinned(obs: Observation, s: Settings) -> CheckResult:
    findings = []
    objs = workloads(obs, s)
    tuner, _ = find_tuner(obs, s)
    if tuner is not None and all(o is not tuner for o in objs):
        objs.append(tuner)
    for o in objs:
        for _, c in containers(pod_spec(o)):
            img = str(c.get("image", ""))
            if not image_pinned(img):
                findings.append({"object": _ref(obs, o), "container": c.get("name"), "image": img,
                                 "text": f"{_ref(obs, o)} container {c.get('name')} runs {img or '(no image)'}"})
    return _count(findings, ok=f"all images pinned ({sum(1 for o in objs for _ in containers(pod_spec(o)))} containers)")


@check("K8S-DEPLOY-007")
def disruption_budget(obs: Observation, s: Settings) -> CheckResult:
    expected = "a PodDisruptionBudget selecting the vLLM pods with maxUnavailable 1"
    dep, unsure = _deployment_or_unsure(obs, s, expected, "PodDisruptionBudget")
    if unsure:
        return unsure
    labels = pod_template_labels(dep)
    ns = namespace_of(dep)
    pdbs = [p for p in obs.of_kind("PodDisruptionBudget") if namespace_of(p) == ns
            and label_selector_matches((p.get("spec") or {}).get("selector"), labels)]
    if not pdbs:
        return _count([{"text": "no PodDisruptionBudget selects the vLLM pods: a node drain may evict every "
                             "replica at once"}], expected=expected, ok="", subject=_ref(obs, dep))
    replicas = (dep.get("spec") or {}).get("replicas", 1)
    findings = []
    for p in pdbs:
        sp = p.get("spec") or {}
        mu, ma = sp.get("maxUnavailable"), sp.get("minAvailable")
        blocks = str(mu) in ("0", "0%") or str(ma) == "100%" or (
            isinstance(ma, int) and isinstance(replicas, int) and ma >= replicas)
        if blocks:
            findings.append({"text": f"{_ref(obs, p)} allows no disruption (maxUnavailable {mu}, minAvailable {ma}, "
                             f"replicas {replicas}): node drains hang"})
    return _count(findings, expected=expected, subject=_ref(obs, dep),
                  ok=f"{_ref(obs, pdbs[0])} allows one disruption at a time")


# --------------------------------------------------------------------------- storage


def _model_claims(dep: dict[str, Any]) -> list[str]:
    return [v["persistentVolumeClaim"]["claimName"] for v in (pod_spec(dep) or {}).get("volumes") or []
            if (v.get("persistentVolumeClaim") or {}).get("claimName")]


def _pv_for(obs: Observation, pvc: dict[str, Any]) -> dict[str, Any] | None:
    sp = pvc.get("spec") or {}
    if sp.get("volumeName"):
        return obs.get("PersistentVolume", sp["volumeName"])
    pvs = obs.of_kind("PersistentVolume")
    for pv in pvs:
        ref = (pv.get("spec") or {}).get("claimRef") or {}
        if ref.get("name") == name_of(pvc) and ref.get("namespace") in (namespace_of(pvc), None):
            return pv
    if sp.get("selector"):
        hits = [pv for pv in pvs if label_selector_matches(sp["selector"], labels_of(pv))]
        return hits[0] if len(hits) == 1 else None
    return None


def _is_nfs(pv: dict[str, Any]) -> bool:
    sp = pv.get("spec") or {}
    return bool(sp.get("nfs")) or (sp.get("csi") or {}).get("driver") == "nfs.csi.k8s.io"


@check("K8S-STORAGE-001")
def model_pvc(obs: Observation, s: Settings) -> CheckResult:
    expected = "the vLLM pods' model PVC is ReadWriteMany and " + ("Bound" if obs.live else "binds to a ReadWriteMany PV")
    dep, unsure = _deployment_or_unsure(obs, s, expected, "PersistentVolumeClaim")
    if unsure:
        return unsure
    claims = _model_claims(dep)
    if not claims:
        return _count([{"text": "the vLLM pods mount no PersistentVolumeClaim: weights are not on shared storage"}],
                      expected=expected, ok="", subject=_ref(obs, dep))
    findings = []
    for name in claims:
        pvc = obs.get("PersistentVolumeClaim", name, namespace_of(dep))
        if pvc is None:
            findings.append({"text": f"PersistentVolumeClaim {name} is not " + ("in the namespace" if obs.live else "in the manifests")})
            continue
        ref = _ref(obs, pvc)
        modes = (pvc.get("spec") or {}).get("accessModes") or []
        if "ReadWriteMany" not in modes:
            findings.append({"text": f"{ref} accessModes {modes}: a second replica on another node cannot mount it"})
        if obs.live:
            phase = (pvc.get("status") or {}).get("phase")
            if phase != "Bound":
                findings.append({"text": f"{ref} is {phase or 'not bound'}"})
        else:
            pv = _pv_for(obs, pvc)
            sc = (pvc.get("spec") or {}).get("storageClassName")
            if pv is None and sc in ("", None):
                findings.append({"text": f"{ref} matches no PersistentVolume in the manifests (volumeName/selector)"})
            elif pv is not None and "ReadWriteMany" not in ((pv.get("spec") or {}).get("accessModes") or []):
                findings.append({"text": f"{_ref(obs, pv)} is not ReadWriteMany"})
    return _count(findings, expected=expected, subject=_ref(obs, dep),
                  ok=f"{', '.join(claims)}: ReadWriteMany, " + ("Bound" if obs.live else "binds to an RWX PV"))


def mount_options(pv: dict[str, Any]) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for item in (pv.get("spec") or {}).get("mountOptions") or []:
        for part in str(item).split(","):
            part = part.strip()
            if part:
                k, _, v = part.partition("=")
                out[k.strip()] = v.strip() if _ else None
    return out


def _version(text: str) -> tuple[int, ...] | None:
    try:
        return tuple(int(x) for x in text.split("."))
    except ValueError:
        return None


@check("K8S-STORAGE-002")
def nfs_mount_options(obs: Observation, s: Settings) -> CheckResult:
    vmin = ".".join(map(str, s.nfs_vers_min))
    expected = f"the model PV's mountOptions have nconnect >= {s.nconnect_min} and vers >= {vmin}"
    fix = (f"set spec.mountOptions on the PV: [vers={vmin}, nconnect={s.nconnect_min}, rsize=1048576, wsize=1048576] "
           "(a PV without mountOptions mounts with one TCP connection)")
    dep, unsure = _deployment_or_unsure(obs, s, expected, "PersistentVolumeClaim", "PersistentVolume")
    if unsure:
        return unsure
    pvs = []
    for name in _model_claims(dep):
        pvc = obs.get("PersistentVolumeClaim", name, namespace_of(dep))
        pv = _pv_for(obs, pvc) if pvc else None
        if pv is not None:
            pvs.append(pv)
    if not pvs:
        return _unsure("no PersistentVolume behind the vLLM pods' claims is in view", expected=expected,
                       remediation=fix, subject=_ref(obs, dep))
    findings = []
    for pv in pvs:
        ref = _ref(obs, pv)
        if not _is_nfs(pv):
            return _unsure(f"{ref} is not an NFS volume; this check judges NFS mount options", expected=expected,
                           subject=ref)
        opts = mount_options(pv)
        nc = opts.get("nconnect")
        if nc is None:
            findings.append({"text": f"{ref} has no nconnect mount option: one TCP connection to the NFS server"})
        elif not str(nc).isdigit() or int(nc) < s.nconnect_min:
            findings.append({"text": f"{ref} nconnect={nc} < {s.nconnect_min}"})
        vers = opts.get("vers") or opts.get("nfsvers")
        if vers is None:
            findings.append({"text": f"{ref} does not pin the NFS version (vers=/nfsvers=)"})
        else:
            v = _version(vers)
            if v is None or v < s.nfs_vers_min:
                findings.append({"text": f"{ref} vers={vers} < {vmin}" + (" (NFSv3: no sessions, no nconnect "
                                 "trunking of state)" if v and v[0] == 3 else "")})
            elif len(v) == 1:
                findings.append({"text": f"{ref} vers={vers} leaves the minor version to negotiation; pin {vmin}"})
    return _count(findings, expected=expected, remediation=fix, subject=", ".join(_ref(obs, p) for p in pvs),
                  ok="; ".join(f"{name_of(p)}: " + ",".join(f"{k}={v}" if v is not None else k
                                                          for k, v in mount_options(p).items()) for p in pvs))


#: a PVC or PV carrying this annotation with the value "true" declares its volume populated beforehand
STAGED_ANNOTATION = "pytest-inference/model-staged"
_DOWNLOADERS = re.compile(
    r"snapshot_download|hf_hub_download|huggingface-cli\s+download|\bhf\s+download|\bwget\b|\bcurl\b|"
    r"\baws\s+s3\s+(?:cp|sync)\b|\bs5cmd\b|\bgsutil\b|\bgcloud\s+storage\s+(?:cp|rsync)\b|\bazcopy\b|"
    r"\brclone\b|\bgit\s+(?:lfs|clone)\b|\bmodelscope\b|\boras\s+pull\b", re.I)


def _init_writers(obj: dict[str, Any], claims: set[str]) -> list[tuple[dict[str, Any], str, bool]]:
    """(init container, claim, downloads?) for each init container of ``obj`` that mounts one of
    ``claims`` writable; downloads? = its command names a known downloader."""
    spec = pod_spec(obj) or {}
    vols = {v.get("name"): (v.get("persistentVolumeClaim") or {}).get("claimName") for v in spec.get("volumes") or []}
    out = []
    for c in spec.get("initContainers") or []:
        text = " ".join(str(x) for x in (c.get("command") or []) + (c.get("args") or []))
        for m in c.get("volumeMounts") or []:
            claim = vols.get(m.get("name"))
            if claim in claims and not m.get("readOnly"):
                out.append((c, claim, bool(_DOWNLOADERS.search(text))))
    return out


def _staged_declared(obs: Observation, dep: dict[str, Any], claims: set[str]) -> list[str]:
    """The PVCs/PVs behind ``claims`` annotated ``pytest-inference/model-staged: "true"``."""
    out = []
    for name in sorted(claims):
        pvc = obs.get("PersistentVolumeClaim", name, namespace_of(dep))
        for obj in (pvc, _pv_for(obs, pvc) if pvc else None):
            if obj is not None:
                notes = (obj.get("metadata") or {}).get("annotations") or {}
                if str(notes.get(STAGED_ANNOTATION, "")).strip().lower() == "true":
                    out.append(_ref(obs, obj))
    return out


@check("K8S-STORAGE-003")
def download_job(obs: Observation, s: Settings) -> CheckResult:
    """Accepted ways to put the model on the shared claim: a Job that downloads into it (live: and
    completed), an init container of the vLLM pods that downloads into it, or a PVC/PV declared
    populated beforehand (annotation ``pytest-inference/model-staged: "true"``). None shown is
    inconclusive with what would show it — the model may well be there already."""
    expected = ("the model staged on the shared claim: a download Job" + (" (completed)" if obs.live else "")
                + ", an init container downloading into it, or the PVC/PV annotated "
                f'{STAGED_ANNOTATION}: "true"')
    dep, unsure = _deployment_or_unsure(obs, s, expected, "Job")
    if unsure:
        return unsure
    claims = set(_model_claims(dep))
    if not claims:
        return _unsure("the vLLM pods mount no PVC to download into", expected=expected, subject=_ref(obs, dep))
    jobs = [j for j in obs.of_kind("Job") if namespace_of(j) == namespace_of(dep)
            and claims & set(_model_claims(j))]
    if not jobs:
        writers = [(dep, c, claim, dl) for c, claim, dl in _init_writers(dep, claims)]
        downloading = [(w, c, claim) for w, c, claim, dl in writers if dl]
        if downloading:
            ok = "; ".join(f"init container {c.get('name')} of {_ref(obs, w)} downloads into {claim}"
                           for w, c, claim in downloading)
            return _count([], expected=expected, ok=ok, subject=_ref(obs, dep))
        staged = _staged_declared(obs, dep, claims)
        if staged:
            return _count([], expected=expected, subject=_ref(obs, dep),
                          ok=f"{', '.join(staged)} declared populated beforehand ({STAGED_ANNOTATION})")
        seen = ("no Job mounting " + ", ".join(sorted(claims)) + (" is left (ttlSecondsAfterFinished deletes finished "
                "Jobs)" if obs.live else " is in the manifests"))
        if writers:
            seen += ("; init container(s) " + ", ".join(f"{c.get('name')} of {_ref(obs, w)}" for w, c, _, _ in writers)
                     + " write the claim but run no known downloader")
        return _unsure(f"{seen}: cannot tell whether the model is on the volume — show it with a download Job, "
                       "an init container that downloads into the claim, or the annotation "
                       f'{STAGED_ANNOTATION}: "true" on the PVC or PV when the share is populated beforehand',
                       expected=expected, subject=_ref(obs, dep))
    findings = []
    if obs.live:
        job = max(jobs, key=lambda j: str((j.get("metadata") or {}).get("creationTimestamp", "")))
        st = job.get("status") or {}
        conds = {c.get("type"): c.get("status") for c in st.get("conditions") or []}
        if conds.get("Failed") == "True":
            findings.append({"text": f"{_ref(obs, job)} failed ({st.get('failed', '?')} failed pod(s))"})
        elif not (st.get("succeeded") or conds.get("Complete") == "True"):
            findings.append({"text": f"{_ref(obs, job)} has not completed (active {st.get('active', 0)})"})
        ok = f"{_ref(obs, job)} completed"
    else:
        for j in jobs:
            rp = (pod_spec(j) or {}).get("restartPolicy")
            if rp not in ("Never", "OnFailure"):
                findings.append({"text": f"{_ref(obs, j)} restartPolicy {rp}"})
        ok = f"{', '.join(_ref(obs, j) for j in jobs)} writes the model into {', '.join(sorted(claims))}"
    return _count(findings, expected=expected, ok=ok, subject=_ref(obs, dep))


# --------------------------------------------------------------------------- templates


_DOLLAR2 = re.compile(r"\$\$")
_BRACE = re.compile(r"\$\{[^}]*\}")
_MUSTACHE = re.compile(r"\{\{[^}]*\}\}")

_TEMPLATE_PREFIXES = {
    "Pod": ("spec",), "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}


def _script_paths(obj: dict[str, Any]) -> set[tuple[str, ...]]:
    prefix = _TEMPLATE_PREFIXES.get(str(obj.get("kind")), ("spec", "template", "spec"))
    spec = pod_spec(obj)
    out: set[tuple[str, ...]] = set()
    if not spec:
        return out
    for field_ in ("initContainers", "containers"):
        for i, c in enumerate(spec.get(field_) or []):
            for _, _, _, path in scripts(c):
                out.add(prefix + (field_, str(i)) + tuple(path))
    return out


def _leaves(x: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], str]]:
    if isinstance(x, dict):
        for k, v in x.items():
            yield from _leaves(v, path + (str(k),))
    elif isinstance(x, list):
        for i, v in enumerate(x):
            yield from _leaves(v, path + (str(i),))
    elif isinstance(x, str):
        yield path, x


def template_leftovers(obj: dict[str, Any]) -> list[tuple[str, str]]:
    """(path, snippet) of each unrendered template piece in one object: ``$$`` anywhere (a
    Terraform-escaped ``$`` applied raw: the shell reads the PID), ``${…}`` outside a shell
    script (Kubernetes never expands it there), and ``{{ … }}``."""
    scripts_at = _script_paths(obj)
    out = []
    for path, text in _leaves(obj):
        if path and path[0] == "status":
            continue
        hits = [m.group(0) for m in _DOLLAR2.finditer(text)]
        if path not in scripts_at:
            hits += [m.group(0) for m in _BRACE.finditer(text)]
        hits += [m.group(0) for m in _MUSTACHE.finditer(text)]
        for h in hits:
            i = text.find(h)
            snippet = text[max(0, i - 20): i + len(h) + 20].replace("\n", " ")
            out.append((".".join(path), snippet))
    return out


@check("K8S-TEMPLATE-001")
def unrendered_templates(obs: Observation, s: Settings) -> CheckResult:
    findings = []
    for o in obs.objects:
        for path, snippet in template_leftovers(o):
            findings.append({"object": _ref(obs, o), "path": path, "snippet": snippet,
                             "text": f"{_ref(obs, o)} {path}: '{snippet.strip()}'"})
    return _count(findings, ok=f"{len(obs.objects)} objects, no template leftovers")


# --------------------------------------------------------------------------- pytest-inference in-cluster
# pytest-inference's own manifests (pytest-inference k8s manifests): the objects labelled
# app.kubernetes.io/part-of=pytest-inference and its Sonobuoy plugin definitions. A set without
# them is not judged: the suite skips these checks and run_all leaves them out (applies()).

_READ_VERBS = {"get", "list", "watch"}


def _is_plugin(obj: dict[str, Any]) -> bool:
    from .manifests import SONOBUOY_PLUGIN

    return obj.get("kind") == SONOBUOY_PLUGIN


def is_suite_object(obj: dict[str, Any]) -> bool:
    """pytest-inference's own: labelled part-of=pytest-inference, or a Sonobuoy plugin whose
    container runs the suite (its plugin name, image, command or args name pytest-inference)."""
    if labels_of(obj).get(SUITE_LABEL[0]) == SUITE_LABEL[1]:
        return True
    if _is_plugin(obj):
        text = name_of(obj) + " " + " ".join(
            " ".join([str(c.get("image", ""))] + [str(x) for x in (c.get("command") or []) + (c.get("args") or [])])
            for _, c in containers(pod_spec(obj)))
        return "pytest-inference" in text.lower() or "pytest_inference" in text.lower()
    return False


def suite_objects(obs: Observation, *kinds: str) -> list[dict[str, Any]]:
    return [o for o in (obs.of_kind(*kinds) if kinds else obs.objects) if is_suite_object(o)]


def _suite_workloads(obs: Observation) -> list[dict[str, Any]]:
    """pytest-inference's pod-running objects: its workloads (pods owned by one of them left out) and plugins."""
    from .manifests import SONOBUOY_PLUGIN

    out = []
    for o in suite_objects(obs, *WORKLOAD_KINDS, SONOBUOY_PLUGIN):
        if o.get("kind") in ("Pod", "Job") and (o.get("metadata") or {}).get("ownerReferences"):
            continue
        out.append(o)
    return out


def _node_daemonsets(obs: Observation) -> list[dict[str, Any]]:
    return [o for o in _suite_workloads(obs) if o.get("kind") == "DaemonSet"
            or (_is_plugin(o) and str((o.get("sonobuoy-config") or {}).get("driver", "")).lower() == "daemonset")]


def _inapplicable(obs: Observation, needs: Callable[[Observation], list[Any]] | None, lacking: str) -> str | None:
    if not _suite_workloads(obs):
        return (f"no object labelled {SUITE_LABEL[0]}={SUITE_LABEL[1]} and no pytest-inference Sonobuoy plugin "
                "in view: nothing of pytest-inference's own to judge (generate them: pytest-inference k8s manifests)")
    if needs is not None and not needs(obs):
        return lacking
    return None


def _incluster(needs: Callable[[Observation], list[Any]] | None = None, lacking: str = ""):
    """An in-cluster check: inconclusive with the reason when there is nothing of pytest-inference's
    (or not what ``needs`` picks) to judge; :func:`applies` asks the same before running it."""
    def deco(fn):
        def run(obs: Observation, s: Settings) -> CheckResult:
            why = _inapplicable(obs, needs, lacking)
            return _unsure(why) if why else fn(obs, s)

        run.__name__, run.__doc__ = fn.__name__, fn.__doc__
        run.incluster = (needs, lacking)  # type: ignore[attr-defined]
        return run
    return deco


def applies(cid: str, obs: Observation) -> str | None:
    """Why check ``cid`` has nothing to judge in ``obs`` (None: it applies). Only the in-cluster
    checks can be inapplicable: a manifest set without pytest-inference's own objects (or without
    the kind of object a check judges)."""
    info = getattr(getattr(CHECKS[cid].fn, "__wrapped__", None), "incluster", None)
    return None if info is None else _inapplicable(obs, *info)


@check("K8S-SUITE-001")
@_incluster()
def suite_images_pinned(obs: Observation, s: Settings) -> CheckResult:
    findings, n = [], 0
    for o in _suite_workloads(obs):
        for _, c in containers(pod_spec(o)):
            n += 1
            img = str(c.get("image", ""))
            if not image_pinned(img):
                findings.append({"object": _ref(obs, o), "container": c.get("name"), "image": img,
                                 "text": f"{_ref(obs, o)} container {c.get('name')} runs {img or '(no image)'}"})
    return _count(findings, ok=f"all {n} containers run a pinned image")


def _sa_of(o: dict[str, Any]) -> str:
    spec = pod_spec(o) or {}
    return spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"


def _role_findings(obs: Observation, role: dict[str, Any]) -> list[str]:
    """What a Role/ClusterRole of pytest-inference grants beyond get/list/watch on named resources."""
    out = []
    for i, rule in enumerate(role.get("rules") or []):
        verbs, res = [str(v) for v in rule.get("verbs") or []], [str(r) for r in rule.get("resources") or []]
        groups = [str(g) for g in rule.get("apiGroups") or []]
        bad = []
        if "*" in verbs + res + groups or any("*" in r for r in res):
            bad.append("a wildcard")
        if set(verbs) - _READ_VERBS - {"*"}:
            bad.append(f"verbs {sorted(set(verbs) - _READ_VERBS - {'*'})}")
        if not res and not rule.get("nonResourceURLs"):
            bad.append("no named resource")
        if rule.get("nonResourceURLs"):
            bad.append(f"nonResourceURLs {rule['nonResourceURLs']}")
        if bad:
            out.append(f"{_ref(obs, role)} rule {i + 1} grants {', '.join(bad)}")
    return out


def _plain_pods(obs: Observation) -> list[dict[str, Any]]:
    return [o for o in _suite_workloads(obs) if not _is_plugin(o)]


@check("K8S-SUITE-002")
@_incluster(_plain_pods, "only Sonobuoy plugins: Sonobuoy runs their pods (with its worker sidecar) under its own "
            "ServiceAccount, whose rights `sonobuoy run` sets; pytest-inference's plugins have no RBAC of their own")
def suite_rbac(obs: Observation, s: Settings) -> CheckResult:
    """No token without a use for it; every Role/ClusterRole pytest-inference's ServiceAccounts are
    bound to (or that is labelled as its own) grants get/list/watch on named resources only."""
    why = _need(obs, "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")
    if why:
        return _unsure(why)
    findings: list[dict[str, Any]] = []
    unknown: list[str] = []
    pods = _plain_pods(obs)
    accounts = {(namespace_of(o) or "default", _sa_of(o)) for o in pods}
    roles: dict[tuple[str, str | None, str], dict[str, Any]] = {}
    bound: set[tuple[str, str]] = set()
    for _, bref, role, rr, binds in _bindings_of(obs, accounts, also=is_suite_object):
        bound |= binds
        if role is None:
            if _builtin_role(rr):
                findings.append({"binding": bref, "text": f"{bref} grants the built-in {rr.get('kind')} {rr.get('name')}"})
            else:
                unknown.append(f"{bref} refers to {rr.get('kind')} {rr.get('name')}, which is not in view")
            continue
        roles[key_of(role)] = role
    for role in suite_objects(obs, "Role", "ClusterRole"):
        roles[key_of(role)] = role
    for role in roles.values():
        findings += [{"role": _ref(obs, role), "text": t} for t in _role_findings(obs, role)]
    for o in pods:
        ns, sa = namespace_of(o) or "default", _sa_of(o)
        if (ns, sa) in bound:
            continue  # a Role needs the token
        acct = obs.get("ServiceAccount", sa, ns)
        pod_says = (pod_spec(o) or {}).get("automountServiceAccountToken")
        acct_says = (acct or {}).get("automountServiceAccountToken")
        if pod_says is False or (pod_says is None and acct_says is False):
            continue
        if pod_says is None and acct is None and obs.live:
            unknown.append(f"ServiceAccount {ns}/{sa} of {_ref(obs, o)} is not in view: cannot tell whether its "
                           "token is mounted")
            continue
        how = ("the pod template sets automountServiceAccountToken: true" if pod_says else
               f"neither the pod template nor ServiceAccount {ns}/{sa} sets automountServiceAccountToken: false")
        findings.append({"object": _ref(obs, o), "text": f"{_ref(obs, o)} mounts a ServiceAccount token no Role "
                         f"needs ({how})"})
    if findings:
        return _count(findings, ok="")
    if unknown:
        return _unsure("; ".join(unknown))
    return _count([], ok=f"{len(pods)} workload(s) without an API token"
                  + (f", {len(roles)} role(s) read-only on named resources" if roles else ", no Role"))


def _script_masks(script: str, argv: list[Any]) -> list[str]:
    out = [f"line {n}: '{line}' masks a failure" for n, line in masked_failures(script)]
    body = [x for x in statements(script) if not x.startswith("set ")]
    erre = stops_on_error(script, argv)
    if len(body) > 1 and not erre:
        last = body[-1]
        if re.fullmatch(r"exit\s+0|true|:", last):  # 'cmd; true', 'cmd\nexit 0'
            out.append(f"ends with '{last}' after other commands without 'set -e': the pod succeeds whatever they did")
        else:
            out.append("runs several commands without 'set -e': every failure but the last is ignored")
    return out


@check("K8S-SUITE-003")
@_incluster()
def suite_masking(obs: Observation, s: Settings) -> CheckResult:
    findings = []
    for o in _suite_workloads(obs):
        for field_, c in containers(pod_spec(o)):
            who = f"{_ref(obs, o)} {field_[:-1]} {c.get('name')}"
            for where, script, argv, _ in scripts(c):
                for t in _script_masks(script, argv):
                    findings.append({"object": _ref(obs, o), "container": c.get("name"), "text": f"{who} {where} {t}"})
            for where, argv, _ in _plain_exec(c):
                words = [str(a) for a in argv]
                if "||" in words or "set" in words and "+e" in words:
                    findings.append({"object": _ref(obs, o), "container": c.get("name"),
                                     "text": f"{who} {where}: {' '.join(words)[:120]!r} (shell syntax in an exec-form "
                                     "command: passed as arguments, or a sign it was meant for a shell)"})
    return _count(findings, ok="exec-form commands, no masked failures")


_EXTRA_POWERS = {"SYS_ADMIN", "ALL", "NET_ADMIN", "SYS_PTRACE"}


@check("K8S-SUITE-004")
@_incluster(_node_daemonsets, "pytest-inference's manifests hold no node DaemonSet (generated with --node-suite)")
def suite_node_daemonset(obs: Observation, s: Settings) -> CheckResult:
    from .inventory import GPU_RESOURCES

    allowed = set(GPU_RESOURCES) | {s.taint_key}
    findings = []
    for o in _node_daemonsets(obs):
        ref, spec = _ref(obs, o), pod_spec(o) or {}
        for t in spec.get("tolerations") or []:
            key, op = t.get("key"), t.get("operator") or "Equal"
            if not key:
                findings.append({"object": ref, "toleration": t, "text": f"{ref} tolerates every taint "
                                 f"(operator {op} without a key)"})
            elif key not in allowed:
                findings.append({"object": ref, "toleration": t, "text": f"{ref} tolerates {key} (only "
                                 f"{', '.join(sorted(allowed))} are needed)"})
        for field_, c in containers(spec):
            sc = c.get("securityContext") or {}
            if sc.get("privileged") is True:
                findings.append({"object": ref, "container": c.get("name"),
                                 "text": f"{ref} {field_[:-1]} {c.get('name')} is privileged"})
            caps = set(map(str, ((sc.get("capabilities") or {}).get("add") or [])))
            if caps & _EXTRA_POWERS:
                findings.append({"object": ref, "container": c.get("name"), "text": f"{ref} {field_[:-1]} "
                                 f"{c.get('name')} adds capabilities {sorted(caps & _EXTRA_POWERS)}"})
    n = len(_node_daemonsets(obs))
    return _count(findings, ok=f"{n} node DaemonSet(s): tolerations by key for {', '.join(sorted(allowed))} only, "
                  "nothing privileged")


@check("K8S-SUITE-005")
@_incluster(lambda obs: suite_objects(obs, "Job"), "pytest-inference's manifests hold no Job")
def suite_jobs_no_retry(obs: Observation, s: Settings) -> CheckResult:
    findings = []
    jobs = suite_objects(obs, "Job")
    for j in jobs:
        ref, spec = _ref(obs, j), j.get("spec") or {}
        limit = spec.get("backoffLimit")
        if limit is None:
            findings.append({"object": ref, "text": f"{ref} has no backoffLimit (the default 6 retries a failed pod)"})
        elif str(limit) != "0":
            findings.append({"object": ref, "text": f"{ref} backoffLimit {limit}"})
        per = spec.get("backoffLimitPerIndex")
        if per is not None and str(per) != "0":
            findings.append({"object": ref, "text": f"{ref} backoffLimitPerIndex {per}"})
        rp = (pod_spec(j) or {}).get("restartPolicy")
        if rp != "Never":
            findings.append({"object": ref, "text": f"{ref} restartPolicy {rp or '(unset)'} (a restarted container "
                             "runs the tests again in the same pod)"})
    return _count(findings, ok=f"{len(jobs)} Job(s): backoffLimit 0, restartPolicy Never")


# --------------------------------------------------------------------------- mutation checks
# Not in run_all (catalog: mutates = true): they need --k8s-allow-mutations and data that mutate.py
# gathers; the functions below stay pure.


def _cleanup(r: CheckResult, undo: Any) -> CheckResult:
    """A mutation it could not undo: kept on the result (its test fails whatever the figure)."""
    if undo is not None and not undo.ok():
        r.cleanup = list(undo.failures)
        text = " — CLEANUP FAILED: " + "; ".join(undo.failures)
        r.actual += text
        if r.measured is None:
            r.reason += text
    return r


@check("K8S-SCALE-001")
def scale_out_result(res: Any) -> CheckResult:
    """K8S-SCALE-001 from a :class:`~.mutate.ScaleResult`: the seconds until every replica was Ready
    (judged by the target's ``k8s.scale_out_s``)."""
    expected = f"{res.from_replicas} -> {res.to_replicas} replicas all Ready within the target's k8s.scale_out_s"
    subject = f"Deployment {res.namespace}/{res.deployment}"
    if res.seconds is None:
        r = _unsure(res.error or "the scale-out did not finish", expected=expected, subject=subject,
                    findings=[res.to_dict()])
    else:
        r = _res(res.seconds, expected=expected, subject=subject, findings=[res.to_dict()],
                 actual=f"{res.from_replicas} -> {res.to_replicas} Ready in {res.seconds:.1f} s")
    return _cleanup(r, res.undo)


@check("K8S-NODE-001")
def node_tuning_result(probes: list[Any], requirements: dict[str, Any], undo: Any = None) -> CheckResult:
    """K8S-NODE-001 from the probes of each GPU node: the number of nodes where
    :func:`~pytest_inference.claims.judge` fails a node metric of
    :data:`~pytest_inference.node.probes.NODE_SETTINGS` against the target's requirement for it,
    else the catalog's default (``checks.toml``, K8S-NODE-001 ``inputs``: the seed's bars)."""
    from ..claims import FAIL, PASS, fmt, judge
    from ..node.probes import NODE_SETTINGS

    defaults = node_tuning_result.spec.inputs  # type: ignore[attr-defined]
    reqs = {m: requirements.get(m) or defaults[m] for m in NODE_SETTINGS}
    expected = "every GPU node: " + ", ".join(f"{NODE_SETTINGS[m].key} {r.op} {fmt(r.threshold)}"
                                              for m, r in reqs.items())
    findings, unknown = [], []
    for p in probes:
        snap = p.snapshot
        if snap is None:
            unknown.append(f"{p.node}: {p.error or 'not probed'}")
            continue
        bad, missing = [], []
        for metric, setting in NODE_SETTINGS.items():
            value, why = snap.reading(metric)
            if value is None:
                missing.append(f"{setting.field}: {why}")
                continue
            c = judge(metric, [value], requirement=reqs[metric])
            if c.verdict == FAIL:
                bad.append(f"{setting.field} {fmt(value)} (needs {c.op} {fmt(c.threshold)})")
            elif c.verdict != PASS:
                missing.append(f"{setting.field}: {c.reason}")
        if bad:
            findings.append({"node": p.node, "text": f"{p.node}: {', '.join(bad)}", "snapshot": _snap_dict(snap)})
        elif missing:
            unknown.append(f"{p.node}: could not read {', '.join(missing)}")
    if findings:
        r = _count(findings, expected=expected, ok="")
    elif unknown or not probes:
        r = _unsure("; ".join(unknown) if unknown else "no GPU node to probe", expected=expected)
    else:
        r = _count([], expected=expected, ok=f"{len(probes)} GPU node(s) tuned")
    return _cleanup(r, undo)


def _snap_dict(snap: Any) -> dict[str, Any]:
    to = getattr(snap, "to_dict", None)
    return to() if callable(to) else {}


def judged(r: CheckResult, requirement: Any = None) -> Any:
    """The :class:`~pytest_inference.claims.Claim` that :func:`~pytest_inference.claims.judge` makes of
    a result, against ``requirement`` (a target's) else the catalog's default — what the suite
    records, without a session (scripts, tests). Nothing measured: inconclusive with the reason."""
    from ..claims import INCONCLUSIVE, judge

    req = requirement or check_spec(r.id).requirement
    if r.measured is None:
        c = judge(r.metric, [], unit=r.unit, requirement=req, details=r.details())
        c.verdict, c.reason = INCONCLUSIVE, r.reason
        return c
    return judge(r.metric, [r.measured], unit=r.unit, requirement=req, details=r.details())
