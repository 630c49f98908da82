"""pytest-inference's hooks (pytest_inference/hookspec.py): a user's plugin adds a sink and adjusts the
summary; the shipped sinks are hook implementations that ``-p no:NAME`` removes."""

import json

import pytest

CLAIMS = '''
import pytest

@pytest.mark.warm
def test_fast(claim):
    claim("warm.ttft_median_ms", [300.0 + i for i in range(21)], stat="median", unit="ms")

@pytest.mark.warm
def test_slow(claim):
    claim("warm.ttft_median_ms", [900.0] * 20, unit="ms")
    claim.attach("raw", "1,2,3", "text")
'''

TARGET = '''
name = "hooked"
[claims]
"warm.ttft_median_ms" = { op = "<=", threshold = 500 }
'''

#: a user's sink and summary adjuster, as a conftest.py
USER_PLUGIN = '''
import json
from pathlib import Path

def pytest_inference_claim(claim, item, parameters):
    with open("claims.log", "a") as fh:
        fh.write(f"{item.nodeid} {claim.metric} {claim.verdict}\\n")

def pytest_inference_attachment(item, name, body, kind):
    Path("attachments.log").write_text(f"{item.nodeid} {name} {kind} {body}")

def pytest_inference_summary(config, summary):
    summary["run"]["build"] = "b-42"
    summary["claims"] = [c for c in summary["claims"] if c["verdict"] != "pass"]

def pytest_inference_report(session, summary, claims):
    Path("claims.csv").write_text("".join(f"{c.metric},{c.measured},{c.verdict}\\n" for c in claims))
    Path("seen-summary.json").write_text(json.dumps({"build": summary["run"]["build"],
                                                     "claims": len(summary["claims"])}))

def pytest_inference_terminal_summary(config, terminalreporter, claims):
    terminalreporter.write_line(f"user sink: {len(claims)} claims")
'''


@pytest.fixture
def project(pytester):
    pytester.makepyfile(test_hooked=CLAIMS)
    pytester.makefile(".toml", hooked=TARGET)
    return pytester


def run(pytester, *args):
    return pytester.runpytest_subprocess("--target", "hooked.toml", "--inference-report", "report",
                                         "-p", "no:cacheprovider", "-p", "no:randomly", *args)


def test_a_user_plugin_adds_a_sink_and_adjusts_the_summary(project):
    project.makeconftest(USER_PLUGIN)
    res = run(project)
    res.assert_outcomes(passed=1, failed=1)
    path = project.path
    # per claim, in the process that ran the test
    assert sorted((path / "claims.log").read_text().splitlines()) == [
        "test_hooked.py::test_fast warm.ttft_median_ms pass", "test_hooked.py::test_slow warm.ttft_median_ms fail"]
    assert (path / "attachments.log").read_text() == "test_hooked.py::test_slow raw text 1,2,3"
    # the summary was adjusted before any sink got it: summary.json and the user's sink see the same
    summary = json.loads((path / "report" / "summary.json").read_text())
    assert summary["run"]["build"] == "b-42"
    assert [c["verdict"] for c in summary["claims"]] == ["fail"]
    assert json.loads((path / "seen-summary.json").read_text()) == {"build": "b-42", "claims": 1}
    # the user's sink gets every judged claim object
    assert sorted((path / "claims.csv").read_text().splitlines()) == [
        "warm.ttft_median_ms,310.0,pass", "warm.ttft_median_ms,900.0,fail"]
    # the shipped terminal sink and the user's lines, both through the hook
    res.stdout.fnmatch_lines(["*inference claims (target hooked)*", "*user sink: 2 claims*"])


def test_the_shipped_sinks_are_plugins_that_can_be_removed(project):
    res = run(project, "-p", "no:inference-terminal", "-p", "no:inference-summary-json")
    res.assert_outcomes(passed=1, failed=1)
    assert "inference claims (target hooked)" not in res.stdout.str()
    assert not (project.path / "report" / "summary.json").exists()
    # the claim itself still fails its test, with the claim's message
    res.stdout.fnmatch_lines(["*warm.ttft_median_ms = 900 ms over 20 samples; target hooked requires <= 500 ms*"])
    kept = run(project)
    kept.stdout.fnmatch_lines(["*inference claims (target hooked)*"])
    assert (project.path / "report" / "summary.json").exists()


def test_the_sinks_are_registered_under_their_names(pytester):
    pytester.makepyfile(test_names='''
def test_names(pytestconfig):
    import pytest_inference.report.allure_sink as allure_sink
    import pytest_inference.report.summary as summary
    import pytest_inference.report.terminal as terminal
    pm = pytestconfig.pluginmanager
    assert pm.get_plugin("inference-terminal") is terminal
    assert pm.get_plugin("inference-summary-json") is summary
    assert pm.get_plugin("inference-allure") is allure_sink
    assert pm.hook.pytest_inference_claim.spec is not None
''')
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_without_the_plugin_a_user_plugin_marks_its_hooks_optional(project):
    project.makeconftest('''
import pytest

@pytest.hookimpl(optionalhook=True)
def pytest_inference_summary(config, summary):
    raise AssertionError("never called without pytest-inference")
''')
    project.makepyfile(test_plain="def test_plain():\n    pass\n")
    res = project.runpytest_subprocess("-p", "no:inference", "-p", "no:cacheprovider", "test_plain.py")
    res.assert_outcomes(passed=1)
    assert not (project.path / "reports").exists()


def test_summary_json_that_cannot_be_written_is_one_red_line(project):
    (project.path / "report" / "summary.json").mkdir(parents=True)  # a folder where the file goes
    res = run(project, "-k", "fast")
    assert res.ret == pytest.ExitCode.INTERNAL_ERROR
    res.stdout.fnmatch_lines(["*inference: could not write */report/summary.json: Is a directory"])
    assert "Traceback" not in res.stdout.str() + res.stderr.str()
