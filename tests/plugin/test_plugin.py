"""The plugin end to end, in a child pytest: options, claims reaching every sink, exit codes."""

import json
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

CLAIMS_TEST = '''
import pytest

@pytest.mark.warm
def test_spread_fails(claim):
    claim("warm.ttft_spread_ms", [320.0] * 19 + [327.9], stat="spread", unit="ms")

@pytest.mark.warm
def test_median_passes(claim):
    claim("warm.ttft_median_ms", [322.0 + i * 0.1 for i in range(20)], stat="median", unit="ms")

@pytest.mark.warm
def test_p99_inconclusive(claim):
    claim("warm.ttft_p99_ms", [300.0] * 20, stat="p99", unit="ms")

@pytest.mark.warm
def test_measured_only(claim):
    claim("warm.tpot_median_ms", [5.0, 6.0, 7.0], stat="median", unit="ms")
'''

VENDOR = '''
name = "vendor-x"
description = "a vendor's profile"
[claims]
"warm.ttft_spread_ms" = { op = "<", threshold = 5, unit = "ms", stat = "spread", min_samples = 20 }
"warm.ttft_median_ms" = { op = "<=", threshold = 350, unit = "ms", stat = "median" }
"warm.ttft_p99_ms" = { op = "<=", threshold = 2000, unit = "ms", stat = "p99" }
'''


@pytest.fixture
def project(pytester):
    pytester.makepyfile(test_vendor_claims=CLAIMS_TEST)
    pytester.makefile(".toml", vendor=VENDOR)
    return pytester


def test_claims_reach_every_sink(project):
    res = project.runpytest("--target", "vendor.toml", "--junitxml=junit.xml", "-p", "no:randomly")
    res.assert_outcomes(passed=2, failed=2)
    out = res.stdout.str()
    # terminal summary table
    assert "inference claims (target vendor-x)" in out
    res.stdout.fnmatch_lines(["*warm.ttft_spread_ms*7.9 ms*< 5 ms*20*fail*-2.9*"])
    res.stdout.fnmatch_lines(["*warm.ttft_median_ms*322.9 ms*<= 350 ms*20*pass*"])
    res.stdout.fnmatch_lines(["*warm.ttft_p99_ms*inconclusive*"])
    res.stdout.fnmatch_lines(["*warm.tpot_median_ms*6 ms*-*3*measured*"])
    # the failure reads like the claim, with no traceback
    res.stdout.fnmatch_lines(["*warm.ttft_spread_ms = 7.9 ms over 20 samples; target vendor-x requires < 5 ms"])
    assert "def test_spread_fails" not in out
    # summary.json, schema 1
    summary = json.loads((project.path / "reports" / "summary.json").read_text())
    assert summary["schema"] == 1 and summary["target"]["name"] == "vendor-x"
    for key in ("plugin_version", "host", "start", "end"):
        assert summary["run"][key]
    by_metric = {c["metric"]: c for c in summary["claims"]}
    spread = by_metric["warm.ttft_spread_ms"]
    assert spread["verdict"] == "fail" and spread["samples"] == 20 and spread["op"] == "<"
    assert spread["threshold"] == 5 and spread["unit"] == "ms" and spread["test"].endswith("test_spread_fails")
    assert spread["measured"] == pytest.approx(7.9)
    assert by_metric["warm.tpot_median_ms"]["verdict"] == "measured"
    assert summary["totals"] == {"fail": 1, "pass": 1, "inconclusive": 1, "measured": 1}
    # JUnit properties, without the internal carrier
    tree = ET.parse(project.path / "junit.xml")
    props = {p.get("name"): p.get("value") for p in tree.iter("property")}
    assert props["warm.ttft_spread_ms.verdict"] == "fail"
    assert props["warm.ttft_spread_ms.requirement"] == "< 5 ms"
    assert props["warm.ttft_spread_ms.samples"] == "20"
    assert not any(name.startswith("pytest_inference.") for name in props)


def test_inconclusive_fails_by_default_and_can_xfail(project):
    res = project.runpytest("--target", "vendor.toml", "-k", "p99")
    res.assert_outcomes(failed=1)
    res.stdout.fnmatch_lines(["*inconclusive: a p99 from 20 samples cannot be supported*"])
    res = project.runpytest("--target", "vendor.toml", "-k", "p99", "--inference-inconclusive=xfail")
    res.assert_outcomes(xfailed=1)


def test_claims_survive_xdist(project):
    res = project.runpytest("--target", "vendor.toml", "-n", "2", "-p", "xdist")
    res.assert_outcomes(passed=2, failed=2)
    summary = json.loads((project.path / "reports" / "summary.json").read_text())
    assert sorted(c["metric"] for c in summary["claims"]) == [
        "warm.tpot_median_ms", "warm.ttft_median_ms", "warm.ttft_p99_ms", "warm.ttft_spread_ms"]
    res.stdout.fnmatch_lines(["*inference claims (target vendor-x)*"])


def test_baseline_regression_fails_the_test(project):
    project.runpytest("--target", "vendor.toml", "-k", "median")
    base = project.path / "base.json"
    data = json.loads((project.path / "reports" / "summary.json").read_text())
    for c in data["claims"]:
        c["measured"] = c["measured"] * 0.5  # the baseline was twice as fast
    base.write_text(json.dumps(data))
    res = project.runpytest("--target", "vendor.toml", "-k", "median", "--inference-baseline", str(base),
                            "--inference-baseline-tolerance", "10%", "-p", "xdist", "-n", "2")
    res.assert_outcomes(failed=1)  # the claim itself passes its target, but regressed
    res.stdout.fnmatch_lines(["*warm.ttft_median_ms regressed +100.0% against baseline*lower is better*"])
    summary = json.loads((project.path / "reports" / "summary.json").read_text())
    assert summary["regressions"] == 1
    claim = summary["claims"][0]
    assert claim["verdict"] == "pass" and claim["baseline"]["regression"] is True
    ok = project.runpytest("--target", "vendor.toml", "-k", "median", "--inference-baseline", str(base),
                           "--inference-baseline-tolerance", "150%")
    ok.assert_outcomes(passed=1)


@pytest.mark.parametrize(
    "args,line",
    [
        (["--target", "mi301x"], "ERROR: unknown target 'mi301x'; available targets: cpu-local, h100, h200, mi300x*"),
        (["--target", "bad.toml"], "ERROR: malformed target profile *bad.toml*"),
        (["--endpoint", "ftp://x"], "ERROR: --endpoint 'ftp://x' is not an http(s) URL*"),
        (["--api-key-env", "PYTEST_INFERENCE_SURELY_UNSET"], "ERROR: --api-key-env PYTEST_INFERENCE_SURELY_UNSET: the environment variable*not set*"),
        (["--inference-baseline", "nope.json"], "ERROR: baseline nope.json not found"),
        (["--warm-requests", "0"], "ERROR: --warm-requests must be at least 1; got 0"),
    ],
)
def test_bad_input_is_one_line(project, args, line):
    project.makefile(".toml", bad="[claims\n")
    res = project.runpytest(*args)
    assert res.ret == pytest.ExitCode.USAGE_ERROR
    res.stderr.fnmatch_lines([line])
    assert "Traceback" not in res.stderr.str() + res.stdout.str()


def test_list_targets(pytester):
    res = pytester.runpytest("--inference-targets")
    assert res.ret == 0
    res.stdout.fnmatch_lines(["mi300x: *", "*coldstart.total_s*< 65 s*", "*warm.ttft_spread_ms*< 5 ms*over >= 20 samples*"])


def test_help_documents_every_option(pytester):
    res = pytester.runpytest("--help")
    text = res.stdout.str()
    assert "pytest-inference (claims about LLM-inference infrastructure)" in text
    for opt in ("--target", "--inference-targets", "--endpoint", "--model", "--api-key-env", "--inference-report",
                "--inference-inconclusive", "--inference-baseline", "--inference-baseline-tolerance",
                "--warm-requests", "--warm-warmup", "--max-tokens"):
        assert opt in text
    assert "--api-key " not in text  # the key itself is never an option


def test_markers_registered_and_strict_clean(pytester):
    pytester.makepyfile("""
        import pytest
        @pytest.mark.coldstart
        @pytest.mark.warm
        @pytest.mark.serverless
        @pytest.mark.economics
        @pytest.mark.storage
        @pytest.mark.node
        @pytest.mark.k8s
        @pytest.mark.api
        def test_x():
            pass
    """)
    pytester.runpytest("--strict-markers").assert_outcomes(passed=1)
    res = pytester.runpytest("--markers")
    for m in ("coldstart", "warm", "serverless", "economics", "storage", "node", "k8s", "api"):
        res.stdout.fnmatch_lines([f"@pytest.mark.{m}:*"])


def test_plugin_can_be_disabled(pytester):
    pytester.makepyfile("def test_x(): pass")
    res = pytester.runpytest("-p", "no:inference", "--target", "x")
    assert res.ret == pytest.ExitCode.USAGE_ERROR  # the option no longer exists
    pytester.runpytest("-p", "no:inference").assert_outcomes(passed=1)


def test_help_stays_light():
    code = ("import sys, pytest_inference.plugin; heavy = [m for m in ('matplotlib', 'allure', 'openai', 'vllm', 'kubernetes', 'numpy')"
            " if m in sys.modules]; print(heavy); assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)
