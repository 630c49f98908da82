"""Run a suite of suites/ in a child pytest against a server with known behaviour (the harness's
test double), and read its summary.json: shared by the suite tests (tests/plugin, tests/load)."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUIET_STAT = "cpu  1000 0 1000 100000 0 0 0 0 0 0\n"
QUIET_PSI = "some avg10=0.00 avg60=0.00 avg300=0.00 total=1000\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"


def run_suite(tmp_path, *args, suite, env=None, expect=None, real_host_load=False, timeout=300):
    """Run the suite in a subprocess. Unless ``real_host_load``, the host's CPU pressure is read from a
    recorded quiet reading (the engine's test seam): these tests are about other behaviour and must not
    turn inconclusive while other tests load the box; test_a_loaded_host_* loads it for real."""
    report = tmp_path / "report"
    cmd = [sys.executable, "-m", "pytest", str(suite), "-p", "no:cacheprovider", "--rootdir", str(ROOT),
           "--inference-report", str(report), "--junitxml", str(tmp_path / "junit.xml"), *args]
    env = {**os.environ, **(env or {})}
    # the fake server is this test process's child, measured from a child pytest: part of the run, not a
    # foreign load (busy_loops' loops are reparented, so they stay foreign)
    env["PYTEST_INFERENCE_OWN_PIDS"] = str(os.getpid())
    if not real_host_load:
        psi = tmp_path / "quiet-psi"
        psi.write_text(QUIET_PSI)
        env["PYTEST_INFERENCE_PSI_PATH"] = str(psi)
        # and an unchanging /proc/stat: hypervisor steal on a shared CI box (0.39 cores seen on a quiet
        # run) is foreign CPU to the rule, which test_a_loaded_host_* covers for real
        stat = tmp_path / "quiet-stat"
        stat.write_text(QUIET_STAT)
        env["PYTEST_INFERENCE_STAT_PATH"] = str(stat)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=timeout)
    out = proc.stdout + proc.stderr
    if expect is not None:
        assert proc.returncode == expect, out
    summary = report / "summary.json"
    return proc, out, (json.loads(summary.read_text()) if summary.exists() else None), report



def claims_by_metric(summary):
    return {c["metric"]: c for c in summary["claims"]}


def ensure_tiny_model(python: str | os.PathLike[str]) -> Path:
    """The embedded tiny model (``.cache/tiny-llama``), generated offline with ``python`` (the CPU
    vLLM venv's) when no earlier test or run made it; so a test needing it does not depend on order."""
    model = ROOT / ".cache" / "tiny-llama"
    if not (model / "config.json").exists():
        subprocess.run([str(python), str(ROOT / "fixtures" / "tiny_model" / "generate.py"), str(model)], check=True,
                       timeout=600)
    return model
