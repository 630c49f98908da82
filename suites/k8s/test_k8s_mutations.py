"""Checks that change the cluster: only with --k8s-allow-mutations, and they undo what they did.

* K8S-SCALE-001 scales the vLLM Deployment to --k8s-scale-to (seed: 1 -> 3), times until all are
  Ready (``k8s.scale_out_s``) and scales it back.
* K8S-NODE-001 starts one privileged hostNetwork + hostPID pod per GPU node, runs the node probes
  (MTU, TCP buffers, stale NFS connections) in the node's namespaces through ``kubectl exec``, and
  deletes the pods.
"""

import secrets

import pytest

from pytest_inference.k8s.checks import cannot_measure, node_tuning_result, scale_out_result
from pytest_inference.k8s.inventory import find_deployment, find_tuner, gpu_nodes
from pytest_inference.k8s.model import LIVE, namespace_of, name_of, pod_spec
from pytest_inference.k8s.suite import report

pytestmark = pytest.mark.k8s


def _mutations(request, k8s_run, what: str, cid: str) -> None:
    from pytest_inference.catalog.checks import check
    from pytest_inference.checks import tag

    tag(request, cid, check(cid).title)  # a skipped mutation still shows in the conformance summary
    if k8s_run.mode != LIVE:
        pytest.skip(f"{what} needs a live cluster (--kubeconfig) and --k8s-allow-mutations")
    if not request.config.getoption("k8s_allow_mutations"):
        pytest.skip(f"{what} changes the cluster: run with --k8s-allow-mutations (it undoes what it did)")


def test_scale_out(request, k8s_run, k8s_settings, claim):
    """K8S-SCALE-001: scale the vLLM Deployment out and time until every replica is Ready."""
    _mutations(request, k8s_run, "the scale-out check", "K8S-SCALE-001")
    k8s_observation = request.getfixturevalue("k8s_observation")
    from pytest_inference.k8s.mutate import scale_out

    dep, why = find_deployment(k8s_observation, k8s_settings)
    if dep is None:
        report(cannot_measure("K8S-SCALE-001", why, expected="a vLLM Deployment to scale"), claim, mode=LIVE)
        return
    res = scale_out(k8s_run.cluster, namespace_of(dep), name_of(dep), to=request.config.getoption("k8s_scale_to"),
                    timeout_s=request.config.getoption("k8s_scale_timeout_s"))
    report(scale_out_result(res), claim, mode=LIVE)


def _nfs_server(obs, dep) -> str | None:
    for v in (pod_spec(dep) or {}).get("volumes") or [] if dep else []:
        claim_name = (v.get("persistentVolumeClaim") or {}).get("claimName")
        pvc = obs.get("PersistentVolumeClaim", claim_name, namespace_of(dep)) if claim_name else None
        pv = obs.get("PersistentVolume", (pvc.get("spec") or {}).get("volumeName", "")) if pvc else None
        if pv and (pv.get("spec") or {}).get("nfs"):
            return pv["spec"]["nfs"].get("server")
    return None


def test_gpu_nodes_tuned(request, k8s_run, k8s_settings, inference_target, claim):
    """K8S-NODE-001: the node probes on every GPU node, from a hostNetwork pod on it."""
    _mutations(request, k8s_run, "the node-tuning check", "K8S-NODE-001")
    k8s_observation = request.getfixturevalue("k8s_observation")
    from pytest_inference.k8s.mutate import Undo, create_probe_pods, delete_probe_pods, run_node_probes

    opt = request.config.getoption
    nodes = [name_of(n) for n in gpu_nodes(k8s_observation, k8s_settings)]
    tuner, _ = find_tuner(k8s_observation, k8s_settings)
    ns = opt("k8s_probe_namespace") or (namespace_of(tuner) if tuner is not None else None) or "kube-system"
    dep, _ = find_deployment(k8s_observation, k8s_settings)
    undo, probes = Undo(), []
    try:
        probes = create_probe_pods(k8s_run.cluster, nodes, ns, image=opt("k8s_probe_image"),
                                   run_id=secrets.token_hex(3), undo=undo, timeout_s=opt("k8s_pod_timeout_s"))
        run_node_probes(k8s_run.cluster, probes, ns, _nfs_server(k8s_observation, dep),
                        kubeconfig=k8s_run.cluster.kubeconfig, context=k8s_run.cluster.context)
    finally:
        delete_probe_pods(k8s_run.cluster, probes, ns, undo)
    report(node_tuning_result(probes, inference_target.requirements, undo), claim, mode=LIVE)
