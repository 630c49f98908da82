"""Pure lookups over an observation: the vLLM Deployment, the tuner DaemonSet and its pods, the
GPU nodes, the workloads, and whether a pod spec tolerates the taint.

Each ``find_*`` returns ``(object or None, why)``; ``why`` says what went wrong when nothing
(or more than one thing) fits, so a check can be inconclusive with a reason.
"""

from __future__ import annotations

from typing import Any

from . import PART_OF  # what `pytest-inference k8s manifests` writes: not the deployment's workloads or tuner
from .shell import exec_points
from .model import (WORKLOAD_KINDS, Observation, Settings, containers, label_selector_matches, labels_of,
                    name_of, namespace_of, pod_spec, pod_template_labels, selector_matches)

GPU_RESOURCES = ("nvidia.com/gpu", "amd.com/gpu")
#: label the suite puts on everything it creates (mutation mode), so it never judges its own pods
MANAGED_BY = ("app.kubernetes.io/managed-by", "pytest-inference")


def tolerates(spec: dict[str, Any] | None, key: str, effect: str = "NoSchedule") -> bool:
    """Whether a pod spec tolerates a taint with this key and effect (a keyless ``Exists``
    toleration tolerates every taint)."""
    for t in (spec or {}).get("tolerations") or []:
        t_key, op, t_eff = t.get("key"), t.get("operator") or "Equal", t.get("effect")
        if t_eff not in (None, "", effect):
            continue
        if not t_key and op == "Exists":
            return True
        if t_key == key:
            return True
    return False


def toleration_of(spec: dict[str, Any] | None, key: str) -> dict[str, Any] | None:
    for t in (spec or {}).get("tolerations") or []:
        if t.get("key") == key or (not t.get("key") and t.get("operator") == "Exists"):
            return t
    return None


def _images_and_args(obj: dict[str, Any]) -> str:
    parts: list[str] = []
    for _, c in containers(pod_spec(obj)):
        parts.append(str(c.get("image", "")))
        parts += [str(x) for x in (c.get("command") or []) + (c.get("args") or [])]
    return " ".join(parts).lower()


def in_namespace(obj: dict[str, Any], settings: Settings, obs: Observation) -> bool:
    ns = settings.namespace
    if not obs.live or not ns:
        return True
    return namespace_of(obj) in (ns, None)


def find_deployment(obs: Observation, s: Settings) -> tuple[dict[str, Any] | None, str]:
    deps = [d for d in obs.of_kind("Deployment") if in_namespace(d, s, obs)]
    if s.deployment:
        hits = [d for d in deps if name_of(d) == s.deployment]
        where = f" in namespace {s.namespace}" if obs.live and s.namespace else ""
        return (hits[0], "") if hits else (None, f"no Deployment named {s.deployment!r}{where}")
    if s.deployment_selector:
        hits = [d for d in deps if selector_matches(s.deployment_selector, labels_of(d))
                or selector_matches(s.deployment_selector, pod_template_labels(d))]
    else:
        hits = [d for d in deps if "vllm" in _images_and_args(d)]
    if len(hits) == 1:
        return hits[0], ""
    how = f"matching {s.deployment_selector!r}" if s.deployment_selector else "running a vLLM image or command"
    if not hits:
        return None, f"no Deployment {how}" + (f" in namespace {s.namespace}" if obs.live and s.namespace else "")
    names = ", ".join(sorted(name_of(d) for d in hits))
    return None, f"several Deployments {how} ({names}); choose one with --vllm-deployment"


def find_tuner(obs: Observation, s: Settings) -> tuple[dict[str, Any] | None, str]:
    dss = [d for d in obs.of_kind("DaemonSet") if not is_ours(d)]
    if s.tuner_namespace and obs.live:
        dss = [d for d in dss if namespace_of(d) == s.tuner_namespace]
    if s.tuner_daemonset:
        hits = [d for d in dss if name_of(d) == s.tuner_daemonset]
        return (hits[0], "") if hits else (None, f"no DaemonSet named {s.tuner_daemonset!r}"
                                           + (f" in namespace {s.tuner_namespace}" if s.tuner_namespace else ""))
    # the gate's tuner is, by definition, the DaemonSet that tolerates the taint by its key
    hits = [d for d in dss if any(t.get("key") == s.taint_key for t in (pod_spec(d) or {}).get("tolerations") or [])]
    if not hits:
        # else the DaemonSet whose commands remove the taint (a tuner that forgot to tolerate it)
        hits = [d for d in dss if any(_removes_taint(argv, s.taint_key)
                                      for _, c in containers(pod_spec(d)) for _, argv, _ in exec_points(c))]
    if len(hits) > 1:
        named = [d for d in hits if "tun" in name_of(d).lower()]
        hits = named if len(named) == 1 else hits
    if len(hits) == 1:
        return hits[0], ""
    if not hits:
        return None, (f"no DaemonSet tolerates the taint {s.taint_key} (the network tuner); name it with "
                      "--tuner-daemonset if it exists")
    names = ", ".join(sorted(f"{namespace_of(d) or ''}/{name_of(d)}" for d in hits))
    return None, f"several DaemonSets tolerate {s.taint_key} ({names}); choose one with --tuner-daemonset"


def _removes_taint(argv: list[Any], key: str) -> bool:
    """``kubectl taint nodes N KEY:NoSchedule-`` (or ``KEY-``): a command that removes the taint."""
    text = " ".join(str(a) for a in argv)
    return "taint" in text and (f"{key}-" in text or f"{key}:NoSchedule-" in text)


def owned_by(pod: dict[str, Any], kind: str, name: str) -> bool:
    return any(r.get("kind") == kind and r.get("name") == name
               for r in (pod.get("metadata") or {}).get("ownerReferences") or [])


def tuner_pods(obs: Observation, tuner: dict[str, Any]) -> list[dict[str, Any]]:
    sel = (tuner.get("spec") or {}).get("selector")
    ns = namespace_of(tuner)
    out = []
    for p in obs.of_kind("Pod"):
        if ns and namespace_of(p) not in (ns, None):
            continue
        if owned_by(p, "DaemonSet", name_of(tuner)) or (sel and label_selector_matches(sel, labels_of(p))):
            out.append(p)
    return out


def node_taint(node: dict[str, Any], key: str) -> dict[str, Any] | None:
    for t in (node.get("spec") or {}).get("taints") or []:
        if t.get("key") == key:
            return t
    return None


def gpu_nodes(obs: Observation, s: Settings) -> list[dict[str, Any]]:
    """GPU nodes: those matching --gpu-node-selector; without it, nodes with GPU capacity, nodes
    carrying the taint, and nodes a watch saw carrying it."""
    nodes = obs.of_kind("Node")
    if s.gpu_node_selector:
        return [n for n in nodes if selector_matches(s.gpu_node_selector, labels_of(n))]
    seen = obs.watch.taint_seen | set(obs.watch.taint_removed) if obs.watch else set()
    out = []
    for n in nodes:
        st = n.get("status") or {}
        cap = {**(st.get("capacity") or {}), **(st.get("allocatable") or {})}
        has_gpu = any(str(cap.get(r, "0")) not in ("0", "") for r in GPU_RESOURCES)
        if has_gpu or node_taint(n, s.taint_key) or name_of(n) in seen:
            out.append(n)
    return out


def is_ours(obj: dict[str, Any]) -> bool:
    labels = labels_of(obj)
    return labels.get(MANAGED_BY[0]) == MANAGED_BY[1] or labels.get(PART_OF[0]) == PART_OF[1]


def workloads(obs: Observation, s: Settings) -> list[dict[str, Any]]:
    """Objects that run pods, in scope: every manifest (static), the workload namespace (live).
    Pods owned by a controller are left out when the controller is in view (judge the template)."""
    out = []
    kinds = set(WORKLOAD_KINDS)
    for o in obs.objects:
        if o.get("kind") not in kinds or is_ours(o) or not in_namespace(o, s, obs):
            continue
        if o.get("kind") in ("Pod", "ReplicaSet", "Job") and (o.get("metadata") or {}).get("ownerReferences"):
            continue
        out.append(o)
    return out
