"""`pytest-inference k8s collect` against the emulated API server: pods of the plain Jobs/DaemonSet
whose logs carry a results block (packed the way the in-pod entrypoint packs it), one still
running, one without a block, one cut short, one with a tar member that would escape; read-only
(every request the verb sends is a GET); bad input is one line."""

import base64
import io
import json
import socket
import tarfile

import pytest

pytest.importorskip("kmock", reason="the emulated API server: pip install -e '.[k8s,test]'")
pytest.importorskip("kubernetes", reason="the official client: pip install -e '.[k8s,test]'")

from pytest_inference.incluster import collect as C  # noqa: E402
from pytest_inference.incluster import entrypoint  # noqa: E402
from pytest_inference.testing.kube_emulator import KubeEmulator  # noqa: E402

NS = "pytest-inference"
JUNIT = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" tests="4">
<testcase classname="a" name="t1"/><testcase classname="a" name="t2"/>
<testcase classname="a" name="t3"><failure message="x"/></testcase>
<testcase classname="a" name="t4"><skipped message="y"/></testcase></testsuite></testsuites>"""
SUMMARY = {"claims": [{"metric": "warm.ttft_median_ms", "verdict": "pass"},
                      {"metric": "warm.failed_requests", "verdict": "pass"},
                      {"metric": "warm.ttft_p99_ms", "verdict": "fail"}]}


def results_dir(tmp_path, name="res"):
    d = tmp_path / name
    d.mkdir()
    (d / "junit.xml").write_text(JUNIT)
    (d / "summary.json").write_text(json.dumps(SUMMARY))
    (d / "records").mkdir()
    (d / "records" / "requests.jsonl").write_text('{"i": 1}\n')
    return d


def packed_log(folder, tmp_path):
    """The pod's log: pytest's output, then the block the in-pod entrypoint prints (contract C3),
    packed and printed by the entrypoint's own functions."""
    out = io.StringIO()
    entrypoint.print_results(entrypoint.pack(folder), out)
    return "===== 2 passed, 1 failed, 1 skipped in 2.0s =====\n" + out.getvalue()


def evil_log(member, kind=tarfile.REGTYPE):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo(member)
        info.type = kind
        data = b"pwned"
        if kind == tarfile.SYMTYPE:
            info.linkname = "/etc/passwd"
            tar.addfile(info)
        else:
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return C.BEGIN + "\n" + base64.b64encode(buf.getvalue()).decode() + "\n" + C.END + "\n"


def pod(name, role, phase="Succeeded", node="gpu-1", owner=("Job", "pi-warm"), part_of=True):
    labels = {C.ROLE_LABEL: role}
    if part_of:
        labels[C.PART_OF] = C.PART_OF_VALUE
    return {"kind": "Pod", "metadata": {"name": name, "namespace": NS, "labels": labels,
                                        "ownerReferences": [{"kind": owner[0], "name": owner[1]}]},
            "spec": {"nodeName": node, "containers": [{"name": "suite", "image": "x:1"}]},
            "status": {"phase": phase}}


def run(argv, capsys):
    """``pytest-inference k8s ARGV`` through the real command line."""
    from pytest_inference.cli import main

    try:
        rc = main(["k8s", *argv])
    except SystemExit as exc:
        rc = exc.code
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


@pytest.fixture
def kube():
    with KubeEmulator() as k:
        yield k


def test_collects_every_pod_read_only_and_says_what_it_could_not(kube, tmp_path, capsys):
    res = results_dir(tmp_path)
    good = packed_log(res, tmp_path)
    kube.add({"kind": "Namespace", "metadata": {"name": NS}},
             pod("pi-warm-abc", "serving"),
             pod("pi-node-x1", "node", phase="Running", node="gpu-7", owner=("DaemonSet", "pi-node")),
             pod("pi-load-0-q", "load-shard", owner=("Job", "pi-load")),
             pod("pi-load-1-q", "load-shard", owner=("Job", "pi-load")),
             pod("pi-load-2-q", "load-shard", owner=("Job", "pi-load")),
             pod("pi-load-3-q", "load-shard", phase="Pending", node="", owner=("Job", "pi-load")),
             pod("pi-evil-1", "serving", owner=("Job", "pi-evil")),
             pod("pi-evil-2", "serving", owner=("Job", "pi-evil2")),
             pod("vllm-0", "serving", part_of=False),   # not ours: never read
             {"kind": "Job", "metadata": {"name": "pi-later", "namespace": NS, "labels": {C.PART_OF: C.PART_OF_VALUE}},
              "spec": {"template": {"metadata": {"labels": {C.ROLE_LABEL: "serving"}}}}})
    kube.set_log(NS, "pi-warm-abc", good)
    kube.set_log(NS, "pi-node-x1", good)                              # a node pod waits after its results
    kube.set_log(NS, "pi-load-0-q", "collected 12 items\n")             # finished without a block
    kube.set_log(NS, "pi-load-1-q", good[: len(good) - 200])            # cut short
    kube.set_log(NS, "pi-load-2-q", good.replace("H4sI", "H4s*", 1))    # not base64
    kube.set_log(NS, "pi-evil-1", evil_log("../../escaped.txt"))
    kube.set_log(NS, "pi-evil-2", evil_log("link", tarfile.SYMTYPE))
    kube.set_log(NS, "vllm-0", good)
    kc = kube.write_kubeconfig(tmp_path / "kc", namespace=NS)
    out_dir = tmp_path / "collected"

    rc, out, err = run(["collect", "--kubeconfig", str(kc), "-o", str(out_dir)], capsys)

    assert rc == 1, out + err  # some pods gave no results
    rows = {r["pod"]: r for r in json.loads((out_dir / "collect.json").read_text())}
    assert set(rows) == {"pi-warm-abc", "pi-node-x1", "pi-load-0-q", "pi-load-1-q", "pi-load-2-q", "pi-load-3-q",
                         "pi-evil-1", "pi-evil-2", "(Job pi-later)"}
    warm = rows["pi-warm-abc"]
    assert (warm["status"], warm["passed"], warm["failed"], warm["verdicts"]) == ("collected", 2, 1, {"pass": 2, "fail": 1})
    assert (out_dir / "serving" / "pi-warm-abc" / "records" / "requests.jsonl").read_text() == '{"i": 1}\n'
    assert json.loads((out_dir / "node" / "gpu-7" / "summary.json").read_text()) == SUMMARY  # by node
    assert rows["pi-node-x1"]["status"] == "collected" and rows["pi-node-x1"]["phase"] == "Running"
    assert rows["pi-load-0-q"]["status"] == C.NO_BLOCK
    assert rows["pi-load-1-q"]["status"] == C.TRUNCATED and "end marker" in rows["pi-load-1-q"]["detail"]
    assert rows["pi-load-2-q"]["status"] == C.UNDECODABLE
    assert rows["pi-load-3-q"]["status"] == C.RUNNING and "waiting to start" in rows["pi-load-3-q"]["detail"]
    assert rows["pi-evil-1"]["status"] == C.UNSAFE and "escapes" in rows["pi-evil-1"]["detail"]
    assert rows["pi-evil-2"]["status"] == C.UNSAFE and "link" in rows["pi-evil-2"]["detail"]
    assert rows["(Job pi-later)"]["status"] == "no pod"
    assert not (tmp_path / "escaped.txt").exists() and not list(out_dir.rglob("escaped.txt"))
    assert not (out_dir / "serving" / "pi-evil-2").exists()  # nothing of an unsafe tarball is written
    # the table: one row per pod, the figures in it
    assert out.splitlines()[0].split() == ["pod", "node", "role", "phase", "passed/failed", "verdicts", "results"]
    line = next(ln for ln in out.splitlines() if ln.startswith("pi-warm-abc"))
    assert "gpu-1" in line and "serving" in line and "2/1" in line and "fail 1 pass 2" in line and "collected" in line
    assert "2 of 9 collected" in out
    # read-only: the verb sent only GETs, and never read a pod that is not ours
    seen = kube.suite_requests()
    assert seen and {r.method for r in seen} == {"GET"}
    assert not any("vllm-0" in r.path for r in seen)
    assert any(r.path.endswith("/pods/pi-warm-abc/log") for r in seen)


def test_selector_narrows_the_pods_and_all_collected_is_status_0(kube, tmp_path, capsys):
    good = packed_log(results_dir(tmp_path), tmp_path)
    kube.add({"kind": "Namespace", "metadata": {"name": NS}}, pod("pi-warm-a", "serving"),
             pod("pi-load-0", "load-shard", phase="Running"))
    kube.set_log(NS, "pi-warm-a", good)
    kc = kube.write_kubeconfig(tmp_path / "kc")
    rc, out, err = run(["collect", "--kubeconfig", str(kc), "--namespace", NS, "--selector",
                        f"{C.ROLE_LABEL}=serving", "-o", str(tmp_path / "o"), "--json"], capsys)
    assert rc == 0, out + err
    rows = json.loads(out)
    assert [r["pod"] for r in rows] == ["pi-warm-a"] and rows[0]["status"] == "collected"


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("case, needle", [
    ("bad-kubeconfig", "not a usable kubeconfig"),
    ("no-such-file", "no such file"),
    ("unknown-context", "--context nope: no such context"),
    ("unknown-namespace", "--namespace missing: no such namespace"),
    ("unreachable", "cannot reach the Kubernetes API"),
    ("bad-selector", "--selector"),
])
def test_bad_input_is_one_line(kube, tmp_path, capsys, case, needle):
    kube.add({"kind": "Namespace", "metadata": {"name": NS}})
    kc = kube.write_kubeconfig(tmp_path / "kc", namespace=NS)
    argv = ["collect", "--kubeconfig", str(kc), "-o", str(tmp_path / "o")]
    if case == "bad-kubeconfig":
        (tmp_path / "kc").write_text("clusters: [unclosed\n")
    elif case == "no-such-file":
        argv[2] = str(tmp_path / "nope")
    elif case == "unknown-context":
        argv += ["--context", "nope"]
    elif case == "unknown-namespace":
        argv += ["--namespace", "missing"]
    elif case == "unreachable":
        cfg = kube.kubeconfig(namespace=NS)
        cfg["clusters"][0]["cluster"]["server"] = f"http://127.0.0.1:{_free_port()}"
        (tmp_path / "kc").write_text(json.dumps(cfg))
    elif case == "bad-selector":
        argv += ["--selector", "a in (b"]
    rc, out, err = run(argv, capsys)
    assert rc == 2, out + err
    assert needle in err and err.startswith("pytest-inference k8s collect: ") and len(err.strip().splitlines()) == 1
    assert "Traceback" not in out + err


def test_block_parsing_is_pure_and_takes_the_last_block(tmp_path):
    first = results_dir(tmp_path, "first")
    (first / "summary.json").write_text("{}")
    log = "noise\n" + packed_log(first, tmp_path) + "more noise\n" + packed_log(results_dir(tmp_path), tmp_path)
    with tarfile.open(fileobj=io.BytesIO(C.extract_block(log)), mode="r:gz") as tar:
        assert json.loads(tar.extractfile("summary.json").read()) == SUMMARY  # the last block, the retry's
    with pytest.raises(C.BlockError, match="no results block"):
        C.extract_block("plain log\n")
    assert C.junit_counts(tmp_path / "res" / "junit.xml") == (2, 1)


def test_missing_out_is_one_line_naming_the_verb(capsys):
    rc, out, err = run(["collect", "--namespace", NS], capsys)
    assert rc == 2 and err.startswith("pytest-inference k8s collect: ") and "-o/--out" in err
    assert len(err.strip().splitlines()) == 1


def test_a_real_in_pod_run_is_collected_as_it_ran(kube, tmp_path, capsys):
    """End to end: the log is the real `pytest-inference in-pod --print-results` output of a real suite
    test (the entrypoint's stdout and stderr, as the kubelet keeps them), collected back to the same files."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    proc = subprocess.run([sys.executable, "-m", "pytest_inference.cli", "in-pod", "--results-dir", "res",
                           "--print-results", "--", str(repo / "suites/k8s/test_k8s_templates.py"), "--manifests",
                           str(repo / "fixtures/k8s/reference"), "--target", "cpu-local", "-p", "no:cacheprovider",
                           "-q"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    kube.add({"kind": "Namespace", "metadata": {"name": NS}}, pod("pi-serving-x", "serving"))
    kube.set_log(NS, "pi-serving-x", proc.stdout + proc.stderr)
    kc = kube.write_kubeconfig(tmp_path / "kc", namespace=NS)
    rc, out, err = run(["collect", "--kubeconfig", str(kc), "-o", str(tmp_path / "got"), "--json"], capsys)
    assert rc == 0, out + err
    (row,) = json.loads(out)
    assert (row["status"], row["passed"], row["failed"], row["verdicts"]) == ("collected", 1, 0, {"pass": 1})
    got = tmp_path / "got" / "serving" / "pi-serving-x"
    for name in ("junit.xml", "summary.json"):
        assert (got / name).read_bytes() == (tmp_path / "res" / name).read_bytes()
