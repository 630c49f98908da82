"""The API suite as a user runs it: the catalog and the implementations agree, the README's checks table
is generated from the catalog, and bad input is one line (no traceback) — an endpoint that is not
OpenAI-compatible, an unreachable one, a rejected key, a reference that does not parse or was recorded for
another model, a fuzz budget that is not a number."""

from __future__ import annotations

import json

import pytest

from pytest_inference.api import checks as api_checks_mod
from pytest_inference.api.options import REFERENCES
from pytest_inference.catalog.checks import api_checks, api_readme_table
from pytest_inference.testing.fake_openai import FakeOpenAIServer
from suite_runner import ROOT, run_suite

SUITE = ROOT / "suites" / "api"


def test_every_catalog_check_is_implemented_and_tested_by_the_suite():
    assert api_checks_mod.unimplemented() == ([], [])
    text = "".join(p.read_text() for p in SUITE.glob("test_*.py"))
    for cid in api_checks():
        assert f'api_check("{cid}"' in text, f"{cid} has no test in suites/api"


def test_the_readme_checks_table_is_generated_from_the_catalog():
    readme = (ROOT / "README.md").read_text()
    table = api_readme_table().strip()
    assert table in readme, "README's API checks table is stale: python -m pytest_inference.catalog readme README.md"
    for cid, spec in api_checks().items():
        assert f"| {cid} |" in table and spec.remediation.replace("|", "\\|")[:40] in table


def one_line_error(out: str, needle: str) -> None:
    assert needle in out, out[-3000:]
    assert "Traceback" not in out, out[-3000:]


def test_an_endpoint_that_is_not_openai_compatible_is_one_line(tmp_path):
    with FakeOpenAIServer() as s:
        # a web server that is no OpenAI API: under /nothing every path is a JSON 404 of another shape
        proc, out, _, _ = run_suite(tmp_path, "--endpoint", s.url + "/nothing/v1", "-q", suite=SUITE / "test_api_discovery.py")
    assert proc.returncode != 0
    one_line_error(out, "is not an OpenAI-compatible endpoint")


def test_an_unreachable_endpoint_is_one_line(tmp_path):
    proc, out, _, _ = run_suite(tmp_path, "--endpoint", "http://127.0.0.1:9/v1", "-q", suite=SUITE / "test_api_discovery.py")
    assert proc.returncode != 0
    one_line_error(out, "cannot reach the endpoint: cannot connect to http://127.0.0.1:9/v1")


def test_a_rejected_key_is_one_line_and_never_shown(tmp_path):
    with FakeOpenAIServer("--strict", "--api-key", "right-key-123") as s:
        proc, out, _, report = run_suite(tmp_path, "--endpoint", s.base_url, "--api-key-env", "K", "-q",
                                         suite=SUITE / "test_api_discovery.py", env={"K": "wrong-key-456"})
    assert proc.returncode != 0
    one_line_error(out, "the endpoint rejected the API key (HTTP 401")
    assert "wrong-key-456" not in out and "right-key-123" not in out


def test_a_reference_that_does_not_parse_is_a_usage_error(tmp_path):
    bad = tmp_path / "ref.json"
    bad.write_text("{not json")
    proc, out, _, _ = run_suite(tmp_path, "--reference", str(bad), suite=SUITE, expect=4)
    one_line_error(out, f"--reference does not parse: {bad}: not JSON")


def test_a_reference_of_another_model_says_which(tmp_path):
    ref = json.loads((REFERENCES / "tiny-llama-cpu.json").read_text())
    ref["model"] = "llama-3.1-70b"
    path = tmp_path / "other.json"
    path.write_text(json.dumps(ref))
    with FakeOpenAIServer("--strict", "--model", "tiny-llama") as s:
        proc, out, _, _ = run_suite(tmp_path, "--endpoint", s.base_url, "--reference", str(path), "-q",
                                    suite=SUITE / "test_api_reference.py")
    assert proc.returncode == 1
    one_line_error(out, f"{path} was recorded for model 'llama-3.1-70b', the endpoint serves 'tiny-llama'")


@pytest.mark.parametrize("option,value,said", [
    ("--api-fuzz-examples", "many", "'many' is not a number"),
    ("--api-fuzz-max-s", "0", "'0' must be > 0"),
    ("--api-fuzz-examples", "2.5", "'2.5' is not a whole number"),
])
def test_a_fuzz_budget_that_is_not_a_number_is_a_usage_error(tmp_path, option, value, said):
    proc, out, _, _ = run_suite(tmp_path, option, value, suite=SUITE, expect=4)
    one_line_error(out, f"argument {option}: {said}")


def test_record_reference_writes_a_reference_the_suite_then_compares_with(tmp_path):
    """--record-reference FILE records the endpoint's answers; the reference checks compare with them
    (the same server twice: the greedy tokens repeat) and the file works as --reference later."""
    path = tmp_path / "recorded.json"
    with FakeOpenAIServer("--strict", "--model", "tiny-llama") as s:  # the default target's model
        proc, out, summary, _ = run_suite(tmp_path, "--endpoint", s.base_url, "--record-reference", str(path),
                                          suite=SUITE / "test_api_reference.py")
        assert proc.returncode == 0, out[-3000:]
        rows = {r["id"]: r for r in summary["conformance"]["checks"]}
        assert rows["API-REF-001"]["measured"] == 1.0 and rows["API-REF-002"]["measured"] == 0.0
        data = json.loads(path.read_text())
        assert data["model"] == "tiny-llama" and len(data["answers"]) == 8
        (tmp_path / "again").mkdir()
        proc, out, summary, _ = run_suite(tmp_path / "again", "--endpoint", s.base_url, "--reference", str(path),
                                          suite=SUITE / "test_api_reference.py")
    assert proc.returncode == 0, out[-3000:]
    assert {r["id"]: r["measured"] for r in summary["conformance"]["checks"]}["API-REF-001"] == 1.0


def test_the_targets_reference_for_another_model_skips_with_the_reason(tmp_path):
    """cpu-local names the tiny model's reference: an endpoint serving another model is not compared with
    it (skipped, saying how to record one), and nothing passes."""
    with FakeOpenAIServer("--strict") as s:
        proc, out, summary, _ = run_suite(tmp_path, "--endpoint", s.base_url, "--target", "cpu-local", "-rs",
                                          suite=SUITE / "test_api_reference.py")
    assert "recorded for model 'tiny-llama', the endpoint serves 'fake-model'" in out, out[-3000:]
    assert "record one for this model with --record-reference FILE" in out
    assert summary is None or not [c for c in summary["claims"] if c["verdict"] == "pass"]
