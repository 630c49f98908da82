"""Pure parts of the mutation checks: the probe pod we would create, and the judges of node
snapshots (real NodeSnapshot objects from the node probes' parsers) and of a scale-out."""

from pathlib import Path

from k8s_scenarios import outcome, verdict
from pytest_inference.claims import FAIL, INCONCLUSIVE, MEASURED, PASS, Requirement
from pytest_inference.k8s.checks import node_tuning_result, scale_out_result
from pytest_inference.k8s.inventory import MANAGED_BY, is_ours
from pytest_inference.k8s.mutate import NodeProbe, ScaleResult, Undo, probe_pod_manifest, probe_pod_name
from pytest_inference.node.judge import stale_connections
from pytest_inference.node.parse import parse_ss
from pytest_inference.node.probes import NodeSnapshot

DATA = Path(__file__).resolve().parents[1] / "node" / "data"
MiB16 = 16 * 1024 * 1024
H100 = {"k8s.scale_out_s": Requirement("k8s.scale_out_s", "<=", 30, unit="s")}


def test_probe_pod_is_pinned_privileged_host_namespaces_and_self_ending():
    pod = probe_pod_manifest("gpu-node-with-a-very-long-name-" + "x" * 60, "kube-system", image="busybox:1.36.1",
                             run_id="abc123")
    spec, c = pod["spec"], pod["spec"]["containers"][0]
    assert len(pod["metadata"]["name"]) <= 63 and pod["metadata"]["name"].endswith("abc123")
    assert spec["nodeName"].startswith("gpu-node-with") and spec["hostNetwork"] and spec["hostPID"]
    assert c["securityContext"] == {"privileged": True} and c["image"] == "busybox:1.36.1"
    assert spec["activeDeadlineSeconds"] == 900 and spec["restartPolicy"] == "Never"
    assert spec["automountServiceAccountToken"] is False
    assert is_ours(pod) and pod["metadata"]["labels"][MANAGED_BY[0]] == MANAGED_BY[1]
    assert probe_pod_name("gpu-1", "r") == probe_pod_name("gpu-1", "r") != probe_pod_name("gpu-2", "r")


def snap(node, *, mtu=9000, buf=MiB16, ss="fresh", errors=None):
    """A node snapshot from recorded ``ss`` output: "stale" has one socket still at mss 1448 after the
    MTU went to 9000 and one new one; "fresh" keeps only the new one; None: no NFS connection."""
    conns = [c for c in parse_ss((DATA / "ss_nfs_stale.txt").read_text()) if c.peer.endswith(":2049")] if ss else []
    if ss == "fresh":
        conns = [c for c in conns if c.mss == 8948]
    s = NodeSnapshot(node=node, nfs_server=None, mtu=mtu, rmem_max=buf, wmem_max=buf, tcp_rmem_max=buf,
                     tcp_wmem_max=buf, connections=conns, errors=dict(errors or {}))
    s.stale = stale_connections(conns, lambda c: 9000)
    return s


def probes(*snaps):
    return [NodeProbe(s.node, f"pod-{s.node}", snapshot=s) for s in snaps]


def test_tuned_nodes_pass():
    r = node_tuning_result(probes(snap("gpu-1"), snap("gpu-2")), {})
    assert verdict(r) == PASS and r.measured == 0 and "2 GPU node(s) tuned" in r.actual


def test_untuned_and_stale_nodes_fail_by_name():
    r = node_tuning_result(probes(snap("gpu-1", mtu=1500, buf=4194304), snap("gpu-2", ss="stale"),
                                  snap("gpu-3")), {})
    assert verdict(r) == FAIL and r.measured == 2
    assert "gpu-1: mtu 1500 (needs >= 9000)" in r.actual and "rmem_max 4194304" in r.actual
    assert "gpu-2: stale 1 (needs == 0)" in r.actual


def test_target_requirements_replace_the_defaults():
    reqs = {"node.mtu": Requirement("node.mtu", ">=", 1500)}
    assert verdict(node_tuning_result(probes(snap("gpu-1", mtu=1500)), reqs)) == PASS


def test_unreadable_or_unconnected_nodes_are_inconclusive():
    r = node_tuning_result(probes(snap("gpu-1", ss=None)), {})
    assert verdict(r) == INCONCLUSIVE and "gpu-1: could not read stale" in r.reason
    r = node_tuning_result(probes(snap("gpu-1", errors={"mtu": "kubectl: command not found"})), {})
    assert verdict(r) == INCONCLUSIVE and "command not found" in r.reason
    r = node_tuning_result([NodeProbe("gpu-1", "p", error="probe pod not Running after 180 s")], {})
    assert verdict(r) == INCONCLUSIVE and "not Running" in r.reason
    assert verdict(node_tuning_result([], {})) == INCONCLUSIVE


def test_cleanup_failure_fails_even_a_good_measurement():
    undo = Undo(actions=["created pod kube-system/p"], failures=["could not delete pod kube-system/p: HTTP 500"])
    r = node_tuning_result(probes(snap("gpu-1")), {}, undo)
    # the figure itself passes (0 untuned nodes); the test fails because the cluster was left changed
    test, line, claim = outcome(r)
    assert verdict(r) == PASS and r.cleanup and test == "failed" and "CLEANUP FAILED" in r.actual
    assert "CLEANUP FAILED" in line and claim.verdict == PASS
    res = ScaleResult("vllm", "vllm", 1, 3, seconds=21.5)
    res.undo.failures.append("could not restore vllm/vllm to 1 replicas: HTTP 409")
    r = scale_out_result(res)
    assert outcome(r, H100)[0] == "failed" and r.measured == 21.5 and "CLEANUP FAILED" in r.actual
    ok = scale_out_result(ScaleResult("vllm", "vllm", 1, 3, seconds=21.5))
    assert verdict(ok, H100["k8s.scale_out_s"]) == PASS and ok.actual == "1 -> 3 Ready in 21.5 s"
    assert outcome(ok, H100)[0] == "passed" and not ok.cleanup
    # no target requirement for k8s.scale_out_s (the catalog sets no default): measured only
    assert verdict(ok) == MEASURED and outcome(ok)[0] == "passed"
    assert outcome(scale_out_result(ScaleResult("vllm", "vllm", 1, 3, seconds=31)), H100)[0] == "failed"
