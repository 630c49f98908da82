"""allure_sink.py: a judged claim reaches allure-pytest's result files; no-op without Allure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
from report_helpers import SECRET, run_claims_module

from pytest_inference.claims import Requirement, judge
from pytest_inference.report import allure_sink

PNG = b"\x89PNG\r\n\x1a\n"


def labels(result: dict, name: str) -> list[str]:
    return [lb["value"] for lb in result["labels"] if lb["name"] == name]


def test_labels(allure_run):
    warm = allure_run.result("test_warm")
    assert labels(warm, "suite") == ["warm"]
    assert labels(warm, "parentSuite") == ["pytest-inference"]
    assert labels(warm, "target") == ["h200"]
    assert labels(warm, "metric") == ["warm.ttft_ms", "warm.ttft_spread_ms"]
    assert set(labels(warm, "tag")) >= {"warm", "inconclusive", "fail"}
    assert labels(warm, "severity") == ["critical"]  # once, though two claims
    # allure-pytest's own suite labels from the module path give way to ours
    assert "subSuite" not in {lb["name"] for lb in warm["labels"]}

    cold = allure_run.result("test_cold")
    assert labels(cold, "suite") == ["coldstart"]
    assert labels(cold, "target") == ["h200"]  # from the claim when the caller passes None


def test_parameters_without_credentials(allure_run):
    params = {p["name"]: p["value"] for p in allure_run.result("test_warm")["parameters"]}
    assert params["requests"] == "24"
    assert params["concurrency"] == "4"
    assert params["max_tokens"] == "64"  # "tokens" is not a credential
    assert params["endpoint"] == "'http://127.0.0.1:8000/v1'"  # no user:password, no query string
    assert "api_key" not in params
    for path in allure_run.results.iterdir():
        assert SECRET.encode() not in path.read_bytes(), f"credential written to {path.name}"


def test_description_carries_each_claim(allure_run):
    description = allure_run.result("test_warm")["description"]
    assert description.startswith("Warm TTFT of the endpoint.")
    assert "**INCONCLUSIVE** warm.ttft_ms = " in description
    assert "**FAIL** warm.ttft_spread_ms = 7.5 ms over 4 samples; target h200 requires < 5 ms" in description


def test_one_step_per_claim_with_json_and_png(allure_run):
    steps = allure_run.result("test_warm")["steps"]
    assert [s["status"] for s in steps] == ["skipped", "failed"]
    assert steps[0]["name"].startswith("warm.ttft_ms: INCONCLUSIVE — ")
    assert steps[1]["name"] == "warm.ttft_spread_ms: FAIL — 7.5 ms (spread < 5 ms)"
    assert "requires < 5 ms" in steps[1]["statusDetails"]["message"]
    assert {p["name"]: p["value"] for p in steps[1]["parameters"]}["margin"] == "-2.5 ms"

    kinds = {}
    for step in steps:
        for att in step["attachments"]:
            kinds[att["name"]] = att
    claim_att = kinds["warm.ttft_ms claim"]
    assert claim_att["type"] == "application/json"
    body = json.loads(allure_run.attachment(claim_att["source"]))
    assert body["metric"] == "warm.ttft_ms"
    assert body["sample_values"] == [150.0 + (i * 37) % 90 for i in range(24)]
    assert body["samples"] == 24 and body["verdict"] == "inconclusive" and body["suite"] == "warm"
    assert body["parameters"]["endpoint"] == "http://127.0.0.1:8000/v1"

    chart = kinds["warm.ttft_ms chart"]
    assert chart["type"] == "image/png"
    assert allure_run.attachment(chart["source"]).startswith(PNG)
    assert kinds["warm.ttft_spread_ms chart"]["type"] == "image/png"


def test_single_value_claim_has_json_but_no_chart(allure_run):
    (step,) = allure_run.result("test_cold")["steps"]
    assert step["status"] == "passed"
    assert [a["type"] for a in step["attachments"]] == ["application/json"]
    body = json.loads(allure_run.attachment(step["attachments"][0]["source"]))
    assert body["details"] == {"image": "vllm/vllm-openai"}  # hf_token dropped


def test_no_op_without_alluredir(tmp_path):
    proc = run_claims_module(tmp_path, env={"EXPECT_ATTACHED": "0", "ALLURE_LOADED": "1"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not list(tmp_path.rglob("*-result.json"))


def test_no_op_and_no_allure_import_without_allure_pytest(tmp_path):
    proc = run_claims_module(tmp_path, "-p", "no:allure_pytest", env={"EXPECT_ATTACHED": "0"})
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_works_under_xdist(tmp_path):
    pytest.importorskip("xdist")
    results = tmp_path / "allure-results"
    proc = run_claims_module(tmp_path, "-p", "xdist", "-n", "2", f"--alluredir={results}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    names = sorted(json.loads(p.read_text())["name"] for p in results.glob("*-result.json"))
    assert names == ["test_cold", "test_warm"]
    assert list(results.glob("*-attachment.png"))


NESTED_INNER = """
from pytest_inference.claims import Requirement, judge
from pytest_inference.report.allure_sink import attach_claim


def test_inner():
    c = judge("warm.ttft_spread_ms", [40.0, 47.5],
              requirement=Requirement("warm.ttft_spread_ms", "<", 5, unit="ms", stat="spread"))
    assert attach_claim(c, "warm", "h200")
"""

NESTED_OUTER = """
import json

INNER = {inner!r}


def test_outer(pytester):
    pytester.makepyfile(test_inner=INNER)
    out = pytester.path / "inner-results"
    pytester.runpytest("-p", "no:inference", f"--alluredir={{out}}").assert_outcomes(passed=1)
    (result,) = [json.loads(p.read_text()) for p in out.glob("*-result.json")]
    labels = [(lb["name"], lb["value"]) for lb in result["labels"]]
    assert labels.count(("metric", "warm.ttft_spread_ms")) == 1, labels
    (step,) = result["steps"]
    assert step["status"] == "failed"
    assert [a["type"] for a in step["attachments"]] == ["application/json", "image/png"]
    for a in step["attachments"]:
        assert (out / a["source"]).is_file()
""".format(inner=NESTED_INNER)


def test_in_process_run_inside_a_recording_run(tmp_path):
    """pytester's in-process runs inside a run that records Allure: two allure-pytest listeners
    share allure-commons' per-thread item table; attach_claim must neither raise nor double."""
    (tmp_path / "test_nested_outer.py").write_text(NESTED_OUTER)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "pytester", "-p", "no:inference", "-p", "no:cacheprovider", "-q",
         "--rootdir", str(tmp_path), f"--alluredir={tmp_path / 'outer-results'}", "test_nested_outer.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env={k: v for k, v in os.environ.items() if k not in ("PYTEST_ADDOPTS", "PYTEST_XDIST_WORKER")},
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]


def test_allure_enabled():
    def config(plugins, alluredir):
        pm = SimpleNamespace(hasplugin=lambda name: name in plugins)
        return SimpleNamespace(pluginmanager=pm, option=SimpleNamespace(allure_report_dir=alluredir))

    assert allure_sink.allure_enabled(config({"allure_pytest"}, "/tmp/results"))
    assert not allure_sink.allure_enabled(config({"allure_pytest"}, None))
    assert not allure_sink.allure_enabled(config(set(), "/tmp/results"))
    assert not allure_sink.allure_enabled(None)


def test_attach_claim_in_this_run(pytestconfig):
    """In-process: records on this very test when this run writes Allure results, else no-op."""
    enabled = allure_sink.allure_enabled(pytestconfig)
    claim = judge("report.selftest_ms", [1.0, 2.0], stat="mean", unit="ms")
    assert allure_sink.attach_claim(claim, "report", "cpu-local", {"requests": 2}, config=pytestconfig) is enabled
    assert allure_sink.attach_claim(claim, "report", None, chart=False) is enabled


@pytest.mark.parametrize(
    ("name", "value", "secret"),
    [
        ("api_key", "x", True), ("apiKey", "x", True), ("x-api-key", "x", True), ("HF_TOKEN", "x", True),
        ("access_token", "x", True), ("Authorization", "x", True), ("password", "x", True),
        ("max_tokens", 64, False), ("output_tokens", 1, False), ("endpoint", "http://h/v1", False),
        ("model", "sk-abcdefghijklmnopqrstu", True), ("header", "Bearer abcdefghijklmnop", True),
    ],
)
def test_is_secret(name, value, secret):
    assert allure_sink.is_secret(name, value) is secret


def test_claim_json_scrubs_and_keeps_samples():
    claim = judge("warm.ttft_ms", [1.0, 2.0, float("inf")], stat="max", unit="ms",
                  requirement=Requirement("warm.ttft_ms", "<", 5, unit="ms", stat="max"),
                  details={"api_key": SECRET, "nested": {"token": SECRET, "ok": 1}, "url": "https://a:b@h/x?k=1"})
    body = json.loads(allure_sink.claim_json(claim, "warm", {"requests": 3, "password": "pw"}))
    assert body["sample_values"] == [1.0, 2.0, "inf"]
    assert body["details"] == {"nested": {"ok": 1}, "url": "https://h/x"}
    assert body["parameters"] == {"requests": 3}
    assert body["suite"] == "warm"
