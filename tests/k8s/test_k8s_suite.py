"""suites/k8s end to end in child pytest runs (pytester, subprocess): static on the fixtures, live
against the emulated API server through a generated kubeconfig, one-line errors, read-only unless
--k8s-allow-mutations."""

import json
import socket
import time
from pathlib import Path

import pytest

from k8s_scenarios import Controller, cluster
from pytest_inference.k8s.observe import USER_AGENT
from pytest_inference.testing.kube_emulator import KubeEmulator

ROOT = Path(__file__).resolve().parents[2]
SUITE = ROOT / "suites" / "k8s"
FIXTURES = ROOT / "fixtures" / "k8s"
STATIC_TESTS = 15
#: K8S-SUITE-*: skipped where no pytest-inference objects are (tests/k8s/test_incluster_checks.py judges them)
INCLUSTER = 5


def run_suite(pytester, *args):
    report = pytester.path / "report"
    t0 = time.monotonic()
    res = pytester.runpytest_subprocess(str(SUITE), "-p", "no:cacheprovider", "--rootdir", str(ROOT),
                                        "--inference-report", str(report), "-rs", *map(str, args), timeout=300)
    res.seconds = time.monotonic() - t0
    summary = report / "summary.json"
    data = json.loads(summary.read_text()) if summary.exists() else {}
    claims = {c["details"].get("check", c["metric"]): c for c in data.get("claims", [])}
    return res, claims, data


def test_static_reference_passes(pytester):
    res, claims, data = run_suite(pytester, "--manifests", FIXTURES / "reference")
    res.assert_outcomes(passed=STATIC_TESTS, skipped=3 + INCLUSTER)
    out = res.stdout.str()
    assert "k8s: static, manifests" in out and "(11 objects)" in out
    assert "K8S-TAINT-001 needs a live cluster" in out
    assert "changes the cluster: run with --k8s-allow-mutations" not in out  # static: a live cluster first
    assert len(claims) == STATIC_TESTS and all(c["verdict"] == "pass" for c in claims.values())
    d = claims["K8S-STORAGE-002"]["details"]
    assert d["expected"].startswith("the model PV's mountOptions") and "nconnect=8" in d["actual"] and d["remediation"]
    assert data["run"]["k8s_mode"] == "static" and data["run"]["k8s_source"].startswith("manifests ")
    assert all(c["samples"] == 1 for c in claims.values())
    assert res.seconds < 60


@pytest.mark.parametrize("variant, target, cid, needles", [
    ("short-startup-budget", "h100", "K8S-DEPLOY-002", ["240 s for a 220 s load", "headroom -35 s", "failureThreshold"]),
    ("tuner-or-true", "cpu-local", "K8S-TUNER-003", ["|| true' masks a failure", "set -e"]),
])
def test_static_broken_variant_fails_its_check_in_one_line(pytester, variant, target, cid, needles):
    res, claims, _ = run_suite(pytester, "--manifests", FIXTURES / "broken" / variant, "--target", target)
    res.assert_outcomes(passed=STATIC_TESTS - 1, failed=1, skipped=3 + INCLUSTER)
    line = next(ln for ln in res.stdout.lines if ln.startswith(cid))
    for n in needles + ["— fix:", f"target {target} requires"]:
        assert n in line, line
    assert "Traceback" not in res.stdout.str()
    c = claims[cid]
    assert c["verdict"] == "fail" and c["details"]["check"] == cid and c["details"]["remediation"] in line
    assert [k for k, v in claims.items() if v["verdict"] != "pass"] == [cid]
    # Allure: the failing test carries the check id as a parameter and the check's details as an attachment
    results = [json.loads(p.read_text()) for p in (pytester.path / "report" / "allure-results").glob("*-result.json")]
    (failed,) = [r for r in results if r["status"] == "failed"]
    assert {"name": "check", "value": repr(cid)} in failed.get("parameters", []) or \
        any(p["name"] == "check" and cid in p["value"] for p in failed.get("parameters", []))
    names = [a["name"] for st in failed.get("steps", []) for a in st.get("attachments", [])] + \
        [a["name"] for a in failed.get("attachments", [])]
    assert f"{cid} details" in names, names


@pytest.mark.parametrize("setup, args, needle", [
    (None, ["--manifests", "{p}/missing"], "--manifests {p}/missing: no such folder"),
    ({}, ["--manifests", "{p}/m"], "no .yaml, .yml or .json files in it"),
    ({"a.yaml": "kind: Service\nmetadata: {name: [x\n"}, ["--manifests", "{p}/m"], "not valid YAML"),
    ({"a.yaml": "kind: Pod\nmetadata: {name: p}\n"}, ["--manifests", "{p}/m", "--kubeconfig", "{p}/kc"],
     "exclude each other"),
    (None, ["--kubeconfig", "{p}/nope"], "--kubeconfig {p}/nope: no such file"),
    ("garbage", ["--kubeconfig", "{p}/kc"], "not a usable kubeconfig"),
    ("kubeconfig", ["--kubeconfig", "{p}/kc", "--context", "prod"], "--context prod: no such context"),
    (None, ["--manifests", str(FIXTURES / "reference"), "--model-load-s", "0"], "--model-load-s must be more than 0"),
    (None, ["--manifests", str(FIXTURES / "reference"), "--gpu-node-selector", "pool in gpu"], "needs a (value"),
])
def test_bad_input_is_one_line(pytester, setup, args, needle):
    if "--kubeconfig" in args and "--manifests" not in args:
        # reading a kubeconfig is the client's job: without it the line is "live mode needs the client"
        pytest.importorskip("kubernetes", reason="a kubeconfig is read by the Kubernetes client: "
                            "pip install -e '.[k8s]'")
    p = pytester.path
    if isinstance(setup, dict):
        (p / "m").mkdir()
        for name, text in setup.items():
            (p / "m" / name).write_text(text)
    elif setup == "garbage":
        (p / "kc").write_text("clusters: [unclosed\n")
    elif setup == "kubeconfig":
        (p / "kc").write_text("apiVersion: v1\nkind: Config\ncurrent-context: dev\nclusters: [{name: c, cluster: "
                              "{server: 'http://127.0.0.1:9'}}]\nusers: [{name: u, user: {}}]\n"
                              "contexts: [{name: dev, context: {cluster: c, user: u}}]\n")
    res, _, _ = run_suite(pytester, *[a.format(p=p) for a in args])
    assert res.ret == pytest.ExitCode.USAGE_ERROR
    err = res.stderr.str()
    assert needle.format(p=p) in err and "Traceback" not in err + res.stdout.str()


def test_no_mode_skips_every_test_with_the_way_to_choose(pytester):
    res, claims, _ = run_suite(pytester)
    res.assert_outcomes(skipped=STATIC_TESTS + 3 + INCLUSTER)
    assert "--kubeconfig FILE [--context NAME] judges a live cluster" in res.stdout.str()
    assert claims == {}


# --------------------------------------------------------------------------- live, emulated


NEEDS_EXTRAS = "the live tests need the emulated API server and the client: pip install -e '.[k8s,test]'"


@pytest.fixture
def kube():
    pytest.importorskip("kmock", reason=NEEDS_EXTRAS)
    pytest.importorskip("kubernetes", reason=NEEDS_EXTRAS)
    with KubeEmulator() as k:
        yield k


def test_live_good_cluster_passes_read_only(pytester, kube):
    kube.add(*cluster("good"))
    kc = kube.write_kubeconfig(pytester.path / "kc", namespace="vllm")
    res, claims, data = run_suite(pytester, "--kubeconfig", kc, "--k8s-watch-s", "1")
    res.assert_outcomes(passed=STATIC_TESTS + 1, skipped=2 + INCLUSTER)
    out = res.stdout.str()
    assert "k8s: live, context emulated" in out and "namespace vllm, read-only" in out
    assert claims["K8S-TAINT-001"]["verdict"] == "pass" and claims["K8S-TAINT-001"]["measured"] == 0
    mine = kube.suite_requests()
    assert mine and {r.method for r in mine} == {"GET"}, {(r.method, r.path) for r in mine if r.method != "GET"}
    assert {r.user_agent for r in mine} == {USER_AGENT}
    assert any(r.action in ("watch", "WATCH") for r in mine)
    assert "changes the cluster: run with --k8s-allow-mutations" in out
    assert res.seconds < 60


def test_live_racy_cluster_fails_the_timeline(pytester, kube):
    kube.add(*cluster("racy"))
    kc = kube.write_kubeconfig(pytester.path / "kc", namespace="vllm")
    res, claims, _ = run_suite(pytester, "--kubeconfig", kc, "--target", "h100")
    res.assert_outcomes(passed=STATIC_TESTS, failed=1, skipped=2 + INCLUSTER)
    line = next(ln for ln in res.stdout.lines if ln.startswith("K8S-TAINT-001"))
    for n in ("pod vllm/vllm-6d9f-a on node gpu-1", "2025-06-01T10:00:14Z", "2025-06-01T10:00:15Z", "— fix:",
              "k8s.taint_gate_violations = 1; target h100 requires == 0"):
        assert n in line, line
    (v,) = [f for f in claims["K8S-TAINT-001"]["details"]["findings"] if f["verdict"] == "violation"]
    assert v["node"] == "gpu-1" and v["pod"] == "vllm/vllm-6d9f-a"
    assert {r.method for r in kube.suite_requests()} == {"GET"}


def test_live_mutations_measure_and_clean_up(pytester, kube):
    objs = cluster("good")
    dep = next(o for o in objs if o["kind"] == "Deployment")
    dep["spec"]["replicas"] = 1
    dep["status"]["readyReplicas"] = 1
    kube.add(*objs)
    kc = kube.write_kubeconfig(pytester.path / "kc", namespace="vllm")
    with Controller(kube, delay_s=0.5):
        res, claims, _ = run_suite(pytester, "--kubeconfig", kc, "--k8s-allow-mutations", "--k8s-scale-timeout-s", "30",
                                   "--k8s-pod-timeout-s", "15")
    out = res.stdout.str()
    assert "MUTATIONS ALLOWED" in out
    scale = claims["K8S-SCALE-001"]
    assert scale["verdict"] == "pass" and 0.4 <= scale["measured"] < 10 and scale["unit"] == "s"
    assert scale["details"]["findings"][0]["from"] == 1 and scale["details"]["findings"][0]["to"] == 3
    # kmock cannot exec into a pod: the node check is inconclusive (a failed test), never a pass
    node = claims["K8S-NODE-001"]
    assert node["verdict"] == "inconclusive" and "gpu-1" in node["reason"]
    res.assert_outcomes(passed=STATIC_TESTS + 2, failed=1, skipped=INCLUSTER)
    # everything put back: replicas restored, probe pods deleted
    assert kube.get("Deployment", "vllm", "vllm")["spec"]["replicas"] == 1
    created = [r for r in kube.suite_requests() if r.method == "POST" and r.path.endswith("/pods")]
    deleted = [r for r in kube.suite_requests() if r.method == "DELETE"]
    assert len(created) == 2 and len(deleted) == 2
    assert not [k for k in kube.kmock.objects.keys() if "pytest-inference-probe" in k[2]
                and not kube.kmock.objects[k].deleted]


def test_live_unreachable_api_fails_each_test_in_one_line(pytester, kube):
    cfg = kube.kubeconfig(namespace="vllm")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg["clusters"][0]["cluster"]["server"] = f"http://127.0.0.1:{port}"
    import yaml

    (pytester.path / "kc").write_text(yaml.safe_dump(cfg))
    res, _, _ = run_suite(pytester, "--kubeconfig", pytester.path / "kc")
    assert res.ret == pytest.ExitCode.TESTS_FAILED
    out = res.stdout.str()
    msg = f"cannot reach the Kubernetes API at http://127.0.0.1:{port}"
    assert msg in out and "Connection refused" in out and "Traceback" not in out
    res.assert_outcomes(errors=STATIC_TESTS + 1 + INCLUSTER, skipped=2)  # the mutation tests skip before asking the API
    assert out.count(msg) == STATIC_TESTS + 1 + INCLUSTER  # once per test that needs the cluster
    assert "During handling" not in out


def test_collects_beside_every_other_suite(pytester):
    """The main job runs all suites in one session: module names must not collide."""
    res = pytester.runpytest_subprocess(str(ROOT / "suites"), "--co", "-q", "-p", "no:cacheprovider", "--rootdir",
                                        str(ROOT), "--manifests", str(FIXTURES / "reference"), timeout=120)
    assert res.ret == 0, res.stdout.str()
    assert sum(1 for ln in res.stdout.lines if ln.startswith("suites/k8s/")) == STATIC_TESTS + 3 + INCLUSTER


def test_without_the_client_a_kubeconfig_is_one_line_naming_the_extra(tmp_path):
    """C20(b): without the k8s extra, live mode says what to install in one line (the static mode,
    above, needs no client). The client is hidden from the child as an uninstalled package is."""
    import subprocess
    import sys

    (tmp_path / "kc").write_text("apiVersion: v1\nkind: Config\n")
    code = ("import sys; sys.modules['kubernetes'] = None; import pytest; sys.exit(pytest.main(["
            f"{str(SUITE)!r}, '-p', 'no:cacheprovider', '--rootdir', {str(ROOT)!r}, '--kubeconfig', "
            f"{str(tmp_path / 'kc')!r}, '--inference-report', {str(tmp_path / 'report')!r}]))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "live mode needs the official Kubernetes client: pip install 'pytest-inference[k8s]'" in proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
