"""The conformance sink (pytest_inference/report/conformance.py): one row per check id, folded over its
subjects to the worst verdict, in the terminal, summary.json and a Gateway-API-shaped
``conformance-report.yaml``; a skipped check's id comes from the test's user_properties."""

from __future__ import annotations

import json
import textwrap
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from pytest_inference import __version__
from pytest_inference.claims import Claim, Requirement, judge
from pytest_inference.report import conformance as conf
from pytest_inference.report.conformance import SkippedCheck

ROOT = Path(__file__).resolve().parents[2]
SECRET = "sk-conf-" + "z" * 24


def check(cid: str, measured: float | None, *, subject: str = "", threshold: float = 0, op: str = "==",
          metric: str | None = None, reason: str = "", title: str = "") -> Claim:
    """A claim as a suite records a check's figure (details: check, title, subject, expected, actual, …)."""
    metric = metric or f"{cid.split('-')[0].lower()}.{cid.split('-')[1].lower()}_violations"
    details = {"check": cid, "title": title or f"{cid} title", "subject": subject, "expected": "none",
               "actual": f"{measured:g} violations at {subject or 'the endpoint'}" if measured is not None else "",
               "remediation": f"fix {cid}", "reason": reason, "findings": []}
    req = Requirement(metric, op, threshold) if op else None
    if measured is None:
        return Claim(metric=metric, measured=None, unit=None, stat="value", samples=[], verdict="inconclusive",
                     reason=reason or "not measured", op=req.op if req else None,
                     threshold=req.threshold if req else None, details=details, test=f"t::{cid}[{subject}]")
    c = judge(metric, [measured], requirement=req, details=details)
    c.test = f"t::{cid}[{subject}]"
    return c


# --- the pure part ----------------------------------------------------------------------------------
def test_one_row_per_check_in_first_seen_order_with_the_row_fields():
    got = conf.rows([check("API-SSE-001", 0), check("K8S-DEPLOY-001", 2), check("API-CHAT-002", 0)])
    assert [r["id"] for r in got] == ["API-SSE-001", "K8S-DEPLOY-001", "API-CHAT-002"]
    r = got[1]
    assert r["verdict"] == "fail" and r["measured"] == 2.0 and r["subjects"] == 1
    assert r["requirement"] == "k8s.deploy_violations == 0"
    assert r["actual"] == "2 violations at the endpoint" and r["expected"] == "none"
    assert r["remediation"] == "fix K8S-DEPLOY-001" and r["title"] == "K8S-DEPLOY-001 title"
    assert set(r) >= {"id", "title", "verdict", "measured", "unit", "requirement", "actual", "expected",
                      "remediation", "reason", "subjects", "parts"}
    assert [p["test"] for p in r["parts"]] == ["t::K8S-DEPLOY-001[]"]


def test_a_check_reported_per_subject_folds_into_its_worst_part():
    claims = [check("K8S-NODE-001", 0, subject="node-a"), check("K8S-NODE-001", 3, subject="node-b"),
              check("K8S-NODE-001", 5, subject="node-c"), check("K8S-NODE-001", None, subject="node-d")]
    (row,) = conf.rows(claims)
    assert row["subjects"] == 4 and [p["subject"] for p in row["parts"]] == ["node-a", "node-b", "node-c", "node-d"]
    # fail beats inconclusive; of two failing nodes the first is shown, with its subject
    assert row["verdict"] == "fail" and row["measured"] == 3.0
    assert row["actual"] == "node-b: 3 violations at node-b"
    assert [p["verdict"] for p in row["parts"]] == ["pass", "fail", "fail", "inconclusive"]


@pytest.mark.parametrize("verdicts, worst", [
    (["pass", "measured"], "measured"),
    (["measured", "skipped", "pass"], "skipped"),
    (["skipped", "inconclusive"], "inconclusive"),
    (["inconclusive", "pass", "fail", "skipped"], "fail"),
    (["pass", "pass"], "pass"),
])
def test_the_worst_verdict_order_is_fail_inconclusive_skipped_measured_pass(verdicts, worst):
    claims, skipped = [], []
    for i, v in enumerate(verdicts):
        subject = f"mode-{i}"
        if v == "skipped":
            skipped.append(SkippedCheck("API-SSE-001", "sse framing", f"no stream in {subject}", f"t::{subject}"))
        elif v == "measured":
            claims.append(check("API-SSE-001", 4, subject=subject, op=""))
        elif v == "inconclusive":
            claims.append(check("API-SSE-001", None, subject=subject, reason="no events"))
        else:
            claims.append(check("API-SSE-001", 0 if v == "pass" else 1, subject=subject))
    (row,) = conf.rows(claims, skipped)
    assert row["verdict"] == worst and row["subjects"] == len(verdicts)
    assert sorted(p["verdict"] for p in row["parts"]) == sorted(verdicts)


def test_a_skipped_check_is_a_row_with_its_title_and_reason():
    got = conf.rows([check("API-SSE-001", 0)],
                    [SkippedCheck("API-TOOLS-001", "tool calls", "the server has no tool parser", "t::tools")])
    assert [r["id"] for r in got] == ["API-SSE-001", "API-TOOLS-001"]
    r = got[1]
    assert (r["verdict"], r["title"], r["reason"], r["subjects"]) == \
        ("skipped", "tool calls", "the server has no tool parser", 1)
    assert r["measured"] is None and r["actual"] == "" and r["requirement"] == ""


def test_a_measured_only_claim_and_a_claim_without_a_check_id():
    plain = judge("warm.ttft_median_ms", [300.0], unit="ms")  # not a check: left out
    got = conf.rows([plain, check("API-USAGE-001", 12, op="")])
    assert [(r["id"], r["verdict"]) for r in got] == [("API-USAGE-001", "measured")]
    assert got[0]["requirement"] == "api.usage_violations (no requirement: measured only)"
    assert conf.rows([plain]) == []


def test_section_totals_and_per_suite_totals():
    rs = conf.rows([check("API-SSE-001", 0), check("API-CHAT-001", 1), check("K8S-DEPLOY-001", None),
                    check("K8S-NODE-001", 0), check("API-USAGE-001", 3, op="")],
                   [SkippedCheck("API-TOOLS-001", "tools", "no tools")])
    sec = conf.section(rs)
    assert sec["checks"] == rs
    assert sec["totals"] == {"pass": 2, "fail": 1, "inconclusive": 1, "skipped": 1, "measured": 1}
    assert sec["suites"] == {"API": {"pass": 1, "fail": 1, "inconclusive": 0, "skipped": 1, "measured": 1},
                             "K8S": {"pass": 1, "fail": 0, "inconclusive": 1, "skipped": 0, "measured": 0}}
    json.dumps(sec, allow_nan=False)  # summary.json is strict JSON


def test_the_terminal_table_cuts_long_actuals_and_lists_the_fixes():
    long = check("API-SSE-001", 7)
    long.details["actual"] = "7 events without a blank line after data: " + "x" * 200
    rs = conf.rows([long, check("API-CHAT-001", 0), check("K8S-NODE-001", None, reason="kubelet unreachable")])
    lines = conf.format_table(rs)
    assert lines[0][0].split() == ["id", "verdict", "actual", "requirement"]
    body = {text.split()[0]: (text, verdict) for text, verdict in lines[2:5]}
    text, verdict = body["API-SSE-001"]
    assert verdict == "fail" and "…" in text and "x" * 70 not in text and "api.sse_violations == 0" in text
    assert body["K8S-NODE-001"] == (body["K8S-NODE-001"][0], "inconclusive")
    assert "kubelet unreachable" in body["K8S-NODE-001"][0]
    (fix,) = lines[5:]
    assert fix[1] == "fail" and fix[0].startswith("API-SSE-001: 7 events without") \
        and fix[0].endswith(" — fix: fix API-SSE-001")
    assert conf.headline(conf.totals(rs)) == "conformance (3 checks: 1 pass, 1 fail, 1 inconclusive, 0 skipped)"


def test_a_skip_report_carries_its_check_and_an_xfail_or_a_plain_skip_does_not():
    props = [("inference_check", "API-TOOLS-001"), ("inference_check_title", "tool calls")]
    skip = SimpleNamespace(skipped=True, user_properties=props, nodeid="t::tools",
                           longrepr=("f.py", 3, "Skipped: no tool parser"))
    assert conf.skipped_check(skip) == SkippedCheck("API-TOOLS-001", "tool calls", "no tool parser", "t::tools")
    xfail = SimpleNamespace(**{**vars(skip), "wasxfail": "inconclusive"})
    assert conf.skipped_check(xfail) is None
    assert conf.skipped_check(SimpleNamespace(**{**vars(skip), "user_properties": []})) is None
    passed = SimpleNamespace(**{**vars(skip), "skipped": False, "failed": False, "longrepr": None})
    assert conf.skipped_check(passed) is None
    crash = SimpleNamespace(reprcrash=SimpleNamespace(message="ConnectionError: refused\n  at probe"))
    error = SimpleNamespace(**{**vars(passed), "failed": True, "when": "setup", "longrepr": crash})
    assert conf.skipped_check(error) == SkippedCheck(
        "API-TOOLS-001", "tool calls", "the check's test failed in setup before judging: ConnectionError: refused at probe",
        "t::tools", "inconclusive")


def test_a_failed_test_is_a_part_only_when_it_recorded_no_claim_for_the_check():
    judged = check("API-SSE-001", 2)  # its test failed because the claim failed
    failed = SkippedCheck("API-SSE-001", "", "failed in call", judged.test, "inconclusive")
    (row,) = conf.rows([judged], [failed])
    assert row["subjects"] == 1 and row["verdict"] == "fail"
    elsewhere = SkippedCheck("API-SSE-001", "", "failed in setup", "t::other", "inconclusive")
    (row,) = conf.rows([check("API-SSE-001", 0)], [elsewhere])
    assert (row["subjects"], row["verdict"], row["reason"]) == (2, "inconclusive", "failed in setup")


# --- the ConformanceReport document -------------------------------------------------------------------
@pytest.mark.parametrize("claims, skipped, result, summary", [
    ([check("API-SSE-001", 0), check("API-CHAT-001", 2, op="")], [], "success", "Core tests succeeded."),
    ([check("API-SSE-001", 0)], [SkippedCheck("API-TOOLS-001")], "partial",
     "Core tests partially succeeded: 1 skipped."),
    ([check("API-SSE-001", None)], [SkippedCheck("API-TOOLS-001")], "partial",
     "Core tests partially succeeded: 1 inconclusive and 1 skipped."),
    ([check("API-SSE-001", 1), check("API-CHAT-001", 1), check("API-X-001", None)], [], "failure",
     "Core tests failed with 2 test failures."),
])
def test_the_profile_result_maps_fail_inconclusive_and_skipped(claims, skipped, result, summary):
    doc = conf.conformance_report(conf.section(conf.rows(claims, skipped)))
    (profile,) = doc["profiles"]
    assert profile["name"] == "API" and profile["core"]["result"] == result and profile["summary"] == summary


def test_the_yaml_has_the_conformance_report_fields_and_loads_back():
    rs = conf.rows([check("API-SSE-001", 0), check("API-CHAT-001", 1), check("API-USAGE-001", None),
                    check("K8S-NODE-001", 0, subject="a"), check("K8S-NODE-001", 0, subject="b")],
                   [SkippedCheck("API-TOOLS-001", "tools", "no tools")])
    run = {"endpoint": f"https://user:{SECRET}@llm.example:8443/v1?key={SECRET}", "model": "tiny-llama",
           "server": "vllm 0.32.0"}
    when = datetime(2026, 12, 2, 7, 30, 5, tzinfo=timezone.utc)
    text = conf.dump_yaml(conf.conformance_report(conf.section(rs), run, target="cpu-local", date=when))
    assert SECRET not in text and "user" not in text
    assert text.startswith("# pytest-inference conformance report")
    doc = yaml.safe_load(text)
    assert list(doc)[:6] == ["apiVersion", "kind", "date", "implementation", "mode", "profiles"]
    assert doc["apiVersion"] == "gateway.networking.k8s.io/v1" and doc["kind"] == "ConformanceReport"
    assert doc["date"] == "2026-12-02T07:30:05Z" and doc["mode"] == "default"
    assert doc["implementation"] == {"organization": "pytest-inference", "project": "pytest-inference",
                                     "url": "https://llm.example:8443/v1", "version": __version__, "contact": []}
    assert (doc["endpoint"], doc["model"], doc["server"], doc["target"]) == \
        ("https://llm.example:8443/v1", "tiny-llama", "vllm 0.32.0", "cpu-local")
    api, k8s = doc["profiles"]
    assert api == {"name": "API", "core": {
        "result": "failure",
        "statistics": {"Passed": 1, "Failed": 1, "Skipped": 1, "Inconclusive": 1, "Measured": 0},
        "failedTests": ["API-CHAT-001"], "skippedTests": ["API-TOOLS-001"], "inconclusiveTests": ["API-USAGE-001"]},
        "summary": "Core tests failed with 1 test failure."}
    assert k8s == {"name": "K8S", "core": {"result": "success", "statistics": {
        "Passed": 1, "Failed": 0, "Skipped": 0, "Inconclusive": 0, "Measured": 0}}, "summary": "Core tests succeeded."}


# --- end to end: a pytest run with the plugin -----------------------------------------------------------
CHECKS_MODULE = textwrap.dedent(f'''
    import pytest
    from pytest_inference.claims import Requirement

    SECRET = {SECRET!r}
    ZERO = {{m: Requirement(m, "==", 0) for m in ("api.sse_framing_violations", "k8s.deploy_violations")}}


    def details(cid, title, subject, actual):
        return {{"check": cid, "title": title, "subject": subject, "expected": "no violation",
                "actual": actual, "remediation": "frame every event with a blank line", "reason": "",
                "findings": []}}


    @pytest.mark.parametrize("mode", ["stream", "stream-usage"])
    def test_sse(request, claim, mode):
        request.node.user_properties.append(("inference_check", "API-SSE-001"))
        n = 0 if mode == "stream" else 2
        claim("api.sse_framing_violations", [n], stat="value", default=ZERO["api.sse_framing_violations"],
              parameters={{"check": "API-SSE-001", "mode": mode}},
              details=details("API-SSE-001", "SSE framing", mode, f"{{n}} events unframed (key {{SECRET}})"))


    def test_deploy(claim):
        claim("k8s.deploy_violations", [0], stat="value", default=ZERO["k8s.deploy_violations"],
              parameters={{"check": "K8S-DEPLOY-001"}},
              details=details("K8S-DEPLOY-001", "deployment", "", "0 pods without a probe"))


    def test_plain(claim):
        claim("warm.ttft_median_ms", [100.0], stat="value", unit="ms")  # no check: not in the report


    def test_tools(request):
        request.node.user_properties.append(("inference_check", "API-TOOLS-001"))
        request.node.user_properties.append(("inference_check_title", "tool calls"))
        pytest.skip("the server was started without --enable-auto-tool-choice")


    @pytest.fixture
    def models_probe(request):
        request.node.user_properties.append(("inference_check", "API-MODELS-001"))
        raise ConnectionError("the endpoint refused the connection")


    def test_models(models_probe):
        pass


    def test_unrelated_skip():
        pytest.skip("not a check")
''')


@pytest.fixture
def checks_project(pytester):
    pytester.makepyfile(test_checks=CHECKS_MODULE)
    return pytester


def run_checks(pytester, *args):
    return pytester.runpytest_subprocess(
        "--inference-report", "report", "--endpoint", "http://127.0.0.1:8011/v1", "--model",
        "tiny-llama", "--api-key-env", "CONF_KEY", "-p", "no:cacheprovider", "-p", "no:randomly", *args,
        timeout=180)


def test_a_run_shows_the_table_and_writes_summary_and_yaml_and_no_inference_conformance_removes_them(
        checks_project, monkeypatch):
    monkeypatch.setenv("CONF_KEY", SECRET)
    res = run_checks(checks_project)
    res.assert_outcomes(passed=3, failed=1, skipped=2, errors=1)
    out = res.stdout.str()
    assert SECRET not in out
    res.stdout.fnmatch_lines([
        "*= conformance (4 checks: 1 pass, 1 fail, 1 inconclusive, 1 skipped) =*",
        "id*verdict*actual*requirement",
        "API-SSE-001*fail (2 parts)*stream-usage: 2 events unframed (key ***)*api.sse_framing_violations == 0*",
        "K8S-DEPLOY-001*pass*0 pods without a probe*k8s.deploy_violations == 0*",
        "API-TOOLS-001*skipped*the server was started without --enable-auto-tool-choice*",
        "API-MODELS-001*inconclusive*the check's test failed in setup before judging: Connection…*",
        "API-SSE-001: stream-usage: 2 events unframed (key ***) — fix: frame every event with a blank line",
        "report: *conformance-report.yaml",
    ])
    # after the claims table
    assert out.index("inference claims (target") < out.index("= conformance (")
    report = checks_project.path / "report"
    summary = json.loads((report / "summary.json").read_text())
    sec = summary["conformance"]
    # the failing SSE test carried its check id too: its claim is the part, not its failure
    assert [(r["id"], r["verdict"], r["subjects"]) for r in sec["checks"]] == [
        ("API-SSE-001", "fail", 2), ("K8S-DEPLOY-001", "pass", 1), ("API-TOOLS-001", "skipped", 1),
        ("API-MODELS-001", "inconclusive", 1)]
    assert sec["checks"][2]["title"] == "tool calls"
    assert sec["checks"][2]["parts"][0]["test"] == "test_checks.py::test_tools"
    assert sec["checks"][3]["reason"] == ("the check's test failed in setup before judging: "
                                          "ConnectionError: the endpoint refused the connection")
    assert sec["totals"] == {"pass": 1, "fail": 1, "inconclusive": 1, "skipped": 1, "measured": 0}
    assert set(sec["suites"]) == {"API", "K8S"}
    text = (report / "conformance-report.yaml").read_text()
    assert SECRET not in text
    doc = yaml.safe_load(text)
    assert doc["kind"] == "ConformanceReport" and doc["model"] == "tiny-llama"
    assert doc["implementation"]["url"] == doc["endpoint"] == "http://127.0.0.1:8011/v1"
    api, k8s = doc["profiles"]
    assert (api["name"], api["core"]["result"], api["core"]["failedTests"], api["core"]["skippedTests"],
            api["core"]["inconclusiveTests"]) == ("API", "failure", ["API-SSE-001"], ["API-TOOLS-001"], ["API-MODELS-001"])
    assert (k8s["name"], k8s["core"]["result"]) == ("K8S", "success")

    removed = run_checks(checks_project, "-p", "no:inference-conformance")
    removed.assert_outcomes(passed=3, failed=1, skipped=2, errors=1)
    assert "= conformance (" not in removed.stdout.str() and "inference claims (target" in removed.stdout.str()
    assert "conformance" not in json.loads((report / "summary.json").read_text())
    # the first run's file is still there: the second run wrote none (its date would differ)
    assert (report / "conformance-report.yaml").read_text() == text


def test_a_run_without_checks_adds_nothing(pytester):
    pytester.makepyfile(test_plain='''
def test_plain(claim):
    claim("warm.ttft_median_ms", [100.0], stat="value", unit="ms")
''')
    res = pytester.runpytest_subprocess("--inference-report", "report", "-p", "no:cacheprovider", timeout=120)
    res.assert_outcomes(passed=1)
    assert "= conformance (" not in res.stdout.str()
    assert "conformance" not in json.loads((pytester.path / "report" / "summary.json").read_text())
    assert not (pytester.path / "report" / "conformance-report.yaml").exists()


def test_state_is_per_run_not_per_process(pytester):
    """Two in-process runs: the second does not see the first's skipped check."""
    pytester.makepyfile(test_one='''
import pytest

def test_tools(request):
    request.node.user_properties.append(("inference_check", "API-TOOLS-001"))
    pytest.skip("no tools")
''')
    first = pytester.runpytest("--inference-report", "report", "-p", "no:cacheprovider")
    first.assert_outcomes(skipped=1)
    first.stdout.fnmatch_lines(["*= conformance (1 check: 0 pass, 0 fail, 0 inconclusive, 1 skipped) =*"])
    second = pytester.runpytest("--inference-report", "report", "-p", "no:cacheprovider", "-k", "nothing")
    assert "= conformance (" not in second.stdout.str()


def test_under_xdist_the_controller_folds_every_workers_checks(checks_project, monkeypatch):
    pytest.importorskip("xdist")
    monkeypatch.setenv("CONF_KEY", SECRET)
    res = run_checks(checks_project, "-n", "2")
    res.assert_outcomes(passed=3, failed=1, skipped=2, errors=1)
    res.stdout.fnmatch_lines(["*= conformance (4 checks: 1 pass, 1 fail, 1 inconclusive, 1 skipped) =*"])
    sec = json.loads((checks_project.path / "report" / "summary.json").read_text())["conformance"]
    assert sorted((r["id"], r["verdict"], r["subjects"]) for r in sec["checks"]) == [
        ("API-MODELS-001", "inconclusive", 1), ("API-SSE-001", "fail", 2), ("API-TOOLS-001", "skipped", 1),
        ("K8S-DEPLOY-001", "pass", 1)]
    assert (checks_project.path / "report" / "conformance-report.yaml").is_file()


def test_the_k8s_suite_static_run_reports_one_row_per_check(pytester):
    """The real suites/k8s on a broken variant: the failing check's row and fix, a live-only check and the two
    mutation checks skipped (each a row with its reason)."""
    res = pytester.runpytest_subprocess(
        str(ROOT / "suites" / "k8s"), "--rootdir", str(ROOT), "--manifests",
        str(ROOT / "fixtures" / "k8s" / "broken" / "tuner-or-true"), "--inference-report", "report",
        "-p", "no:cacheprovider", "-p", "no:randomly", timeout=300)
    res.assert_outcomes(failed=1, passed=14, skipped=8)  # + K8S-SUITE-*: no pytest-inference objects here
    res.stdout.fnmatch_lines(["*= conformance (23 checks: 14 pass, 1 fail, 0 inconclusive, 8 skipped) =*",
                              "K8S-TUNER-003*fail*2 found: initContainer tune*k8s.tuner_masked_failures == 0",
                              "K8S-SCALE-001*skipped*needs a live cluster*",
                              "K8S-TAINT-001*skipped*needs a live cluster*",
                              "K8S-TUNER-003: *masks a failure* — fix: drop '|| true'*"])
    doc = yaml.safe_load((pytester.path / "report" / "conformance-report.yaml").read_text())
    (k8s,) = doc["profiles"]
    assert (k8s["name"], k8s["core"]["result"], k8s["core"]["failedTests"], sorted(k8s["core"]["skippedTests"])) == \
        ("K8S", "failure", ["K8S-TUNER-003"], ["K8S-NODE-001", "K8S-SCALE-001", *(f"K8S-SUITE-00{i}" for i in range(1, 6)),
                                               "K8S-TAINT-001"])
    assert k8s["core"]["statistics"] == {"Passed": 14, "Failed": 1, "Skipped": 8, "Inconclusive": 0, "Measured": 0}
