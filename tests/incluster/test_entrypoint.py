"""``pytest-inference in-pod``: the container's entrypoint leaves Sonobuoy's layout (junit.xml,
summary.json, results.tar.gz named by ``done``), prints the same tarball for plain Jobs, treats failed
tests as results, and says bad input in one line."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from pytest_inference.cli import main
from pytest_inference.incluster import entrypoint
from pytest_inference.incluster.collect import extract_block

REPO = Path(__file__).resolve().parents[2]
#: one fast, real suite test (the k8s suite on the bundled reference manifests, no cluster)
FAST = [str(REPO / "suites/k8s/test_k8s_templates.py"), "--manifests", str(REPO / "fixtures/k8s/reference"),
        "--target", "cpu-local", "-p", "no:cacheprovider", "-q"]


def in_pod(args, cwd, env_extra=None, **kw):
    env = {**os.environ, **(env_extra or {})}
    env.pop("PYTEST_ADDOPTS", None)
    return subprocess.run([sys.executable, "-m", "pytest_inference.cli", "in-pod", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120, **kw)


def members(tarball: Path | bytes) -> dict[str, bytes]:
    src = tarfile.open(fileobj=io.BytesIO(tarball)) if isinstance(tarball, bytes) else tarfile.open(tarball)
    with src as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def test_sonobuoy_layout_and_printed_block(tmp_path):
    r = in_pod(["--print-results", "--", *FAST], cwd=tmp_path, env_extra={"SONOBUOY_RESULTS_DIR": "res"})
    assert r.returncode == 0, r.stderr
    d = tmp_path / "res"
    junit = ET.parse(d / "junit.xml").getroot()
    suite = junit if junit.tag == "testsuite" else junit.find("testsuite")
    assert int(suite.get("tests")) >= 1 and int(suite.get("failures")) == 0
    summary = json.loads((d / "summary.json").read_text())
    assert summary["claims"], summary.keys()
    tarball = Path((d / "done").read_text())
    assert tarball == d / "results.tar.gz" and tarball.is_file()
    inside = members(tarball)
    assert inside["junit.xml"] == (d / "junit.xml").read_bytes()
    assert inside["summary.json"] == (d / "summary.json").read_bytes()
    assert json.loads(inside["in-pod.json"])["pytest_exit_status"] == 0
    assert "done" not in inside and "results.tar.gz" not in inside
    # the pod-log copy (plain Jobs, read by `k8s collect`) decodes to the very same tarball
    assert extract_block(r.stdout) == tarball.read_bytes()
    assert r.stdout.rstrip().endswith(entrypoint.END)
    assert "1 passed" in r.stdout  # pytest's own output streamed before the block


def test_failed_tests_are_results_not_a_pod_failure(tmp_path):
    (tmp_path / "test_red.py").write_text("def test_red():\n    assert 1 == 2\n\ndef test_green():\n    pass\n")
    r = in_pod(["--results-dir", str(tmp_path / "out"), "--", "test_red.py", "-p", "no:cacheprovider"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    junit = ET.parse(tmp_path / "out/junit.xml").getroot()
    suite = junit if junit.tag == "testsuite" else junit.find("testsuite")
    assert (suite.get("tests"), suite.get("failures")) == ("2", "1")
    record = json.loads((tmp_path / "out/in-pod.json").read_text())
    assert record["pytest_exit_status"] == 1 and record["tests_ran"] is True
    assert "junit.xml" in members(tmp_path / "out/results.tar.gz")


def test_a_run_without_test_results_exits_3_but_still_signals_done(tmp_path):
    r = in_pod(["--results-dir", "out", "--", "--no-such-pytest-option"], cwd=tmp_path)
    assert r.returncode == 3
    assert "left no test results (pytest exit status 4)" in r.stderr
    d = tmp_path / "out"
    assert Path((d / "done").read_text()) == d / "results.tar.gz"
    assert json.loads(members(d / "results.tar.gz")["in-pod.json"])["tests_ran"] is False


def test_a_stale_done_is_removed_before_the_run(tmp_path):
    d = tmp_path / "out"
    d.mkdir()
    (d / "done").write_text("/old/results.tar.gz")
    entrypoint.prepare_dir(d)
    assert not (d / "done").exists()


@pytest.mark.parametrize("argv, says", [
    (["in-pod", "suites/k8s"], "pytest's arguments go after --"),
    (["in-pod"], "pytest's arguments go after --"),
    (["in-pod", "--"], "no pytest arguments after --"),
    (["in-pod", "-k", "x"], "unrecognized arguments: -k"),
    (["in-pod", "--", "x.py", "--junitxml=j.xml"], "--junitxml is set by in-pod itself"),
    (["in-pod", "--", "x.py", "--inference-report", "r"], "--inference-report is set by in-pod itself"),
])
def test_bad_input_is_one_line(argv, says, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("SONOBUOY_RESULTS_DIR", str(tmp_path / "r"))
    assert exit_status(argv) == 2
    err = capsys.readouterr().err
    assert says in err and err.count("\n") == 1 and err.startswith("pytest-inference in-pod: ")
    assert not (tmp_path / "r").exists()  # nothing ran


def exit_status(argv) -> int:
    """cli.main's status, whether the handler returns it or argparse's one-line error exits with it."""
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


def test_unwritable_results_dir_is_one_line(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["in-pod", "--results-dir", str(blocker / "sub"), "--", "x.py"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"pytest-inference in-pod: results folder {blocker / 'sub'} cannot be written")
    assert err.count("\n") == 1


def test_then_wait_keeps_the_pod_up_after_its_results_until_sigterm(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    p = subprocess.Popen([sys.executable, "-m", "pytest_inference.cli", "in-pod", "--then-wait", "--results-dir", "out",
                          "--", *FAST], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "out/done").exists() and time.monotonic() < deadline:
            assert p.poll() is None, p.communicate()
            time.sleep(0.2)
        assert (tmp_path / "out/done").exists()
        time.sleep(0.5)
        assert p.poll() is None  # still up: a DaemonSet would restart an exited container
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=10) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_sigterm_during_the_run_stops_pytest_gracefully_and_still_packs(tmp_path):
    (tmp_path / "test_slow.py").write_text(
        "import pathlib, time\n"
        "def test_quick():\n    pass\n"
        "def test_slow():\n    pathlib.Path('started').write_text('')\n    time.sleep(60)\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    p = subprocess.Popen([sys.executable, "-m", "pytest_inference.cli", "in-pod", "--then-wait", "--results-dir", "out",
                          "--", "test_slow.py", "-p", "no:cacheprovider"], cwd=tmp_path, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "started").exists() and time.monotonic() < deadline:
            assert p.poll() is None, p.communicate()
            time.sleep(0.1)
        p.send_signal(signal.SIGTERM)  # the kubelet stopping the pod: to PID 1 only
        assert p.wait(timeout=30) == 3  # interrupted: not a complete run; and no --then-wait when told to stop
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    d = tmp_path / "out"
    record = json.loads((d / "in-pod.json").read_text())
    assert record["stopped_by_signal"] is True and record["pytest_exit_status"] == 2  # pytest's "interrupted"
    suite = ET.parse(d / "junit.xml").getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    quick = [c for c in suite.iter("testcase") if c.get("name") == "test_quick"]
    assert len(quick) == 1 and not list(quick[0])  # what ran before the stop is kept, passed
    assert Path((d / "done").read_text()) == d / "results.tar.gz"
