"""The pure judges on data: the reference passes every check, each broken variant fails exactly
the checks it names, and the edge cases of each rule (defaults, missing inputs -> inconclusive)."""

import copy
import importlib.util
from pathlib import Path

import pytest

from k8s_scenarios import verdict
from pytest_inference.claims import FAIL, INCONCLUSIVE, PASS
from pytest_inference.k8s.checks import (CHECKS, image_pinned, mount_options, run_all, run_check,
                                         template_leftovers)
from pytest_inference.k8s.manifests import ManifestError, load_manifests
from pytest_inference.k8s.model import (LIVE, STATIC, Observation, SelectorError, Settings, label_selector_matches,
                                        parse_selector, selector_matches)

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fixtures" / "k8s"
SEED_LOAD = Settings(model_load_s=220, model_load_source="seed")


def _make_broken():
    spec = importlib.util.spec_from_file_location("make_broken", FIXTURES / "make_broken.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


MB = _make_broken()


def _make_variants():
    spec = importlib.util.spec_from_file_location("make_variants", FIXTURES / "make_variants.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


MV = _make_variants()
#: the deployment's static checks (the K8S-SUITE-* ones judge pytest-inference's own manifests: test_incluster_checks.py)
STATIC_IDS = {cid for cid, c in CHECKS.items() if STATIC in c.modes and c.spec.concern != "incluster"}


def statuses(obs, s=SEED_LOAD):
    return {cid: verdict(r) for cid, r in run_all(obs, s).items()}


def reference():
    return load_manifests(FIXTURES / "reference")


def test_reference_passes_every_static_check():
    res = run_all(reference(), SEED_LOAD)
    assert set(res) == STATIC_IDS and len(STATIC_IDS) == 15
    bad = {cid: r.line() for cid, r in res.items() if verdict(r) != PASS}
    assert bad == {}
    assert all(r.measured is not None for r in res.values())


@pytest.mark.parametrize("variant", sorted(MB.VARIANTS))
def test_broken_variant_fails_exactly_its_checks(variant):
    what, expected, _ = MB.VARIANTS[variant]
    res = run_all(load_manifests(FIXTURES / "broken" / variant), SEED_LOAD)
    failed = {cid for cid, r in res.items() if verdict(r) == FAIL}
    assert failed == expected, {cid: res[cid].line() for cid in failed ^ expected}
    assert all(verdict(r) == PASS for cid, r in res.items() if cid not in expected)
    for cid in expected:  # every failure says what, what was expected, and how to fix it
        r = res[cid]
        assert r.id in r.line() and r.actual in r.line() and r.remediation in r.line()
        assert r.measured is not None and r.findings


@pytest.mark.parametrize("variant", sorted(MV.VARIANTS))
def test_staging_variant_is_judged_as_declared(variant):
    """A8: a model staged without a download Job is not a failure: an init container that downloads
    into the claim or a PVC annotated pytest-inference/model-staged passes; nothing shown is
    inconclusive (with what would show it) — never fail."""
    what, expected, _ = MV.VARIANTS[variant]
    res = run_all(load_manifests(FIXTURES / "variants" / variant), SEED_LOAD)
    got = {cid: verdict(r) for cid, r in res.items() if verdict(r) != PASS}
    assert got == expected, {cid: res[cid].line() for cid in set(got) | set(expected)}
    r = res["K8S-STORAGE-003"]
    if verdict(r) == INCONCLUSIVE:
        assert "init container that downloads into the claim" in r.line() and "model-staged" in r.line()
    else:
        assert r.measured == 0 and ("init container download-model" in r.actual or "declared populated" in r.actual)


@pytest.mark.parametrize("variant", sorted(MV.VARIANTS))
def test_variant_folders_are_what_make_variants_writes(variant):
    folder = FIXTURES / "variants" / variant
    files = MV.render(variant)
    assert sorted(p.name for p in folder.iterdir()) == sorted(files)
    for name, text in files.items():
        assert (folder / name).read_text() == text, f"regenerate: python {FIXTURES / 'make_variants.py'}"


def test_staging_init_container_must_download_and_write():
    """An init container that mounts the claim read-only, or runs no downloader, does not count."""
    obs = load_manifests(FIXTURES / "variants" / "init-container-download")
    dep = next(o for o in obs.objects if o["kind"] == "Deployment")
    init = dep["spec"]["template"]["spec"]["initContainers"][0]
    init["volumeMounts"][0]["readOnly"] = True
    assert verdict(run_check("K8S-STORAGE-003", obs, SEED_LOAD)) == INCONCLUSIVE
    init["volumeMounts"][0]["readOnly"] = False
    init["command"] = ["/bin/sh", "-c", "ls /models"]
    r = run_check("K8S-STORAGE-003", obs, SEED_LOAD)
    assert verdict(r) == INCONCLUSIVE and "run no known downloader" in r.reason


def test_a_staged_annotation_other_than_true_does_not_count():
    obs = load_manifests(FIXTURES / "variants" / "staged-annotation")
    pvc = next(o for o in obs.objects if o["kind"] == "PersistentVolumeClaim")
    pvc["metadata"]["annotations"]["pytest-inference/model-staged"] = "false"
    assert verdict(run_check("K8S-STORAGE-003", obs, SEED_LOAD)) == INCONCLUSIVE


@pytest.mark.parametrize("variant", sorted(MB.VARIANTS))
def test_broken_folders_are_what_make_broken_writes(variant):
    folder = FIXTURES / "broken" / variant
    want = MB.render(variant)
    assert sorted(p.name for p in folder.iterdir()) == sorted(want)
    for name, text in want.items():
        assert (folder / name).read_text() == text, f"regenerate: python {FIXTURES / 'make_broken.py'}"


def test_variants_cover_every_static_check():
    covered = set().union(*(exp for _, exp, _ in MB.VARIANTS.values()))
    assert covered == STATIC_IDS


def test_seed_startup_budget_passes_without_the_seed_load():
    # the same 240 s budget holds for a 61 s load (mi300x) and fails the seed's 220 s
    obs = load_manifests(FIXTURES / "broken" / "short-startup-budget")
    assert verdict(run_check("K8S-DEPLOY-002", obs, Settings(model_load_s=61))) == PASS
    r = run_check("K8S-DEPLOY-002", obs, SEED_LOAD)
    assert verdict(r) == FAIL and r.measured == pytest.approx(240 - 275)


def test_startup_budget_without_a_load_time_is_inconclusive():
    r = run_check("K8S-DEPLOY-002", reference(), Settings())
    assert verdict(r) == INCONCLUSIVE and "--model-load-s" in r.reason


def test_margin_and_drain_settings_change_the_verdicts():
    obs = reference()
    assert verdict(run_check("K8S-DEPLOY-002", obs, Settings(model_load_s=220, model_load_margin=2.0))) == FAIL
    r = run_check("K8S-DEPLOY-004", obs, Settings(max_drain_s=115))
    assert verdict(r) == FAIL and r.measured == 0  # 120 s grace vs 5 s sleep + 115 s: no headroom is a fail
    assert verdict(run_check("K8S-DEPLOY-004", obs, Settings(max_drain_s=114))) == PASS


# --------------------------------------------------------------------------- rules on small objects


def dep(**spec_overrides):
    d = {"kind": "Deployment", "metadata": {"name": "vllm", "namespace": "vllm"},
         "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "vllm"}},
                  "template": {"metadata": {"labels": {"app": "vllm"}},
                               "spec": {"containers": [{"name": "vllm", "image": "vllm/vllm-openai:v0.10.2"}]}}}}
    d["spec"].update(spec_overrides)
    return d


def obs_of(*objs, mode=STATIC, **kw):
    return Observation(mode=mode, source="test", objects=[copy.deepcopy(o) for o in objs], **kw)


def test_rollout_defaults_are_flagged():
    r = run_check("K8S-DEPLOY-001", obs_of(dep()), Settings())
    assert verdict(r) == FAIL and r.measured == 2 and "(the default)" in r.actual
    r = run_check("K8S-DEPLOY-001", obs_of(dep(strategy={"type": "Recreate"})), Settings())
    assert verdict(r) == FAIL and "Recreate" in r.actual


def test_no_or_several_deployments_is_inconclusive():
    r = run_check("K8S-DEPLOY-001", obs_of({"kind": "Service", "metadata": {"name": "x"}}), Settings())
    assert verdict(r) == INCONCLUSIVE and "no Deployment" in r.reason
    other = dep()
    other["metadata"]["name"] = "vllm-b"
    r = run_check("K8S-DEPLOY-001", obs_of(dep(), other), Settings())
    assert verdict(r) == INCONCLUSIVE and "--vllm-deployment" in r.reason
    assert verdict(run_check("K8S-DEPLOY-001", obs_of(dep(), other), Settings(deployment="vllm-b"))) == FAIL
    assert verdict(run_check("K8S-DEPLOY-001", obs_of(dep(), other), Settings(deployment="nope"))) == INCONCLUSIVE


def test_unreadable_kind_is_inconclusive_not_pass():
    obs = obs_of(dep(), mode=LIVE, unavailable={"PodDisruptionBudget": "forbidden (HTTP 403)"})
    r = run_check("K8S-DEPLOY-007", obs, Settings())
    assert verdict(r) == INCONCLUSIVE and "forbidden" in r.reason


def test_pdb_that_blocks_drains_fails():
    pdb = {"kind": "PodDisruptionBudget", "metadata": {"name": "p", "namespace": "vllm"},
           "spec": {"maxUnavailable": 0, "selector": {"matchLabels": {"app": "vllm"}}}}
    r = run_check("K8S-DEPLOY-007", obs_of(dep(), pdb), Settings())
    assert verdict(r) == FAIL and "drains hang" in r.actual
    pdb["spec"] = {"minAvailable": 1, "selector": {"matchLabels": {"app": "vllm"}}}
    assert verdict(run_check("K8S-DEPLOY-007", obs_of(dep(), pdb), Settings())) == PASS
    pdb["spec"]["selector"] = {"matchLabels": {"app": "other"}}
    assert verdict(run_check("K8S-DEPLOY-007", obs_of(dep(), pdb), Settings())) == FAIL


@pytest.mark.parametrize("image, pinned", [
    ("vllm/vllm-openai:v0.10.2", True), ("busybox:1.36.1", True), ("reg:5000/a/b:2024.1", True),
    ("vllm/vllm-openai@sha256:" + "a" * 64, True), ("vllm/vllm-openai:latest", False),
    ("vllm/vllm-openai", False), ("reg:5000/a/b", False), ("python:slim", False), ("x:stable", False),
])
def test_image_pinned(image, pinned):
    assert image_pinned(image) is pinned


def test_mount_options_parse_lists_and_commas():
    pv = {"spec": {"mountOptions": ["vers=4.1,nconnect=16", "hard", " rsize=1048576 "]}}
    assert mount_options(pv) == {"vers": "4.1", "nconnect": "16", "hard": None, "rsize": "1048576"}


def test_nfs_version_and_nconnect_bounds():
    obs = reference()
    pv = obs.get("PersistentVolume", "models-nfs")
    for opts, ok in ((["nfsvers=4.2", "nconnect=16"], True), (["vers=4", "nconnect=8"], False),
                     (["vers=4.0", "nconnect=8"], False), (["vers=4.1", "nconnect=4"], False),
                     (["vers=4.1"], False), (["nconnect=8"], False)):
        pv["spec"]["mountOptions"] = opts
        assert (verdict(run_check("K8S-STORAGE-002", obs, Settings())) == PASS) is ok, opts
    pv["spec"]["mountOptions"] = ["vers=4.1", "nconnect=8"]
    assert verdict(run_check("K8S-STORAGE-002", obs, Settings(nconnect_min=16))) == FAIL


def test_non_nfs_volume_is_inconclusive():
    obs = reference()
    pv = obs.get("PersistentVolume", "models-nfs")
    del pv["spec"]["nfs"]
    pv["spec"]["csi"] = {"driver": "dobs.csi.digitalocean.com", "volumeHandle": "x"}
    r = run_check("K8S-STORAGE-002", obs, Settings())
    assert verdict(r) == INCONCLUSIVE and "not an NFS volume" in r.reason


def test_keyless_exists_toleration_counts_as_tolerating():
    obs = reference()
    d = obs.get("Deployment", "vllm")
    d["spec"]["template"]["spec"]["tolerations"].append({"operator": "Exists"})
    r = run_check("K8S-TAINT-002", obs, Settings())
    assert verdict(r) == FAIL and "tolerates every taint" in r.actual


def test_toleration_for_another_effect_is_not_tolerating_the_gate():
    obs = reference()
    d = obs.get("Deployment", "vllm")
    d["spec"]["template"]["spec"]["tolerations"].append(
        {"key": "node.digitalocean.com/network-not-tuned", "operator": "Exists", "effect": "NoExecute"})
    assert verdict(run_check("K8S-TAINT-002", obs, Settings())) == PASS


def test_tuner_rbac_unknown_role_is_inconclusive_and_no_patch_fails():
    obs = reference()
    b = obs.get("ClusterRoleBinding", "network-tuner")
    b["roleRef"]["name"] = "somewhere-else"
    r = run_check("K8S-TUNER-002", obs, Settings())
    assert verdict(r) == INCONCLUSIVE and "somewhere-else" in r.reason
    obs = reference()
    obs.get("ClusterRole", "network-tuner")["rules"] = [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]}]
    r = run_check("K8S-TUNER-002", obs, Settings())
    assert verdict(r) == FAIL and "cannot remove the taint" in r.actual


def test_tuner_without_host_network_fails_coverage():
    obs = reference()
    obs.get("DaemonSet", "network-tuner")["spec"]["template"]["spec"]["hostNetwork"] = False
    r = run_check("K8S-TUNER-001", obs, Settings())
    assert verdict(r) == FAIL and "hostNetwork" in r.actual


def test_tuner_script_without_set_e_is_flagged():
    obs = reference()
    init = obs.get("DaemonSet", "network-tuner")["spec"]["template"]["spec"]["initContainers"][0]
    init["command"][2] = init["command"][2].replace("set -eu\n", "")
    r = run_check("K8S-TUNER-003", obs, Settings())
    assert verdict(r) == FAIL and "without 'set -e'" in r.actual


def test_prestop_kinds():
    obs = reference()
    c = obs.get("Deployment", "vllm")["spec"]["template"]["spec"]["containers"][0]
    c["lifecycle"] = {"preStop": {"sleep": {"seconds": 30}}}
    r = run_check("K8S-DEPLOY-003", obs, Settings())
    assert verdict(r) == FAIL and "not an exec hook" in r.actual
    c["lifecycle"] = {"preStop": {"exec": {"command": ["/drain.sh"]}}}
    r = run_check("K8S-DEPLOY-003", obs, Settings())
    assert verdict(r) == INCONCLUSIVE and "does not show" in r.reason
    del c["lifecycle"]
    assert verdict(run_check("K8S-DEPLOY-003", obs, Settings())) == FAIL


def test_template_leftovers_spare_shell_variables_in_scripts():
    d = dep()
    c = d["spec"]["template"]["spec"]["containers"][0]
    c["command"] = ["/bin/sh", "-c", 'echo "${NODE_NAME}" ${HOME:-/root}']
    c["args"] = ["--model=/models/${model_name}"]          # not a script: Kubernetes never expands ${}
    c["env"] = [{"name": "X", "value": "{{ .Values.x }}"}]
    found = dict(template_leftovers(d))
    assert set(found) == {"spec.template.spec.containers.0.args.0", "spec.template.spec.containers.0.env.0.value"}
    c["command"][2] = "echo $$"  # the PID, where a Terraform-escaped $ was meant
    assert "spec.template.spec.containers.0.command.2" in dict(template_leftovers(d))


def test_selectors():
    assert parse_selector("a=b, c!=d,e,!f,g in (x, y),h notin (z)") == [
        ("a", "=", ("b",)), ("c", "!=", ("d",)), ("e", "exists", ()), ("f", "!exists", ()),
        ("g", "in", ("x", "y")), ("h", "notin", ("z",))]
    labels = {"a": "b", "e": "1", "g": "y"}
    assert selector_matches("a=b,e,!f,g in (x,y),h notin (z)", labels)
    assert not selector_matches("a=c", labels) and not selector_matches("f", labels)
    assert not selector_matches("g notin (y)", labels)
    with pytest.raises(SelectorError):
        parse_selector("g in x")
    assert label_selector_matches({}, {"a": "b"}) and not label_selector_matches(None, {"a": "b"})
    assert label_selector_matches({"matchExpressions": [{"key": "a", "operator": "In", "values": ["b"]}]}, labels)
    assert not label_selector_matches({"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]}, labels)


# --------------------------------------------------------------------------- the manifests loader


def test_manifests_multi_doc_list_and_json(tmp_path):
    (tmp_path / "a.yaml").write_text("---\nkind: Service\nmetadata: {name: s}\n---\n\n---\n"
                                     "kind: List\nitems:\n- {kind: Pod, metadata: {name: p}}\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.json").write_text('{"kind": "Node", "metadata": {"name": "n"}}')
    (tmp_path / "notes.txt").write_text("ignored")
    obs = load_manifests(tmp_path)
    assert [(o["kind"], o["metadata"]["name"]) for o in obs.objects] == [("Service", "s"), ("Pod", "p"), ("Node", "n")]
    assert obs.origin[("Node", None, "n")] == "sub/b.json#1"


@pytest.mark.parametrize("files, needle", [
    (None, "no such folder"),
    ({}, "no .yaml, .yml or .json files"),
    ({"a.yaml": "kind: Service\nmetadata: {name: [unclosed\n"}, "a.yaml:"),
    ({"a.yaml": "replicas: {{ .Values.replicas }}\n"}, "unrendered Helm/Go template"),
    ({"a.yaml": "- just\n- a list\n"}, "not a Kubernetes object"),
    ({"a.yaml": "metadata: {name: x}\n"}, "has no 'kind'"),
    ({"a.yaml": "kind: Pod\nmetadata: {}\n"}, "no metadata.name"),
    ({"a.yaml": "---\n---\n"}, "hold no Kubernetes objects"),
])
def test_manifests_errors_are_one_line(tmp_path, files, needle):
    folder = tmp_path / "m"
    if files is not None:
        folder.mkdir()
        for name, text in files.items():
            (folder / name).write_text(text)
    with pytest.raises(ManifestError) as e:
        load_manifests(folder)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_manifests_path_is_a_file(tmp_path):
    f = tmp_path / "x.yaml"
    f.write_text("kind: Pod\nmetadata: {name: p}\n")
    with pytest.raises(ManifestError, match="not a folder"):
        load_manifests(f)
