"""Clusters for the emulated API server: the reference deployment as a running cluster would show
it (nodes, tuner pods with their init containers' times, vLLM pods with PodScheduled and Ready,
a bound PVC, a completed Job), and the scenarios the issue names: good, racy (a vLLM pod bound one
second before the taint's removal), missing tolerations, masked failures."""

from __future__ import annotations

import copy
import importlib.util
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from pytest_inference.k8s.manifests import load_manifests
from pytest_inference.k8s.model import iso

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fixtures" / "k8s"
KEY = "node.digitalocean.com/network-not-tuned"
T0 = datetime(2025, 6, 1, 10, 0, 0, tzinfo=timezone.utc)
SCENARIOS = ("good", "racy", "missing-tolerations", "masked")


def at(s: float) -> str:
    return iso(T0 + timedelta(seconds=s))


def _make_broken():
    spec = importlib.util.spec_from_file_location("make_broken_k8s", FIXTURES / "make_broken.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def manifests(variant: str | None = None) -> list[dict[str, Any]]:
    folder = FIXTURES / "reference" if variant is None else FIXTURES / "broken" / variant
    return copy.deepcopy(load_manifests(folder).objects)


def node(name: str, created: int, *, gpu: bool = True, tainted: bool = False) -> dict[str, Any]:
    pool = "gpu-h100" if gpu else "management"
    n = {"kind": "Node", "metadata": {"name": name, "creationTimestamp": at(created),
                                      "labels": {"doks.digitalocean.com/node-pool": pool}},
         "spec": {}, "status": {"capacity": {"nvidia.com/gpu": "1"} if gpu else {"cpu": "8"}}}
    if gpu:
        n["spec"]["taints"] = [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]
    if tainted:
        n["spec"]["taints"] = n["spec"].get("taints", []) + [{"key": KEY, "value": "true", "effect": "NoSchedule"}]
    return n


def _get(objs, kind, name):
    return next(o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name)


def tuner_pod(ds: dict[str, Any], node_name: str, node_created: int) -> dict[str, Any]:
    c = node_created
    spec = copy.deepcopy(ds["spec"]["template"]["spec"])
    spec["nodeName"] = node_name
    return {"kind": "Pod",
            "metadata": {"name": f"network-tuner-{node_name}", "namespace": "kube-system", "creationTimestamp": at(c + 5),
                         "labels": {"app": "network-tuner"},
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "network-tuner",
                                              "uid": "0d7c-tuner", "controller": True}]},
            "spec": spec,
            "status": {"phase": "Running", "initContainerStatuses": [
                {"name": "tune", "restartCount": 0,
                 "state": {"terminated": {"exitCode": 0, "startedAt": at(c + 10), "finishedAt": at(c + 14)}}},
                {"name": "remove-taint", "restartCount": 0,
                 "state": {"terminated": {"exitCode": 0, "startedAt": at(c + 15), "finishedAt": at(c + 16)}}}]}}


def vllm_pod(dep: dict[str, Any], name: str, node_name: str, scheduled: int, *, load_s: int = 220) -> dict[str, Any]:
    spec = copy.deepcopy(dep["spec"]["template"]["spec"])
    spec["nodeName"] = node_name
    started = scheduled + 3
    return {"kind": "Pod",
            "metadata": {"name": name, "namespace": "vllm", "labels": {"app": "vllm"}, "creationTimestamp": at(scheduled - 1),
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "vllm-6d9f",
                                              "uid": "5e1a-rs", "controller": True}]},
            "spec": spec,
            "status": {"phase": "Running",
                       "conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": at(scheduled)},
                                      {"type": "Ready", "status": "True", "lastTransitionTime": at(started + load_s)}],
                       "containerStatuses": [{"name": "vllm", "ready": True, "restartCount": 0,
                                              "state": {"running": {"startedAt": at(started)}}}]}}


def cluster(scenario: str = "good") -> list[dict[str, Any]]:
    """Every object of one scenario (namespaced ones carry their namespace)."""
    variant = {"masked": "tuner-or-true", "missing-tolerations": "tuner-no-toleration"}.get(scenario)
    objs = manifests(variant)
    for o in objs:
        if o["kind"] in ("Deployment", "Job", "PersistentVolumeClaim", "PodDisruptionBudget", "Service"):
            o["metadata"].setdefault("namespace", "vllm")
    dep, ds = _get(objs, "Deployment", "vllm"), _get(objs, "DaemonSet", "network-tuner")
    pvc, pv, job = (_get(objs, "PersistentVolumeClaim", "models"), _get(objs, "PersistentVolume", "models-nfs"),
                    _get(objs, "Job", "download-model"))
    pvc["spec"]["volumeName"] = "models-nfs"
    pvc["status"] = {"phase": "Bound", "accessModes": ["ReadWriteMany"]}
    pv["spec"]["claimRef"] = {"kind": "PersistentVolumeClaim", "name": "models", "namespace": "vllm"}
    pv["status"] = {"phase": "Bound"}
    job["metadata"]["creationTimestamp"] = at(-600)
    job["status"] = {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}
    dep["status"] = {"replicas": 2, "readyReplicas": 2, "updatedReplicas": 2, "observedGeneration": 1}
    dep["metadata"]["generation"] = 1
    objs += [node("mgmt-1", -3600, gpu=False), node("gpu-1", 0), node("gpu-2", 100)]
    objs += [tuner_pod(ds, "gpu-1", 0), tuner_pod(ds, "gpu-2", 100)]
    first_bind = 14 if scenario == "racy" else 17   # the taint leaves gpu-1 in [15 s, 17 s)
    objs += [vllm_pod(dep, "vllm-6d9f-a", "gpu-1", first_bind), vllm_pod(dep, "vllm-6d9f-b", "gpu-2", 100 + 30)]
    if scenario == "missing-tolerations":
        # a third GPU node joined with the taint; the tuner cannot start there, so it stays closed
        objs.append(node("gpu-3", 500, tainted=True))
    return objs


class Controller:
    """Plays the part of the Deployment controller and the kubelet in the emulator: when the vLLM
    Deployment's replicas change, it reports them Ready after ``delay_s``; probe pods it marks Running."""

    def __init__(self, kube, *, delay_s: float = 0.4, namespace: str = "vllm", name: str = "vllm",
                 run_pods: bool = True) -> None:
        from kubernetes import client

        self.kube, self.delay_s, self.ns, self.name, self.run_pods = kube, delay_s, namespace, name, run_pods
        api = kube.driver()
        self.apps, self.core = client.AppsV1Api(api), client.CoreV1Api(api)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(5)

    def _loop(self) -> None:
        pending: dict[int, float] = {}
        while not self.stop.is_set():
            d = self.kube.get("Deployment", self.name, self.ns)
            if d:
                want = int(d["spec"].get("replicas", 1))
                ready = int((d.get("status") or {}).get("readyReplicas") or 0)
                if want != ready:
                    due = pending.setdefault(want, time.monotonic() + (self.delay_s if want > ready else 0))
                    if time.monotonic() >= due:
                        self.apps.patch_namespaced_deployment(self.name, self.ns, {"status": {"readyReplicas": want}},
                                                             _preload_content=False)
                        pending.clear()
            if self.run_pods:
                for (res, ns, name), obj in list(self.kube.kmock.objects.items()):
                    raw = obj.raw if not obj.deleted else None
                    if raw and raw.get("kind", "Pod") == "Pod" and name.startswith("pytest-inference-probe-") \
                            and not (raw.get("status") or {}).get("phase"):
                        self.core.patch_namespaced_pod(name, ns, {"status": {"phase": "Running"}}, _preload_content=False)
            time.sleep(0.05)


class Recorder:
    """What :func:`pytest_inference.k8s.suite.report` asks of the ``claim`` fixture, without a session:
    each claim judged by the real :func:`pytest_inference.claims.judge` against ``requirements[metric]``
    (the target's), else the ``default`` report passes (the catalog's). A stand-in for the harness's
    own fixture (the child-pytest tests in test_k8s_suite.py run the real one)."""

    def __init__(self, requirements: dict[str, Any] | None = None) -> None:
        self.requirements = dict(requirements or {})
        self.made: list[Any] = []

    def __call__(self, metric, samples=(), *, default=None, stat=None, unit=None, details=None, parameters=None):
        from pytest_inference.claims import judge

        c = judge(metric, samples, stat=stat or "value", unit=unit, details=details,
                  requirement=self.requirements.get(metric) or default)
        self.made.append(c)
        return c

    def inconclusive(self, metric, reason, *, default=None, unit=None, details=None, parameters=None):
        from pytest_inference.claims import INCONCLUSIVE, Claim

        req = self.requirements.get(metric) or default
        c = Claim(metric=metric, measured=None, unit=unit, stat="value", samples=[], verdict=INCONCLUSIVE,
                  reason=reason, op=req.op if req else None, threshold=req.threshold if req else None,
                  details=dict(details or {}))
        self.made.append(c)
        return c

    def attach(self, name, body, kind="json") -> None:
        pass


def outcome(result, requirements: dict[str, Any] | None = None) -> tuple[str, str, Any]:
    """(test outcome "passed"/"failed", the failure line, the claim) of reporting ``result``."""
    import pytest

    from pytest_inference.k8s.suite import report

    rec = Recorder(requirements)
    try:
        report(result, rec, mode="live")
    except pytest.fail.Exception as exc:
        return "failed", str(exc), rec.made[-1]
    return "passed", "", rec.made[-1]


def verdict(result, requirement=None) -> str:
    """The verdict claims.judge gives a check's result: against ``requirement`` (a target's), else
    the catalog's default — what the suite records."""
    from pytest_inference.k8s.checks import judged

    return judged(result, requirement).verdict
