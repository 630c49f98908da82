"""The taint-gate timeline, pure: judged pairs and the evidence read from objects (tuner pod
container states, managedFields, PodScheduled, events, a watch). The hypothesis-generated
timelines are in test_k8s_timeline_properties.py (they need the test extra)."""

from datetime import datetime, timedelta, timezone

from k8s_scenarios import verdict
from pytest_inference.k8s.checks import run_check
from pytest_inference.claims import FAIL, INCONCLUSIVE, PASS
from pytest_inference.k8s.model import LIVE, Observation, Settings, WatchLog, iso
from pytest_inference.k8s.timeline import (OK, UNKNOWN, VIOLATION, Binding, Instant, NodeTaint, judge_pair,
                                           judge_timeline, node_evidence)

KEY = "node.digitalocean.com/network-not-tuned"
T0 = datetime(2025, 6, 1, 10, 0, 0, tzinfo=timezone.utc)


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def stamp(s: int) -> str:
    return iso(at(s))


# --------------------------------------------------------------------------- pairs


def test_pair_rules():
    n = NodeTaint("gpu-1", removed=Instant.stamp(at(15), "x"))
    b = lambda s, tol=False: Binding("vllm", "p", "gpu-1", Instant.stamp(at(s), "y"), tol)  # noqa: E731
    assert judge_pair(b(14), n).kind == VIOLATION         # one second before: whole seconds still order them
    assert judge_pair(b(16), n).kind == OK
    assert judge_pair(b(15), n).kind == OK                # same second, does not tolerate: the scheduler waited
    assert judge_pair(b(15, tol=True), n).kind == UNKNOWN  # same second and it tolerates: cannot tell
    assert judge_pair(Binding("vllm", "p", "gpu-1", None), n).kind == UNKNOWN
    assert judge_pair(b(99), NodeTaint("gpu-1", present=True)).kind == VIOLATION
    assert judge_pair(b(99), NodeTaint("gpu-1", joined_untainted=True)).kind == VIOLATION
    assert judge_pair(b(99), NodeTaint("gpu-1")).kind == UNKNOWN


def test_wide_removal_interval_cannot_clear_a_binding_inside_it():
    n = NodeTaint("gpu-1", removed=Instant(at(0), at(600), "a later tuner pod"))
    assert judge_pair(Binding("vllm", "p", "gpu-1", Instant.stamp(at(300), "y")), n).kind == UNKNOWN
    assert judge_pair(Binding("vllm", "p", "gpu-1", Instant.stamp(at(601), "y")), n).kind == OK


def test_violation_names_node_pod_and_both_times():
    res = judge_timeline({"gpu-1": NodeTaint("gpu-1", removed=Instant.stamp(at(15), "tuner pod t"))},
                         [Binding("vllm", "vllm-abc", "gpu-1", Instant.stamp(at(14), "PodScheduled condition")),
                          Binding("vllm", "elsewhere", "cpu-1", Instant.stamp(at(1), "x"))])
    (v,) = res.violations
    d = v.to_dict()
    assert d["node"] == "gpu-1" and d["pod"] == "vllm/vllm-abc"
    assert d["bound_at"].startswith("2025-06-01T10:00:14Z") and d["taint_removed_at"].startswith("2025-06-01T10:00:15Z")
    assert len(res.pairs) == 1  # a pod on a node that is not a GPU node is not the gate's


# --------------------------------------------------------------------------- from objects, end to end


def node(name, *, created=0, tainted=False, managed_taint_at=None, gpu=True):
    n = {"kind": "Node", "metadata": {"name": name, "creationTimestamp": stamp(created), "labels": {"pool": "gpu"}},
         "spec": {}, "status": {"capacity": {"nvidia.com/gpu": "1"} if gpu else {"cpu": "4"}}}
    if tainted:
        n["spec"]["taints"] = [{"key": KEY, "value": "true", "effect": "NoSchedule"}]
    if managed_taint_at is not None:
        n["metadata"]["managedFields"] = [{"manager": "kubectl-taint", "operation": "Update",
                                           "time": stamp(managed_taint_at), "fieldsV1": {"f:spec": {"f:taints": {}}}}]
    return n


def tuner_ds():
    return {"kind": "DaemonSet", "metadata": {"name": "network-tuner", "namespace": "kube-system"},
            "spec": {"selector": {"matchLabels": {"app": "network-tuner"}},
                     "template": {"metadata": {"labels": {"app": "network-tuner"}}, "spec": {
                         "hostNetwork": True,
                         "tolerations": [{"key": KEY, "operator": "Exists", "effect": "NoSchedule"}],
                         "initContainers": [
                             {"name": "tune", "image": "busybox:1.36.1", "command": ["sh", "-c", "set -e; sysctl -w a=b"]},
                             {"name": "remove-taint", "image": "bitnami/kubectl:1.31.4",
                              "command": ["sh", "-c", f'kubectl taint nodes "$NODE_NAME" {KEY}:NoSchedule-']}],
                         "containers": [{"name": "pause", "image": "registry.k8s.io/pause:3.10"}]}}}}


def tuner_pod(node_name, *, created=5, remove=(15, 16), restarts=0):
    ds = tuner_ds()
    return {"kind": "Pod", "metadata": {"name": f"network-tuner-{node_name}", "namespace": "kube-system",
                                        "creationTimestamp": stamp(created), "labels": {"app": "network-tuner"},
                                        "ownerReferences": [{"kind": "DaemonSet", "name": "network-tuner"}]},
            "spec": dict(ds["spec"]["template"]["spec"], nodeName=node_name),
            "status": {"phase": "Running", "initContainerStatuses": [
                {"name": "tune", "restartCount": 0, "state": {"terminated": {
                    "exitCode": 0, "startedAt": stamp(remove[0] - 5), "finishedAt": stamp(remove[0] - 1)}}},
                {"name": "remove-taint", "restartCount": restarts, "state": {"terminated": {
                    "exitCode": 0, "startedAt": stamp(remove[0]), "finishedAt": stamp(remove[1])}}}]}}


def vllm_pod(name, node_name, *, scheduled=None, tolerate=False, event_at=None):
    p = {"kind": "Pod", "metadata": {"name": name, "namespace": "vllm", "labels": {"app": "vllm"}},
         "spec": {"nodeName": node_name, "containers": [{"name": "vllm", "image": "vllm/vllm-openai:v0.10.2"}],
                  "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]},
         "status": {"phase": "Running", "conditions": []}}
    if tolerate:
        p["spec"]["tolerations"].append({"key": KEY, "operator": "Exists", "effect": "NoSchedule"})
    if scheduled is not None:
        p["status"]["conditions"].append({"type": "PodScheduled", "status": "True",
                                          "lastTransitionTime": stamp(scheduled)})
    return p


def live(*objs, events=(), watch=None):
    return Observation(mode=LIVE, source="test", objects=list(objs), events=list(events), watch=watch, namespace="vllm")


S = Settings(namespace="vllm")


def test_good_cluster_from_join_time_tuner_pods():
    obs = live(node("gpu-1"), node("gpu-2"), tuner_ds(), tuner_pod("gpu-1"), tuner_pod("gpu-2", remove=(20, 21)),
               vllm_pod("vllm-a", "gpu-1", scheduled=16), vllm_pod("vllm-b", "gpu-2", scheduled=40))
    r = run_check("K8S-TAINT-001", obs, S)
    assert verdict(r) == PASS and r.measured == 0, r.line()
    assert len(r.findings) == 2


def test_racy_cluster_pod_bound_one_second_before_removal():
    obs = live(node("gpu-1"), tuner_ds(), tuner_pod("gpu-1"), vllm_pod("vllm-a", "gpu-1", scheduled=14))
    r = run_check("K8S-TAINT-001", obs, S)
    assert verdict(r) == FAIL and r.measured == 1
    assert "vllm/vllm-a on node gpu-1" in r.actual and "10:00:14Z" in r.actual and "10:00:15Z" in r.actual
    assert r.findings[0]["verdict"] == "violation"


def test_tuner_pod_of_a_later_rollout_proves_only_an_upper_bound():
    # the DaemonSet was rolled an hour after the node joined: its removal is a no-op rerun
    obs = live(node("gpu-1"), tuner_ds(), tuner_pod("gpu-1", created=3600, remove=(3605, 3606)),
               vllm_pod("vllm-a", "gpu-1", scheduled=60))
    r = run_check("K8S-TAINT-001", obs, S)
    assert verdict(r) == INCONCLUSIVE and "cannot order them" in r.reason
    obs = live(node("gpu-1"), tuner_ds(), tuner_pod("gpu-1", created=3600, remove=(3605, 3606)),
               vllm_pod("vllm-a", "gpu-1", scheduled=4000))
    assert verdict(run_check("K8S-TAINT-001", obs, S)) == PASS
    # a remover that restarted: same, the first run may have removed it earlier
    nodes = node_evidence(live(node("gpu-1"), tuner_ds(), tuner_pod("gpu-1", restarts=2)), S, tuner_ds())
    assert nodes["gpu-1"].removed.lo == T0


def test_managed_fields_time_is_the_fallback():
    obs = live(node("gpu-1", managed_taint_at=30), vllm_pod("vllm-a", "gpu-1", scheduled=29))
    r = run_check("K8S-TAINT-001", obs, S)
    assert verdict(r) == FAIL and "managedFields" in r.actual


def test_no_history_is_inconclusive_with_the_way_out():
    obs = live(node("gpu-1"), vllm_pod("vllm-a", "gpu-1", scheduled=29))
    r = run_check("K8S-TAINT-001", obs, S)
    assert verdict(r) == INCONCLUSIVE and "--k8s-watch-s" in r.reason and r.measured is None


def test_taint_still_present_and_tolerating_pod_is_a_violation():
    obs = live(node("gpu-1", tainted=True), tuner_ds(), vllm_pod("vllm-a", "gpu-1", scheduled=29, tolerate=True))
    r = run_check("K8S-TAINT-001", obs, S)
    assert verdict(r) == FAIL and "still on the node" in r.actual
    assert verdict(run_check("K8S-TAINT-002", live(vllm_pod("x", "gpu-1", tolerate=True)), S)) == FAIL


def test_scheduler_event_time_beats_the_condition():
    ev = {"reason": "Scheduled", "involvedObject": {"kind": "Pod", "name": "vllm-a", "namespace": "vllm"},
          "message": "Successfully assigned vllm/vllm-a to gpu-1", "eventTime": iso(at(14.5))}
    # condition says 16 (after), the scheduler's own event says 14.5 (before the removal at 15)
    obs = live(node("gpu-1"), tuner_ds(), tuner_pod("gpu-1"), vllm_pod("vllm-a", "gpu-1", scheduled=16), events=[ev])
    r = run_check("K8S-TAINT-001", obs, S)
    assert verdict(r) == FAIL and "Scheduled event" in r.actual


def test_watch_evidence_wins_and_catches_untainted_joins():
    w = WatchLog(started=at(0), ended=at(10), taint_removed={"gpu-1": at(5.5)}, taint_seen={"gpu-1"},
                 bound={("vllm", "vllm-a"): ("gpu-1", at(4.5))})
    obs = live(node("gpu-1"), vllm_pod("vllm-a", "gpu-1", scheduled=99), watch=w)
    r = run_check("K8S-TAINT-001", obs, S)
    assert verdict(r) == FAIL and "(watch)" in r.actual
    w2 = WatchLog(started=at(0), ended=at(10), joined_untainted={"gpu-2"})
    obs = live(node("gpu-2", gpu=False), vllm_pod("vllm-b", "gpu-2", scheduled=9), watch=w2)
    r = run_check("K8S-TAINT-001", obs, Settings(namespace="vllm", gpu_node_selector="pool=gpu"))
    assert verdict(r) == FAIL and "joined without the taint" in r.actual


def test_nothing_to_judge_is_inconclusive():
    r = run_check("K8S-TAINT-001", live(node("cpu-1", gpu=False)), S)
    assert verdict(r) == INCONCLUSIVE and "no GPU node" in r.reason
    r = run_check("K8S-TAINT-001", live(node("gpu-1"), tuner_ds(), tuner_pod("gpu-1")), S)
    assert verdict(r) == INCONCLUSIVE and "nothing to judge" in r.reason
    r = run_check("K8S-TAINT-001", Observation(mode=LIVE, source="t", unavailable={"Pod": "forbidden (HTTP 403)"}), S)
    assert verdict(r) == INCONCLUSIVE and "forbidden" in r.reason
