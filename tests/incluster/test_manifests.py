"""``pytest-inference k8s manifests``: every variant generated, written, parsed back with
yaml.safe_load_all, and held to what the objects must be (labels, pinned image, exec-form args with
no shell, requests set, no API token, no privileged, only the GPU and not-tuned tolerations, the
Indexed Job's shard arguments); the Sonobuoy plugin files carry Sonobuoy's fields; and the
arguments in the YAML are run through the real ``in-pod`` entrypoint and pytest's option parser
(``--co`` on the fake endpoint), so a manifest cannot carry a flag that does not exist."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pytest_inference.cli import main
from pytest_inference.incluster import entrypoint, manifests as m
from pytest_inference.incluster.collect import extract_block
from pytest_inference.load import parse_shard, parse_start_at

REPO = Path(__file__).resolve().parents[2]
IMAGE = "registry.example/pytest-inference:0.1.0"
DIGEST = "registry.example/pytest-inference@sha256:" + "0123456789abcdef" * 4
NOW = 1_796_216_400.0  # 2026-12-02T13:00:00Z


def reference_scheduling():
    """The GPU node label and the taints, as the bundled reference deployment spells them."""
    docs = [d for f in sorted((REPO / "fixtures/k8s/reference").glob("*.yaml"))
            for d in yaml.safe_load_all(f.read_text()) if d]
    vllm = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["spec"]
    tuner = next(d for d in docs if d["kind"] == "DaemonSet")["spec"]["template"]["spec"]
    return vllm["nodeSelector"], {t["key"] for t in vllm["tolerations"]}, {t["key"] for t in tuner["tolerations"]}


def options(**kw) -> m.Options:
    return m.Options(**{"image": IMAGE, "target": "cpu-local", **kw})


VARIANTS = {
    "plain-default": dict(),
    "plain-everything": dict(suites=("warm", "api", "load"), node_suite=True, nfs_server="10.0.0.5", load_shards=4,
                             load_start_at=NOW + 300, load_args=["--load-rate=16", "--load-requests=200"],
                             model="tiny", api_key_secret="vllm-key/token", image=DIGEST),
    "plain-node-only": dict(suites=(), node_suite=True, gpu_vendor="amd"),
    "plain-shards-only": dict(suites=(), load_shards=3, load_start_at=NOW),
    "sonobuoy": dict(sonobuoy=True, node_suite=True, nfs_server="10.0.0.5"),
    "sonobuoy-node-only": dict(sonobuoy=True, suites=(), node_suite=True),
}


@pytest.fixture(params=sorted(VARIANTS))
def variant(request, tmp_path):
    """(options, {file: [objects parsed back from the written YAML]})"""
    o = options(**VARIANTS[request.param])
    generated = m.generate(o)
    m.write(generated, tmp_path)
    parsed = {p.name: [d for d in yaml.safe_load_all(p.read_text())] for p in sorted(tmp_path.glob("*.yaml"))}
    assert parsed == generated  # what is written is what was generated, nothing lost to YAML
    return o, parsed


def walk(node, path=()):
    if isinstance(node, dict):
        for k, v in node.items():
            yield path + (k,), v
            yield from walk(v, path + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from walk(v, path + (i,))


def pod_specs(parsed):
    """(role, pod spec, is_sonobuoy) for every pod the files define."""
    for docs in parsed.values():
        for d in docs:
            if "sonobuoy-config" in d:
                role = d["sonobuoy-config"]["plugin-name"].removeprefix("pytest-inference-")
                yield role, {**d["podSpec"], "containers": [d["spec"]]}, True
            elif d["kind"] in ("Job", "DaemonSet"):
                t = d["spec"]["template"]
                yield t["metadata"]["labels"][m.ROLE_LABEL], t["spec"], False


def test_every_object_is_labelled_pinned_exec_form_and_unprivileged(variant):
    o, parsed = variant
    pods = list(pod_specs(parsed))
    assert pods
    for docs in parsed.values():
        for d in docs:
            if "kind" in d:
                assert d["metadata"]["labels"]["app.kubernetes.io/part-of"] == "pytest-inference"
                if d["kind"] in ("Job", "DaemonSet"):
                    assert d["spec"]["template"]["metadata"]["labels"][m.ROLE_LABEL] in m.ROLES
            for path, value in walk(d):
                assert path[-1] not in ("privileged", "command"), path  # the image's entrypoint, no shell
                if isinstance(value, str):
                    assert "|| true" not in value and "latest" not in value, (path, value)
    for role, spec, sonobuoy in pods:
        (c,) = spec["containers"]
        assert c["image"] == o.image and m.check_image(c["image"])
        assert all(isinstance(a, str) for a in c["args"]) and "--" in c["args"]
        assert not {"sh", "bash", "/bin/sh", "-c"} & set(c["args"])
        assert c["resources"]["requests"]["cpu"] and c["resources"]["requests"]["memory"]
        assert c["securityContext"]["runAsNonRoot"] is True and c["securityContext"]["allowPrivilegeEscalation"] is False
        assert ("--print-results" in c["args"]) is (not sonobuoy)  # plain pods: results through the pod log
        assert ("--then-wait" in c["args"]) is (role == "node")    # a DaemonSet restarts an exited container
        if not sonobuoy:
            assert spec["automountServiceAccountToken"] is False and spec["serviceAccountName"] == "pytest-inference"


def test_the_namespace_file_gives_the_pods_no_api_rights(variant):
    o, parsed = variant
    if o.sonobuoy:
        assert not any("kind" in d for docs in parsed.values() for d in docs)  # plugin definitions only
        return
    kinds = {(d["kind"], d["metadata"]["name"]) for d in parsed[m.FILES["namespace"]]}
    assert kinds == {("Namespace", o.namespace), ("ServiceAccount", "pytest-inference")}
    sa = next(d for d in parsed[m.FILES["namespace"]] if d["kind"] == "ServiceAccount")
    assert sa["automountServiceAccountToken"] is False
    all_kinds = {d["kind"] for docs in parsed.values() for d in docs}
    assert not all_kinds & {"Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding", "Secret"}


def test_node_pods_use_the_node_network_and_tolerate_only_the_gpu_and_not_tuned_taints(variant):
    o, parsed = variant
    selector, vllm_taints, tuner_taints = reference_scheduling()
    nodes = [(spec, s) for role, spec, s in pod_specs(parsed) if role == "node"]
    assert bool(nodes) == o.node_suite
    for spec, sonobuoy in nodes:
        assert spec["hostNetwork"] is True  # the probes read the node's network namespace, nothing else of the host
        assert spec["dnsPolicy"] == "ClusterFirstWithHostNet" and "hostPID" not in spec and "hostIPC" not in spec
        assert all("emptyDir" in v for v in spec.get("volumes", []))  # no hostPath
        assert spec["containers"][0]["securityContext"]["capabilities"] == {"drop": ["ALL"]}  # none added
        assert spec["nodeSelector"] == selector  # the reference's GPU pool
        keys = [t["key"] for t in spec["tolerations"]]
        gpu = "amd.com/gpu" if o.gpu_vendor == "amd" else "nvidia.com/gpu"
        assert keys == [gpu, m.NOT_TUNED_TAINT]
        assert set(keys) <= tuner_taints and ("nvidia.com/gpu" in vllm_taints)  # the reference's exact keys
        assert all(t["operator"] == "Exists" and t["effect"] == "NoSchedule" for t in spec["tolerations"])
        assert spec["restartPolicy"] == "Always"
        args = spec["containers"][0]["args"]
        assert args[args.index("--node") + 1] == "local://"
    for role, spec, _ in pod_specs(parsed):
        if role != "node":  # clients of the Service: no host namespaces, no taints tolerated
            assert not {"hostNetwork", "hostPID", "tolerations", "nodeSelector"} & set(spec)


def test_load_shards_are_an_indexed_job_with_one_start(variant):
    o, parsed = variant
    shard_files = parsed.get(m.FILES["load-shard"])
    assert bool(shard_files) == bool(o.load_shards)
    if not shard_files:
        return
    (job,) = shard_files
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed" and spec["backoffLimit"] == 0
    assert spec["completions"] == spec["parallelism"] == o.load_shards
    assert spec["template"]["spec"]["restartPolicy"] == "Never"
    (c,) = spec["template"]["spec"]["containers"]
    env = {e["name"]: e for e in c["env"]}
    assert env["JOB_COMPLETION_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"] == \
        "metadata.annotations['batch.kubernetes.io/job-completion-index']"
    shard = [a for a in c["args"] if a.startswith("--load-shard=")]
    assert shard == [f"--load-shard=$(JOB_COMPLETION_INDEX)/{o.load_shards}"]
    for i in range(o.load_shards):  # what Kubernetes expands it to, per pod, is a valid shard
        assert parse_shard(shard[0].split("=", 1)[1].replace("$(JOB_COMPLETION_INDEX)", str(i))) == (i, o.load_shards)
    (start,) = [a.split("=", 1)[1] for a in c["args"] if a.startswith("--load-start-at=")]
    assert parse_start_at(start) == round(o.load_start_at) and start.endswith("Z")
    assert job["metadata"]["annotations"]["pytest-inference/load-start-at"] == start


def test_sonobuoy_plugins_have_sonobuoys_fields(variant):
    o, parsed = variant
    plugins = [d for docs in parsed.values() for d in docs if "sonobuoy-config" in d]
    assert bool(plugins) == o.sonobuoy
    for p in plugins:
        cfg = p["sonobuoy-config"]
        assert cfg["driver"] in ("Job", "DaemonSet") and cfg["plugin-name"].startswith("pytest-inference-")
        assert cfg["result-format"] == "junit" and cfg["result-files"] == ["junit.xml"]
        assert set(p) <= {"sonobuoy-config", "spec", "extra-volumes", "podSpec", "config-map"}  # Sonobuoy's Manifest
        assert p["spec"]["name"] and p["spec"]["image"] == o.image
        mounts = {v["name"]: v["mountPath"] for v in p["spec"]["volumeMounts"]}
        assert mounts["results"] == "/tmp/sonobuoy/results" == entrypoint.DEFAULT_DIR
        assert {v["name"] for v in p["extra-volumes"]} == {n for n in mounts if n != "results"}  # Sonobuoy adds results
        assert p["podSpec"]["containers"] == []  # Sonobuoy adds the plugin container and its worker
        assert (cfg["driver"] == "DaemonSet") is (cfg["plugin-name"] == "pytest-inference-node")
        assert p["podSpec"]["restartPolicy"] == ("Always" if cfg["driver"] == "DaemonSet" else "Never")


def test_an_api_key_comes_from_a_secret_and_is_never_written(tmp_path):
    o = options(api_key_secret="vllm-key/token")
    (job,) = m.generate(o)[m.FILES["serving"]]
    (c,) = job["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in c["env"]}
    assert env[m.API_KEY_ENV]["valueFrom"] == {"secretKeyRef": {"name": "vllm-key", "key": "token"}}
    assert c["args"][c["args"].index("--api-key-env") + 1] == m.API_KEY_ENV


@pytest.mark.parametrize("image", ["registry.example/p", "registry.example/p:latest", "p@sha256:abc",
                                   "localhost:5000/p", "p:1 2", "", "registry.example/p:stable", "p:main"])
def test_an_unpinned_image_is_refused(image):
    with pytest.raises(m.ManifestError, match="--image"):
        m.check_image(image)


def test_the_generator_refuses_what_the_suite_check_fails():
    """A moving tag other than latest (stable, main): the generator and K8S-SUITE-001 share one rule."""
    from pytest_inference.k8s.model import image_pinned

    with pytest.raises(m.ManifestError, match="names no version"):
        m.check_image("registry.example/p:stable")
    assert not image_pinned("registry.example/p:stable") and image_pinned(IMAGE)


@pytest.mark.parametrize("image", [IMAGE, DIGEST, "localhost:5000/p:v1", "p:latest-2026@sha256:" + "a" * 64])
def test_a_pinned_image_is_accepted(image):
    assert m.check_image(image) == image


def run_cli(argv):
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


@pytest.mark.parametrize("extra, says", [
    (["--image", "r/p"], "--image r/p: not pinned"),
    (["--suites", "warm,coldstart"], "coldstart cannot run as an in-cluster client"),
    (["--load-shards", "2", "--sonobuoy"], "--load-shards needs --plain"),
    (["--load-rate", "4"], "give --load-shards N"),
    (["--load-shards", "2", "--load-start-at", "13:00"], "--load-start-at '13:00'"),
    (["--load-shards", "2", "--load-start-at", "1", "--load-start-in", "5"], "not allowed with argument"),
    (["--endpoint", "ftp://x"], "not an http(s) URL"),
    (["--endpoint", "http://u:p@x/v1"], "must not contain credentials"),
    (["--suites", "", "--node-suite", "--node-selector", "gpu"], "--node-selector 'gpu'"),
    (["--suites", ""], "nothing to run"),
    (["--namespace", "Bad_NS"], "not a Kubernetes namespace name"),
    (["--bogus"], "unrecognized arguments: --bogus"),
])
def test_bad_input_is_one_line(extra, says, tmp_path, capsys):
    base = {"--image": IMAGE, "--target": "cpu-local", "-o": str(tmp_path / "out")}
    for k in list(base):
        if k in extra:
            base.pop(k)
    argv = ["k8s", "manifests", *[x for kv in base.items() for x in kv], *extra]
    assert run_cli(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("pytest-inference k8s manifests: ") and says in err and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()


def test_the_verb_writes_the_files_and_fixes_the_start_from_now(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(m.time, "time", lambda: NOW)
    assert main(["k8s", "manifests", "--image", IMAGE, "--target", "cpu-local", "--node-suite", "--load-shards", "2",
                 "--load-start-in", "120", "--load-rate", "8", "-o", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        m.FILES[k] for k in ("namespace", "serving", "node", "load-shard"))
    assert "kubectl apply -f" in out and "load shards start at 2026-12-02T13:02:00Z" in out
    (job,) = yaml.safe_load_all((tmp_path / m.FILES["load-shard"]).read_text())
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--load-start-at=2026-12-02T13:02:00Z" in args and "--load-rate=8" in args
    assert (tmp_path / m.FILES["namespace"]).read_text().startswith("# Generated by `pytest-inference k8s manifests`")


def test_help_documents_the_flags(capsys):
    assert run_cli(["k8s", "manifests", "--help"]) == 0
    out = capsys.readouterr().out
    for flag in ("--image", "--target", "--namespace", "--endpoint", "--suites", "--node-suite", "--load-shards",
                 "--load-start-at", "--load-start-in", "--load-rate", "--sonobuoy", "--plain", "--api-key-secret", "-o"):
        assert flag in out


# --- the generated arguments are real: in-pod's parser, then pytest's, on the fake endpoint -------------
def in_pod_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="in-pod", exit_on_error=False)
    entrypoint.add_arguments(p)

    def refuse(message):
        raise AssertionError(message)

    p.error = refuse
    return p


def test_generated_args_run_through_in_pod_and_pytests_option_parser(tmp_path):
    from pytest_inference.testing.fake_openai import FakeOpenAIServer

    with FakeOpenAIServer() as server:
        o = options(endpoint=server.base_url, suites=("warm", "api", "load"), node_suite=True, nfs_server="127.0.0.1",
                    load_shards=2, load_start_at=__import__("time").time() + 600, load_args=["--load-rate=4"],
                    api_key_secret="k/v", model="tiny")
        roles = {role: spec["containers"][0] for role, spec, _ in pod_specs(m.generate(o))}
        assert set(roles) == set(m.ROLES)
        env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
        env[m.API_KEY_ENV] = "not-a-real-key"
        for role, c in roles.items():
            args = [a.replace("$(JOB_COMPLETION_INDEX)", "1") for a in c["args"]]  # what the kubelet expands
            ns = in_pod_parser().parse_args(args)
            pytest_args = entrypoint.split_pytest_args(ns.pytest_args)
            assert ns.print_results and ns.then_wait is (role == "node")
            run_args = [a for a in args if a != "--then-wait"] + ["--co", "-q"]  # collect only; no waiting here
            r = subprocess.run([sys.executable, "-m", "pytest_inference.cli", "in-pod", "--results-dir",
                                str(tmp_path / role), *run_args], cwd=tmp_path, env=env, capture_output=True,
                               text=True, timeout=120)
            assert r.returncode == 0, (role, pytest_args, r.stdout[-2000:], r.stderr[-2000:])
            assert " collected" in r.stdout and "error" not in r.stdout.lower().split("collected")[-1], r.stdout[-1500:]
            suites = {a.rsplit(".", 1)[1] for a in pytest_args if a.startswith("pytest_inference.suites.")}
            assert suites == ({"node"} if role == "node" else {"load"} if role == "load-shard" else set(o.suites))
            assert extract_block(r.stdout) == (tmp_path / role / "results.tar.gz").read_bytes()
