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
        (["--warm-requests", str(10**9)], "ERROR: --warm-requests must be at most 100,000; got 1,000,000,000 *"),
        (["--warm-warmup", str(10**9)], "ERROR: --warm-warmup must be at most 100,000*"),
        (["--cold-runs", "0"], "ERROR: --cold-runs must be at least 1; got 0"),
        (["--read-rounds", "0"], "ERROR: --read-rounds must be at least 1; got 0"),
        (["--target", "typo.toml"], "ERROR: malformed target profile typo.toml: unknown [[]workload[]] key 'warm_requets'*"),
        (["--target", "neg.toml"], "ERROR: malformed target profile neg.toml: [[]workload[]] warm_requests must be at least 1; got -5"),
        (["--inference-baseline", "nan.json"], "ERROR: baseline nan.json has a malformed claim entry: *not a finite number"),
        (["--inference-baseline", "list.json"], "ERROR: baseline list.json has a malformed claim entry: *metric must be a string*"),
        (["--endpoint", "http://me:hunter2pw@[::1/v1"], "ERROR: --endpoint 'http://***@[[]::1/v1' is not a valid URL*"),
        (["--endpoint", "http://me:hunter2pw@host:99999"], "ERROR: --endpoint 'http://***@host:99999' has an invalid port"),
        (["--inference-report", "afile/sub"], "ERROR: --inference-report */afile/sub: cannot be created, */afile is not a directory"),
        (["--inference-report", "afile"], "ERROR: --inference-report */afile: exists and is not a directory"),
        (["--inference-report", "afile/sub", "-p", "no:allure_pytest"], "ERROR: --inference-report */afile/sub: cannot be created*"),
    ],
)
def test_bad_input_is_one_line(project, args, line):
    project.makefile(".toml", bad="[claims\n")
    project.makefile(".toml", typo='extends = "mi300x"\n[workload]\nwarm_requets = 5\n')
    project.makefile(".toml", neg='extends = "mi300x"\n[workload]\nwarm_requests = -5\n')
    project.makefile(".json", nan='{"schema": 1, "claims": [{"metric": "warm.x", "measured": NaN}]}')
    project.makefile(".json", list='{"schema": 1, "claims": [{"metric": ["warm.x"], "measured": 1}]}')
    (project.path / "afile").write_text("a file, not a folder")
    res = project.runpytest(*args)
    assert res.ret == pytest.ExitCode.USAGE_ERROR
    res.stderr.fnmatch_lines([line])
    assert "Traceback" not in res.stderr.str() + res.stdout.str()
    assert "INTERNALERROR" not in res.stderr.str() + res.stdout.str()
    assert "hunter2pw" not in res.stderr.str() + res.stdout.str()


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
    from pytest_inference.settings import SETTINGS

    for key, spec in SETTINGS.items():  # every run setting's option, with its default from the table
        if spec.flag:
            assert spec.flag in text, key
    assert "90 %)" in text  # a % in a help text is escaped for argparse (unescaped, --help crashes)
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


# --- B9: a key never leaves through any sink, on any path ----------------------------------------
KEY = "sk-live-0123456789abcdefSECRET"
LEAKY_TEST = """
import base64, pytest

@pytest.mark.warm
def test_leaky(inference_api_key):
    header = "Authorization: Bearer " + inference_api_key
    basic = base64.b64encode(("user:" + inference_api_key).encode()).decode()
    print("debug:", header, basic)               # captured stdout
    import logging; logging.getLogger("x").warning("key %s", inference_api_key)   # captured log
    assert False, header                         # the assertion message, and -l shows the locals
"""


def _all_files(*roots):
    for root in roots:
        if root.is_file():
            yield root
        elif root.exists():
            yield from (p for p in root.rglob("*") if p.is_file())


def test_key_is_redacted_in_every_sink_even_when_no_claim_was_recorded(pytester, monkeypatch):
    import base64

    pytester.makepyfile(test_leak=LEAKY_TEST)
    monkeypatch.setenv("MY_KEY", KEY)
    res = pytester.runpytest("--api-key-env", "MY_KEY", "-l", "-rA", "--junitxml=junit.xml",
                             "--alluredir", "allure-out", "-p", "no:randomly")
    res.assert_outcomes(failed=1)
    out = res.stdout.str() + res.stderr.str()
    b64 = base64.b64encode(KEY.encode()).decode()
    assert "***" in out and "debug: Authorization: Bearer ***" in out
    assert KEY not in out and "0123456789abcdef" not in out and b64[8:20] not in out
    files = list(_all_files(pytester.path / "junit.xml", pytester.path / "allure-out", pytester.path / "reports"))
    assert any(p.name.endswith("-result.json") for p in files)
    for path in files:
        data = path.read_bytes()
        assert KEY.encode() not in data and b"0123456789abcdef" not in data, path


@pytest.mark.parametrize("key,why", [("sk-abc\r\nX-Injected: 1", "a line break"), ("sk-\u043a\u043b\u044e\u0447", "a character outside Latin-1")])
def test_unsendable_key_is_refused_up_front_in_one_line(pytester, monkeypatch, key, why):
    pytester.makepyfile(test_leak=LEAKY_TEST)
    monkeypatch.setenv("MY_KEY", key)
    res = pytester.runpytest("--api-key-env", "MY_KEY")
    assert res.ret == pytest.ExitCode.USAGE_ERROR
    res.stderr.fnmatch_lines([f"ERROR: --api-key-env MY_KEY: the API key in $MY_KEY contains {why}*(the key is not shown)"])
    out = res.stdout.str() + res.stderr.str()
    assert "Traceback" not in out and "X-Injected" not in out and "\u043a\u043b\u044e\u0447" not in out


# --- C18: OPENAI_API_KEY is the default key variable -----------------------------------------------
def test_openai_api_key_is_the_default_for_an_endpoint_only(pytester, monkeypatch):
    from pytest_inference.testing.fake_openai import FakeOpenAIServer

    pytester.makepyfile(test_key="""
        import pytest

        @pytest.mark.warm
        def test_endpoint(inference_endpoint, inference_api_key, claim):
            print("key:", inference_api_key)
            claim("warm.failed_requests", [0])
    """)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    with FakeOpenAIServer(api_key=KEY, model="tiny-llama") as srv:
        res = pytester.runpytest("--endpoint", srv.url, "--target", "cpu-local", "-rA")
        res.assert_outcomes(passed=1)  # GET /v1/models answered: the key was sent
        assert KEY not in res.stdout.str() and "key: ***" in res.stdout.str()
        res.stdout.fnmatch_lines(["*API key from $OPENAI_API_KEY*"])
        monkeypatch.delenv("OPENAI_API_KEY")
        res = pytester.runpytest("--endpoint", srv.url, "--target", "cpu-local")
        res.assert_outcomes(errors=1)  # a fixture's one line: the session-scoped endpoint is a setup error
        res.stdout.fnmatch_lines(["*endpoint rejected the API key (HTTP 401)*"])
    # without --endpoint the embedded server never requires it, but it is still redacted
    pytester.makepyfile(test_key="""
        import os, pytest

        @pytest.mark.warm
        def test_no_endpoint(inference_api_key, claim):
            assert inference_api_key is None
            print("env:", os.environ["OPENAI_API_KEY"])
            claim("warm.failed_requests", [0])
    """)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    res = pytester.runpytest("-rA")
    res.assert_outcomes(passed=1)
    assert KEY not in res.stdout.str() and "env: ***" in res.stdout.str()


# --- C19: a gate that measured nothing is not green -----------------------------------------------
ALL_SKIP = """
import pytest

@pytest.mark.storage
def test_read(claim):
    pytest.skip("the NFS client binding (libnfs) is not installed")

@pytest.mark.node
def test_mtu(claim):
    pytest.skip("no node to probe")

def test_plain():
    pass
"""


def test_session_that_measured_no_claim_exits_non_zero(pytester):
    pytester.makepyfile(test_gate=ALL_SKIP)
    res = pytester.runpytest("-p", "no:randomly")
    res.assert_outcomes(passed=1, skipped=2)
    assert res.ret == 1
    res.stdout.fnmatch_lines([
        "*inference: no claim was measured*",
        "*test_gate.py::test_mtu: skipped: no node to probe",
        "*test_gate.py::test_read: skipped: the NFS client binding (libnfs) is not installed",
        "*exit status 1 (--inference-allow-unmeasured accepts it)*",
    ])
    ok = pytester.runpytest("--inference-allow-unmeasured")
    assert ok.ret == 0
    ok.stdout.fnmatch_lines(["*allowed by --inference-allow-unmeasured*"])


def test_session_with_one_claim_or_no_inference_test_is_unaffected(pytester):
    pytester.makepyfile(test_gate=ALL_SKIP + """
@pytest.mark.storage
def test_version(claim):
    claim("storage.nfs_version", [4.1])
""")
    assert pytester.runpytest().ret == 0
    pytester.makepyfile(test_gate="def test_plain():\n    pass\n")
    res = pytester.runpytest()
    assert res.ret == 0 and "no claim was measured" not in res.stdout.str()
    # a folder named like a suite is not the suite (pytest's keywords hold folder names)
    (pytester.path / "test_gate.py").unlink()
    sub = pytester.mkpydir("storage")
    (sub / "test_x.py").write_text("def test_x():\n    pass\n")
    res = pytester.runpytest()
    assert res.ret == 0 and "no claim was measured" not in res.stdout.str()


def test_unmeasured_exit_status_under_xdist(pytester):
    pytester.makepyfile(test_gate=ALL_SKIP)
    res = pytester.runpytest("-n", "2", "-p", "xdist")
    assert res.ret == 1
    res.stdout.fnmatch_lines(["*test_gate.py::test_read: skipped: the NFS client binding*"])


# --- C16 / C17: allure-pytest's folder only for inference sessions; suite labels on every test -----
def test_allure_folder_is_left_alone_without_inference_tests(pytester):
    stale = pytester.path / "reports" / "allure-results"
    stale.mkdir(parents=True)
    (stale / "mine.txt").write_text("the user's file")
    old = stale / "0123456789abcdef0123456789abcdef-result.json"
    old.write_text("{}")
    pytester.makepyfile(test_plain="def test_plain():\n    pass\n")
    assert pytester.runpytest().ret == 0
    assert sorted(p.name for p in stale.iterdir()) == sorted(["mine.txt", old.name])  # nothing taken over


def test_allure_folder_defaults_for_inference_tests_and_labels_skipped_ones(pytester):
    stale = pytester.path / "reports" / "allure-results"
    stale.mkdir(parents=True)
    (stale / "mine.txt").write_text("the user's file")
    (stale / "0123456789abcdef0123456789abcdef-result.json").write_text("{}")
    pytester.makepyfile(test_gate=ALL_SKIP + """
@pytest.mark.k8s
def test_k8s(claim):
    claim("k8s.pdb_defects", [0])
""")
    res = pytester.runpytest("-p", "no:randomly")
    assert res.ret == 0
    names = sorted(p.name for p in stale.iterdir())
    assert "mine.txt" in names and "0123456789abcdef0123456789abcdef-result.json" not in names
    results = [json.loads(p.read_text()) for p in stale.glob("*-result.json")]
    suites = {r["name"]: {lb["value"] for lb in r["labels"] if lb["name"] == "suite"} for r in results}
    assert suites["test_read"] == {"storage"} and suites["test_mtu"] == {"node"} and suites["test_k8s"] == {"k8s"}
    parents = {r["name"]: {lb["value"] for lb in r["labels"] if lb["name"] == "parentSuite"} for r in results}
    assert parents["test_read"] == {"pytest-inference"} and "test_plain" in suites and not suites["test_plain"] - {"test_gate"}
    for r in results:  # each label once (the claim's sink and the markers both know the suite)
        pairs = [(lb["name"], lb["value"]) for lb in r["labels"]]
        assert len(pairs) == len(set(pairs)), (r["name"], pairs)


# --- A7: claims of a server that is not the target's are not judged -------------------------------
def test_a_run_of_another_model_is_not_judged_against_a_hardware_target(pytester):
    from pytest_inference.testing.fake_openai import FakeOpenAIServer

    pytester.makepyfile(test_ran="""
        import pytest

        @pytest.mark.warm
        def test_spread(inference_endpoint, claim):
            claim("warm.ttft_spread_ms", [300.0] * 19 + [301.0], stat="spread", unit="ms")

        @pytest.mark.storage
        def test_mtu(claim):
            claim("node.mtu", [9000])
    """)
    with FakeOpenAIServer(model="llama-tiny-test") as srv:
        res = pytester.runpytest("--endpoint", srv.url, "--target", "mi300x", "-p", "no:randomly")
        res.assert_outcomes(passed=1, failed=1)
        res.stdout.fnmatch_lines([f"*warm.ttft_spread_ms = 1 ms over 20 samples; inconclusive: not judged against "
                                  f"mi300x: this run measured llama-tiny-test on an unknown accelerator (--endpoint "
                                  f"{srv.url}/v1); mi300x is openai/gpt-oss-120b*"])
        summary = json.loads((pytester.path / "reports" / "summary.json").read_text())
        assert summary["run"]["ran"] == [{"accelerator": None, "model": "llama-tiny-test", "how": f"--endpoint {srv.url}/v1"}]
        by_metric = {c["metric"]: c for c in summary["claims"]}
        assert by_metric["warm.ttft_spread_ms"]["measured"] == 1 and by_metric["node.mtu"]["verdict"] == "pass"
    with FakeOpenAIServer(model="openai/gpt-oss-120b") as srv:  # the target's model: judged
        res = pytester.runpytest("--endpoint", srv.url, "--target", "mi300x")
        res.assert_outcomes(passed=2)


def test_the_local_server_tells_the_judge_what_ran(pytester, tmp_path):
    """fixture.py's local fallback (no --endpoint) notes the server it started: a CPU server is
    not judged against mi300x, and is against a CPU target (the fake server as --server-cmd)."""
    (tmp_path / "config.json").write_text("{}")
    pytester.makepyfile(test_local="""
        import pytest

        @pytest.mark.warm
        def test_spread(inference_endpoint, claim):
            claim("warm.ttft_spread_ms", [300.0] * 19 + [301.0], stat="spread", unit="ms")
    """)
    cmd = "{python} -m pytest_inference.testing.fake_openai --host {host} --port {port} --model {model} --max-lifetime-s 120"
    common = ["--server-python", sys.executable, "--server-cmd", cmd, "--model-path", str(tmp_path), "--device", "cpu"]
    res = pytester.runpytest("--target", "mi300x", *common)
    res.assert_outcomes(failed=1)
    res.stdout.fnmatch_lines(["*inconclusive: not judged against mi300x: this run measured openai/gpt-oss-120b on "
                              "the CPU (--server-cmd); mi300x is openai/gpt-oss-120b on MI300X*"])
    summary = json.loads((pytester.path / "reports" / "summary.json").read_text())
    assert summary["run"]["ran"] == [{"accelerator": "cpu", "model": "openai/gpt-oss-120b", "how": "--server-cmd"}]
    pytester.makefile(".toml", cpu='name = "cpu-box"\n[workload]\naccelerator = "cpu"\n[claims]\n'
                                   '"warm.ttft_spread_ms" = { op = "<", threshold = 5, unit = "ms", stat = "spread" }\n')
    res = pytester.runpytest("--target", "cpu.toml", *common)
    res.assert_outcomes(passed=1)


def test_default_report_folder_is_checked_only_when_inference_tests_run(pytester):
    (pytester.path / "reports").write_text("a file where the default folder would go")
    pytester.makepyfile(test_plain="def test_plain():\n    pass\n")
    assert pytester.runpytest().ret == 0  # a plain project is not refused
    pytester.makepyfile(test_gate="""
        import pytest

        @pytest.mark.storage
        def test_version(claim):
            claim("storage.nfs_version", [4.1])
    """)
    res = pytester.runpytest()
    assert res.ret == pytest.ExitCode.USAGE_ERROR
    res.stderr.fnmatch_lines(["ERROR: --inference-report */reports: exists and is not a directory"])
    assert "INTERNALERROR" not in res.stdout.str() + res.stderr.str()
    res.stdout.no_fnmatch_line("*test_version PASSED*")
