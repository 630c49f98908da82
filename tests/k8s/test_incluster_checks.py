"""The K8S-SUITE-* checks on pytest-inference's own in-cluster manifests: what `pytest-inference k8s
manifests` generates (plain Jobs + node DaemonSet + Indexed load Job, and the Sonobuoy plugin pair)
passes every one; each planted defect fails exactly the check that names it, in one line with the
fix; a manifest set without pytest-inference's objects has nothing to judge (skipped, left out of
run_all); and the suite itself on the written YAML (tests/suite_runner.py)."""

import copy
import time
from pathlib import Path

import pytest

from k8s_scenarios import verdict
from pytest_inference.claims import FAIL, INCONCLUSIVE, PASS
from pytest_inference.incluster import manifests as gen
from pytest_inference.k8s.checks import CHECKS, applies, run_all, run_check
from pytest_inference.k8s.manifests import ManifestError, load_manifests
from pytest_inference.k8s.model import Settings
from suite_runner import run_suite

ROOT = Path(__file__).resolve().parents[2]
SUITE_FILE = ROOT / "suites" / "k8s" / "test_k8s_incluster.py"
IDS = [cid for cid in CHECKS if cid.startswith("K8S-SUITE-")]
S = Settings()
IMAGE = "registry.example.com/pytest-inference:0.9.0"
START = 1_900_000_000.0


def generated(sonobuoy=False):
    """H4's generator, every variant at once (plain: serving Job, node DaemonSet, 4 load shards)."""
    o = gen.Options(image=IMAGE, target="cpu-local", suites=("warm", "api"), node_suite=True,
                    load_shards=0 if sonobuoy else 4, load_start_at=None if sonobuoy else START, sonobuoy=sonobuoy)
    return gen.generate(o)


def written(tmp_path, objects, name="m"):
    d = tmp_path / name
    gen.write(objects, d)
    return d


def judge_all(tmp_path, objects, name="m"):
    obs = load_manifests(written(tmp_path, objects, name))
    return {cid: run_check(cid, obs, S) for cid in IDS}


def _all(objects, kind):
    return [o for docs in objects.values() for o in docs if o.get("kind") == kind]


def pod(o):
    return o["spec"]["template"]["spec"] if "kind" in o else o["podSpec"]


def main_container(o):
    return o["spec"]["template"]["spec"]["containers"][0] if "kind" in o else o["spec"]


@pytest.mark.parametrize("sonobuoy", [False, True], ids=["plain", "sonobuoy"])
def test_generated_manifests_pass_every_incluster_check(tmp_path, sonobuoy):
    res = judge_all(tmp_path, generated(sonobuoy))
    # Sonobuoy runs a Job plugin as a bare pod, and every plugin pod under its own ServiceAccount
    skipped = {"K8S-SUITE-005": "no Job", "K8S-SUITE-002": "Sonobuoy runs their pods"} if sonobuoy else {}
    assert {cid: r.line() for cid, r in res.items() if verdict(r) != PASS and cid not in skipped} == {}
    for cid, why in skipped.items():
        assert verdict(res[cid]) == INCONCLUSIVE and why in res[cid].reason
    assert "3 containers" in res["K8S-SUITE-001"].actual if not sonobuoy else "2 containers" in res["K8S-SUITE-001"].actual
    if not sonobuoy:
        assert "2 Job(s)" in res["K8S-SUITE-005"].actual
        assert "without an API token" in res["K8S-SUITE-002"].actual


def _set_image(objs, image):
    main_container(objs[0])["image"] = image


def _no_token(objects):
    for o in [*_all(objects, "Job"), *_all(objects, "DaemonSet"), *_all(objects, "ServiceAccount")]:
        (pod(o) if o["kind"] != "ServiceAccount" else o).pop("automountServiceAccountToken", None)


def _role(objects, rules, ref=None):
    ns = gen.DEFAULT_NAMESPACE
    objs = objects[gen.FILES["namespace"]]
    if ref is None:
        objs.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                     "metadata": {"name": "pi-reader", "namespace": ns}, "rules": rules})
        ref = {"kind": "Role", "name": "pi-reader"}
    objs.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding" if ref["kind"] == "Role"
                 else "ClusterRoleBinding", "metadata": {"name": "pi-bind", "namespace": ns},
                 "roleRef": {"apiGroup": "rbac.authorization.k8s.io", **ref},
                 "subjects": [{"kind": "ServiceAccount", "name": "pytest-inference", "namespace": ns}]})


def _script(objects, script, key="serving"):
    c = main_container(objects[gen.FILES[key]][0])
    c["command"], c["args"] = ["/bin/sh", "-c", script], []


def _toleration(objects, t):
    pod(objects[gen.FILES["node"]][0])["tolerations"].append(t)


def _privileged(objects):
    main_container(objects[gen.FILES["node"]][0])["securityContext"]["privileged"] = True


def _job(objects, **changes):
    job = objects[gen.FILES["load-shard"]][0]
    for k, v in changes.items():
        if k == "restartPolicy":
            pod(job)[k] = v
        elif v is None:
            job["spec"].pop(k, None)
        else:
            job["spec"][k] = v


RUN = "pytest-inference in-pod --print-results -- --pyargs pytest_inference.suites.warm"
#: name -> (plant it, the check it must fail, words the failing line carries)
DEFECTS = {
    "latest-image": (lambda m: _set_image(m[gen.FILES["serving"]], "registry.example.com/pytest-inference:latest"),
                     "K8S-SUITE-001", ["pytest-inference:latest", "--image"]),
    "untagged-image": (lambda m: _set_image(m[gen.FILES["node"]], "pytest-inference"),
                       "K8S-SUITE-001", ["runs pytest-inference"]),
    "token-mounted": (_no_token, "K8S-SUITE-002", ["mounts a ServiceAccount token no Role needs",
                                                   "automountServiceAccountToken: false"]),
    "role-writes": (lambda m: _role(m, [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "create"]}]),
                    "K8S-SUITE-002", ["verbs ['create']", "get/list/watch"]),
    "role-wildcard": (lambda m: _role(m, [{"apiGroups": [""], "resources": ["*"], "verbs": ["get"]}]),
                      "K8S-SUITE-002", ["a wildcard"]),
    "cluster-admin": (lambda m: _role(m, [], ref={"kind": "ClusterRole", "name": "cluster-admin"}),
                      "K8S-SUITE-002", ["built-in ClusterRole cluster-admin"]),
    "or-true": (lambda m: _script(m, f"set -e\n{RUN} || true"), "K8S-SUITE-003", ["|| true", "masks a failure"]),
    "semicolon-true": (lambda m: _script(m, f"{RUN}; true"), "K8S-SUITE-003", ["ends with 'true' after other commands"]),
    "set-plus-e": (lambda m: _script(m, f"set +e\n{RUN}"), "K8S-SUITE-003", ["set +e", "masks a failure"]),
    "exit-0": (lambda m: _script(m, f"{RUN}\nexit 0", key="node"), "K8S-SUITE-003", ["ends with 'exit 0'"]),
    "keyless-exists": (lambda m: _toleration(m, {"operator": "Exists"}), "K8S-SUITE-004", ["tolerates every taint"]),
    "control-plane": (lambda m: _toleration(m, {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists",
                                                "effect": "NoSchedule"}),
                      "K8S-SUITE-004", ["tolerates node-role.kubernetes.io/control-plane"]),
    "privileged": (_privileged, "K8S-SUITE-004", ["is privileged", "drop privileged: true"]),
    "backoff-3": (lambda m: _job(m, backoffLimit=3), "K8S-SUITE-005", ["backoffLimit 3"]),
    "backoff-default": (lambda m: _job(m, backoffLimit=None), "K8S-SUITE-005", ["no backoffLimit (the default 6"]),
    "on-failure": (lambda m: _job(m, restartPolicy="OnFailure"), "K8S-SUITE-005", ["restartPolicy OnFailure"]),
}


@pytest.mark.parametrize("defect", sorted(DEFECTS))
def test_each_planted_defect_fails_exactly_its_check_with_the_fix(tmp_path, defect):
    plant, cid, words = DEFECTS[defect]
    objects = copy.deepcopy(generated())
    plant(objects)
    res = judge_all(tmp_path, objects)
    failed = {c for c, r in res.items() if verdict(r) == FAIL}
    assert failed == {cid}, {c: res[c].line() for c in failed | {cid}}
    r = res[cid]
    line = r.line()
    assert line.startswith(cid) and r.remediation in line and r.findings and r.measured >= 1
    for w in words:
        assert w in line, line


@pytest.mark.parametrize("defect, cid, words", [
    ("plugin-latest", "K8S-SUITE-001", ["plugin", ":latest"]),
    ("plugin-keyless", "K8S-SUITE-004", ["SonobuoyPlugin pytest-inference-node", "tolerates every taint"]),
    ("plugin-or-true", "K8S-SUITE-003", ["|| true"]),
])
def test_sonobuoy_plugins_are_judged_too(tmp_path, defect, cid, words):
    objects = copy.deepcopy(generated(sonobuoy=True))
    serving, node = objects[gen.FILES["plugin-serving"]][0], objects[gen.FILES["plugin-node"]][0]
    if defect == "plugin-latest":
        serving["spec"]["image"] = "registry.example.com/pytest-inference:latest"
    elif defect == "plugin-keyless":
        node["podSpec"]["tolerations"].append({"operator": "Exists"})
    else:
        serving["spec"]["command"], serving["spec"]["args"] = ["sh", "-c", f"set -e; {RUN} || true"], []
    res = judge_all(tmp_path, objects)
    failed = {c for c, r in res.items() if verdict(r) == FAIL}
    assert failed == {cid}, {c: res[c].line() for c in failed}
    assert all(w in res[cid].line() for w in words), res[cid].line()


def test_without_pytest_inference_objects_nothing_is_judged():
    """The reference deployment holds none of pytest-inference's objects: the checks do not apply
    (run_all leaves them out; run alone, each is inconclusive with the reason — never a pass)."""
    obs = load_manifests(ROOT / "fixtures" / "k8s" / "reference")
    assert not set(IDS) & set(run_all(obs, S))
    for cid in IDS:
        why = applies(cid, obs)
        assert why and "app.kubernetes.io/part-of=pytest-inference" in why
        r = run_check(cid, obs, S)
        assert verdict(r) == INCONCLUSIVE and r.measured is None and r.reason == why


def test_a_set_without_a_node_daemonset_or_a_job_skips_only_those(tmp_path):
    o = gen.Options(image=IMAGE, target="cpu-local", suites=("warm",), node_suite=False)
    obs = load_manifests(written(tmp_path, gen.generate(o)))
    assert "no node DaemonSet" in applies("K8S-SUITE-004", obs)
    assert applies("K8S-SUITE-005", obs) is None and applies("K8S-SUITE-001", obs) is None
    assert {cid for cid in IDS if cid in run_all(obs, S)} == set(IDS) - {"K8S-SUITE-004"}


def test_a_sonobuoy_plugin_file_without_a_name_is_one_line(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "p.yaml").write_text("sonobuoy-config: {driver: Job}\nspec: {name: x, image: 'a:1'}\n")
    with pytest.raises(ManifestError, match=r"p.yaml document 1 \(Sonobuoy plugin\): sonobuoy-config has no plugin-name"):
        load_manifests(tmp_path / "m")


# --------------------------------------------------------------------------- the suite on the YAML


def test_the_suite_passes_the_generated_yaml_and_fails_a_planted_defect(tmp_path):
    t0 = time.monotonic()
    good = written(tmp_path, generated(), "good")
    (tmp_path / "a").mkdir()
    proc, out, summary, _ = run_suite(tmp_path / "a", "--manifests", str(good), "--target", "cpu-local",
                                      suite=SUITE_FILE, expect=0)
    claims = {c["details"]["check"]: c for c in summary["claims"]}
    assert set(claims) == set(IDS) and all(c["verdict"] == "pass" for c in claims.values()), out
    assert "5 passed" in out

    bad = copy.deepcopy(generated())
    DEFECTS["or-true"][0](bad)
    (tmp_path / "b").mkdir()
    proc, out, summary, _ = run_suite(tmp_path / "b", "--manifests", str(written(tmp_path, bad, "bad")),
                                      "--target", "cpu-local", suite=SUITE_FILE, expect=1)
    assert "1 failed, 4 passed" in out
    line = next(ln for ln in out.splitlines() if "K8S-SUITE-003" in ln and "|| true" in ln)
    assert "exec form" in line  # the fix, in the failing test's one line

    (tmp_path / "c").mkdir()
    proc, out, summary, _ = run_suite(tmp_path / "c", "--manifests", str(ROOT / "fixtures" / "k8s" / "reference"),
                                      "--target", "cpu-local", "-rs", suite=SUITE_FILE, expect=1)
    assert "5 skipped" in out and "nothing of pytest-inference's own to judge" in out
    assert "a gate that measured nothing is not green" in out  # alone, five skips are no pass
    assert time.monotonic() - t0 < 90


def test_live_the_applied_objects_are_judged_the_same_read_only(tmp_path):
    """Applied to a cluster (the emulated API server), the same objects pass, read with GETs only."""
    pytest.importorskip("kmock", reason="the emulated API server: pip install -e '.[k8s,test]'")
    pytest.importorskip("kubernetes", reason="the official client: pip install -e '.[k8s,test]'")
    from pytest_inference.k8s.observe import connect, observe
    from pytest_inference.testing.kube_emulator import KubeEmulator

    objects = copy.deepcopy(generated())
    objects[gen.FILES["load-shard"]][0]["spec"]["backoffLimit"] = 2   # and one defect, found live
    with KubeEmulator() as kube:
        kube.add(*(o for docs in objects.values() for o in docs))
        kc = kube.write_kubeconfig(tmp_path / "kc", namespace=gen.DEFAULT_NAMESPACE)
        obs = observe(connect(str(kc), None), Settings(namespace=gen.DEFAULT_NAMESPACE))
        assert {r.method for r in kube.suite_requests()} == {"GET"}
    res = {cid: r for cid, r in run_all(obs, Settings(namespace=gen.DEFAULT_NAMESPACE)).items() if cid in IDS}
    assert set(res) == set(IDS)
    assert {cid: verdict(r) for cid, r in res.items()} == {**{cid: PASS for cid in IDS}, "K8S-SUITE-005": FAIL}
    assert "pytest-inference-load" in res["K8S-SUITE-005"].actual and "backoffLimit 2" in res["K8S-SUITE-005"].actual
