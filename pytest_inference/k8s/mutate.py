"""The checks that change the cluster — run only with ``--k8s-allow-mutations`` — and always
undo what they did (restore the replica count, delete the pods they created), also when the
measurement fails.

* :func:`scale_out` — K8S-SCALE-001: scale the vLLM Deployment from its replicas to N (seed:
  1 -> 3) and time until N are Ready (``k8s.scale_out_s``), then scale it back.
* :func:`probe_pod_manifest`, :func:`run_node_probes` — K8S-NODE-001: one privileged pod with
  hostNetwork and hostPID per GPU node (``nodeName`` set: no scheduler, no taint question), the
  node probes of :mod:`pytest_inference.node` through ``kubectl exec`` + ``nsenter`` into the
  node's namespaces, then the pods are deleted.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from .inventory import MANAGED_BY
from .observe import Cluster, K8sError, _one_line, _unreachable

PROBE_LABEL = "pytest-inference/node-probe"


@dataclass
class Undo:
    """What a mutation changed and whether it was put back."""

    actions: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def ok(self) -> bool:
        return not self.failures


def _raw(resp: Any) -> dict[str, Any]:
    return json.loads(resp.data or b"{}")


def _api_call(cluster: Cluster, what: str, fn: Callable, *args: Any, **kw: Any) -> dict[str, Any]:
    from kubernetes.client.rest import ApiException
    from urllib3.exceptions import HTTPError

    try:
        return _raw(fn(*args, _preload_content=False, _request_timeout=(10, 60), **kw))
    except ApiException as exc:
        raise K8sError(f"{what}: HTTP {exc.status} {exc.reason}") from None
    except (HTTPError, OSError) as exc:
        raise _unreachable(cluster, exc) from None


# --------------------------------------------------------------------------- scale-out


@dataclass
class ScaleResult:
    deployment: str
    namespace: str
    from_replicas: int
    to_replicas: int
    seconds: float | None = None
    timeline: list[tuple[float, int]] = field(default_factory=list)
    error: str = ""
    undo: Undo = field(default_factory=Undo)

    def to_dict(self) -> dict[str, Any]:
        return {"deployment": f"{self.namespace}/{self.deployment}", "from": self.from_replicas,
                "to": self.to_replicas, "seconds": self.seconds, "ready_timeline": self.timeline,
                "error": self.error, "undo": self.undo.actions, "undo_failures": self.undo.failures}


def scale_out(cluster: Cluster, namespace: str, name: str, *, to: int = 3, timeout_s: float = 600.0,
              poll_s: float = 0.5, clock: Callable[[], float] = time.monotonic,
              sleep: Callable[[float], None] = time.sleep) -> ScaleResult:
    """Scale ``namespace/name`` to ``to`` replicas and time until ``to`` are Ready; scale back."""
    from kubernetes import client

    apps = client.AppsV1Api(cluster.api)
    dep = _api_call(cluster, f"read Deployment {namespace}/{name}", apps.read_namespaced_deployment, name, namespace)
    orig = int((dep.get("spec") or {}).get("replicas", 1))
    res = ScaleResult(name, namespace, orig, to)
    if orig >= to:
        res.error = f"the Deployment already has {orig} replicas (>= {to}); scale it to 1 first or pass --k8s-scale-to"
        return res
    t0 = clock()
    try:
        _api_call(cluster, f"scale Deployment {namespace}/{name}", apps.patch_namespaced_deployment, name, namespace,
                  {"spec": {"replicas": to}})
        res.undo.actions.append(f"scaled {namespace}/{name} {orig} -> {to}")
        last = -1
        while True:
            now = clock() - t0
            st = _api_call(cluster, f"read Deployment {namespace}/{name}", apps.read_namespaced_deployment,
                           name, namespace)
            status = st.get("status") or {}
            ready = int(status.get("readyReplicas") or 0)
            if ready != last:
                res.timeline.append((round(now, 3), ready))
                last = ready
            gen_ok = int(status.get("observedGeneration") or 0) >= int((st.get("metadata") or {}).get("generation") or 0)
            if ready >= to and gen_ok:
                res.seconds = round(now, 3)
                break
            if now > timeout_s:
                res.error = f"only {ready} of {to} replicas Ready after {timeout_s:.0f} s"
                break
            sleep(poll_s)
    except K8sError as exc:
        res.error = str(exc)
    finally:
        try:
            _api_call(cluster, f"restore Deployment {namespace}/{name}", apps.patch_namespaced_deployment, name,
                      namespace, {"spec": {"replicas": orig}})
            res.undo.actions.append(f"restored {namespace}/{name} to {orig} replicas")
        except K8sError as exc:
            res.undo.failures.append(f"could not restore {namespace}/{name} to {orig} replicas: {exc}")
    return res


# --------------------------------------------------------------------------- node probes


def probe_pod_name(node: str, run_id: str) -> str:
    digest = hashlib.sha1(node.encode()).hexdigest()[:8]
    return f"pytest-inference-probe-{digest}-{run_id}"[:63]


def probe_pod_manifest(node: str, namespace: str, *, image: str, run_id: str, lifetime_s: int = 900) -> dict[str, Any]:
    """The pod that probes one node: pinned to it by nodeName, hostNetwork + hostPID + privileged
    so ``nsenter -t 1 -m -n`` reaches the node's mount and network namespaces; it ends itself after
    ``lifetime_s`` (activeDeadlineSeconds) even if the suite is killed before deleting it."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": probe_pod_name(node, run_id),
            "namespace": namespace,
            "labels": {MANAGED_BY[0]: MANAGED_BY[1], PROBE_LABEL: run_id},
        },
        "spec": {
            "nodeName": node,
            "hostNetwork": True,
            "hostPID": True,
            "restartPolicy": "Never",
            "activeDeadlineSeconds": int(lifetime_s),
            "terminationGracePeriodSeconds": 0,
            "automountServiceAccountToken": False,
            "tolerations": [{"operator": "Exists"}],
            "containers": [{
                "name": "probe",
                "image": image,
                "command": ["sleep", str(int(lifetime_s))],
                "securityContext": {"privileged": True},
                "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}},
            }],
        },
    }


@dataclass
class NodeProbe:
    node: str
    pod: str
    snapshot: Any = None
    error: str = ""


def create_probe_pods(cluster: Cluster, nodes: list[str], namespace: str, *, image: str, run_id: str,
                      undo: Undo, timeout_s: float = 180.0, poll_s: float = 1.0,
                      sleep: Callable[[float], None] = time.sleep) -> list[NodeProbe]:
    """Create one probe pod per node and wait until each runs (or gives up on it)."""
    from kubernetes import client

    core = client.CoreV1Api(cluster.api)
    probes = []
    for node in nodes:
        body = probe_pod_manifest(node, namespace, image=image, run_id=run_id)
        name = body["metadata"]["name"]
        try:
            _api_call(cluster, f"create pod {namespace}/{name}", core.create_namespaced_pod, namespace, body)
            undo.actions.append(f"created pod {namespace}/{name} on {node}")
            probes.append(NodeProbe(node, name))
        except K8sError as exc:
            probes.append(NodeProbe(node, name, error=str(exc)))
    deadline = time.monotonic() + timeout_s
    waiting = [p for p in probes if not p.error]
    while waiting and time.monotonic() < deadline:
        for p in list(waiting):
            pod = _api_call(cluster, f"read pod {namespace}/{p.pod}", core.read_namespaced_pod, p.pod, namespace)
            phase = (pod.get("status") or {}).get("phase")
            if phase == "Running":
                waiting.remove(p)
            elif phase in ("Failed", "Succeeded"):
                p.error = f"probe pod {p.pod} ended ({phase}) before it could be used"
                waiting.remove(p)
        if waiting:
            sleep(poll_s)
    for p in waiting:
        p.error = f"probe pod {namespace}/{p.pod} on {p.node} not Running after {timeout_s:.0f} s"
    return probes


def delete_probe_pods(cluster: Cluster, probes: list[NodeProbe], namespace: str, undo: Undo) -> None:
    from kubernetes import client

    core = client.CoreV1Api(cluster.api)
    for p in probes:
        if any(p.pod in a for a in undo.actions if a.startswith("created")):
            try:
                _api_call(cluster, f"delete pod {namespace}/{p.pod}", core.delete_namespaced_pod, p.pod, namespace,
                          grace_period_seconds=0)
                undo.actions.append(f"deleted pod {namespace}/{p.pod}")
            except K8sError as exc:
                undo.failures.append(f"could not delete pod {namespace}/{p.pod}: {exc}")


def run_node_probes(cluster: Cluster, probes: list[NodeProbe], namespace: str, nfs_server: str | None,
                    *, kubeconfig: str | None, context: str | None) -> None:
    """Snapshot every running probe pod's node with the node probes (``kubectl exec`` + nsenter)."""
    try:
        from ..node.backends import KubectlBackend, NodeError
        from ..node.probes import Node
    except ImportError as exc:  # the node probes ship with the storage/node suites
        for p in probes:
            p.error = p.error or f"the node probes are not available: {_one_line(exc)}"
        return
    for p in probes:
        if p.error:
            continue
        backend = KubectlBackend(p.pod, namespace, kubeconfig=kubeconfig, context=context, container="probe")
        try:
            p.snapshot = Node(backend).snapshot(nfs_server)
        except NodeError as exc:
            p.error = str(exc)
        except Exception as exc:  # a probe that breaks is that node's error, never the suite's traceback
            p.error = f"{type(exc).__name__}: {_one_line(exc)}"
