"""The economics suite (suites/economics) and its options, in child pytest runs (pytester, subprocess)."""

import json
import os
from pathlib import Path

import pytest

from pytest_inference.economics import PRICING_FIELDS
from pytest_inference.report.charts import PNG_SIGNATURE
from pytest_inference.testing.fake_openai import FakeOpenAIServer

ROOT = Path(__file__).resolve().parents[2]
SUITE = ROOT / "suites" / "economics"
SERVING = ROOT / "suites" / "warm"
METRICS = ("economics.breakeven_rps.short", "economics.breakeven_rps.medium", "economics.breakeven_rps.long")


@pytest.fixture(autouse=True)
def _fake_server_is_part_of_the_run(monkeypatch, tmp_path_factory):
    """A fake server started by this test process is part of the child run's measurement, not a
    foreign CPU load (see engine.hostload.OWN_PIDS_ENV); and the host's busy time and pressure are
    read from unchanging recordings (the engine's test seams), so hypervisor steal or a neighbour on a
    shared box cannot make these runs about other behaviour inconclusive."""
    monkeypatch.setenv("PYTEST_INFERENCE_OWN_PIDS", str(os.getpid()))
    quiet = tmp_path_factory.mktemp("quiet-host")
    (quiet / "stat").write_text("cpu  1000 0 1000 100000 0 0 0 0 0 0\n")
    (quiet / "psi").write_text("some avg10=0.00 avg60=0.00 avg300=0.00 total=1000\n"
                               "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n")
    monkeypatch.setenv("PYTEST_INFERENCE_STAT_PATH", str(quiet / "stat"))
    monkeypatch.setenv("PYTEST_INFERENCE_PSI_PATH", str(quiet / "psi"))


def run_suite(pytester, *args, paths=(SUITE,)):
    report = pytester.path / "report"
    res = pytester.runpytest_subprocess(*map(str, paths), "-p", "no:cacheprovider", "--rootdir", str(ROOT),
                                        "--inference-report", str(report), *args, timeout=300)
    summary = report / "summary.json"
    claims = {c["metric"]: c for c in json.loads(summary.read_text())["claims"]} if summary.exists() else {}
    return res, claims, report


def allure_results(report):
    out = {}
    for p in (report / "allure-results").glob("*-result.json"):
        r = json.loads(p.read_text())
        out[r["name"]] = r
    return out


def attachments(result):
    return result.get("attachments", []) + [a for st in result.get("steps", []) for a in st.get("attachments", [])]


def test_mi300x_claims_and_charts(pytester):
    res, claims, report = run_suite(pytester, "--target", "mi300x")
    assert res.ret == 0, res.stdout.str()
    short, medium, long_ = (claims[m] for m in METRICS)
    assert short["measured"] == pytest.approx(18.0077, abs=1e-4) and short["verdict"] == "measured"
    assert medium["measured"] == pytest.approx(3.2236, abs=1e-4) and medium["verdict"] == "measured"
    # mi300x states the seed's "long -> < 1 req/s" as a bound
    assert long_["measured"] == pytest.approx(0.6158, abs=1e-4) and long_["verdict"] == "pass"
    assert long_["op"] == "<" and long_["threshold"] == 1 and long_["unit"] == "req/s"
    assert claims["economics.breakeven_swing"]["measured"] == pytest.approx(29.24, abs=0.01)
    d = short["details"]
    assert d["input_tokens"] == 80 and d["input_tokens_source"].startswith("given: target mi300x")
    assert d["sources"] == {k: "target mi300x" for k in (*PRICING_FIELDS, "input_tokens", "output_lengths")}
    # Allure: a PNG chart for each length and the table as JSON
    results = allure_results(report)
    for name in ("test_breakeven_rps[short]", "test_breakeven_rps[medium]", "test_breakeven_rps[long]", "test_crossover_table"):
        pngs = [a for a in attachments(results[name]) if a["type"] == "image/png"]
        assert pngs, name
        assert (report / "allure-results" / pngs[0]["source"]).read_bytes().startswith(PNG_SIGNATURE)
        assert ("suite", "economics") in {(lab["name"], lab["value"]) for lab in results[name]["labels"]}
    table = next(a for a in attachments(results["test_crossover_table"]) if a["name"] == "crossover table")
    rows = json.loads((report / "allure-results" / table["source"]).read_text())["rows"]
    assert [(r["name"], round(r["breakeven_requests_per_second"], 2)) for r in rows] == [
        ("short", 18.01), ("medium", 3.22), ("long", 0.62)]
    res.stdout.fnmatch_lines(["*economics.breakeven_rps.long*0.616 req/s*< 1 req/s*pass*"])


def test_options_and_pricing_file_override_the_target(pytester):
    prices = pytester.path / "prices.toml"
    prices.write_text("gpu_usd_per_hour = 3.76\nusd_per_m_output = 0.35\n")
    res, claims, _ = run_suite(pytester, "--target", "mi300x", "--pricing", str(prices), "--price-out", "0.70",
                               "--output-lengths", "short=30,long=1200,huge=10000")
    # GPU twice as dear (file), output price from the option: every break-even doubles; long now fails < 1
    assert res.ret == 1
    assert claims["economics.breakeven_rps.short"]["measured"] == pytest.approx(2 * 18.0077, abs=1e-3)
    assert claims["economics.breakeven_rps.long"]["verdict"] == "fail"
    assert "economics.breakeven_rps.huge" in claims and "economics.breakeven_rps.medium" not in claims
    src = claims["economics.breakeven_rps.short"]["details"]["sources"]
    assert src["gpu_usd_per_hour"] == f"pricing file {prices}"
    assert src["usd_per_m_output"] == "option --price-out" and src["usd_per_m_input"] == "target mi300x"
    assert src["output_lengths"] == "option --output-lengths"
    res.stdout.fnmatch_lines(["*economics.breakeven_rps.long = 1.232 req/s*target mi300x requires < 1 req/s*"])


def test_measured_prompt_tokens_are_used(pytester):
    """With the warm suite in the same session, input tokens are the servers' own prompt counts."""
    # the target's model: a run of another model would not be judged against mi300x (A7)
    with FakeOpenAIServer(ttft_ms=2, token_ms=1, tokens=8, model="openai/gpt-oss-120b") as srv:
        # the economics suite is named first and still runs last, after the warm run it reads
        res, claims, _ = run_suite(pytester, "--endpoint", srv.url, "--target", "mi300x", "--input-tokens", "80",
                                   "--warm-requests", "5", "--warm-warmup", "1", "--max-tokens", "8",
                                   "-k", "every_stream or breakeven or crossover", paths=(SUITE, SERVING))
    assert res.ret == 0, res.stdout.str()
    d = claims["economics.breakeven_rps.short"]["details"]
    # the fake server counts prompt words: "Request N (word word). Write a short story about a lighthouse keeper."
    assert d["input_tokens"] == 12
    assert d["input_tokens_source"].startswith("measured: mean server-reported prompt tokens of 5 requests (warm.tokens)")
    assert "given 80 (option --input-tokens) not used" in d["input_tokens_source"]
    assert claims["economics.breakeven_rps.short"]["measured"] == pytest.approx(1.88 / 3600 / ((12 * 0.1 + 30 * 0.7) / 1e6))
    res.stdout.fnmatch_lines(["*suites/warm/test_warm.py .*", "*suites/economics/test_economics.py ....*"])


def test_no_pricing_is_inconclusive_with_one_line(pytester):
    res, claims, _ = run_suite(pytester, "--target", "cpu-local")
    assert res.ret == 1
    for metric in METRICS:
        assert claims[metric]["verdict"] == "inconclusive"
        assert claims[metric]["reason"] == ("no GPU price in USD per hour: pass --gpu-hourly USD, a --pricing file with "
                                            "gpu_usd_per_hour or set gpu_usd_per_hour in target cpu-local's [economics] table")
    assert "Traceback" not in res.stdout.str()


@pytest.mark.parametrize("args, needle", [
    (["--price-in", "-1"], "argument --price-in: must be greater than 0 (serverless price in USD per 1M input tokens); got '-1'"),
    (["--gpu-hourly", "0"], "argument --gpu-hourly: must be greater than 0 (GPU price in USD per hour); got '0'"),
    (["--price-out", "nan"], "argument --price-out: must be a finite number"),
    (["--input-tokens", "zero"], "argument --input-tokens: must be a number (input tokens per request); got 'zero'"),
    (["--output-lengths", "30,-5"], "argument --output-lengths: must be greater than 0 (output tokens per response); got '-5'"),
    (["--pricing", "no-such-prices.toml"], "argument --pricing: pricing file no-such-prices.toml not found"),
])
def test_bad_option_is_a_usage_error(pytester, args, needle):
    pytester.makepyfile(test_economics_usage_probe_file="def test_nothing(): pass")
    res = pytester.runpytest_subprocess(*args, "-p", "no:cacheprovider")
    assert res.ret == pytest.ExitCode.USAGE_ERROR
    err = res.stderr.lines
    assert [line for line in err if needle in line], err
    assert [line for line in err if "error:" in line] == [line for line in err if needle in line]
    assert "Traceback" not in res.stderr.str()


def test_bad_pricing_file_is_a_usage_error(pytester):
    bad = pytester.path / "bad-prices.toml"
    bad.write_text("gpu_usd_per_hour = -3\n")
    res = pytester.runpytest_subprocess("--pricing", str(bad), "-p", "no:cacheprovider")
    assert res.ret == pytest.ExitCode.USAGE_ERROR
    res.stderr.fnmatch_lines([f"*argument --pricing: pricing file {bad}: gpu_usd_per_hour must be greater than 0*"])


def test_xdist_controller_gets_every_workers_token_counts(pytester):
    """Under -n 2 each worker that ran the warm suite publishes its warm.tokens; the controller's
    summary.json has every one, and each economics claim used one (or said it had none)."""
    pytest.importorskip("xdist")
    import re

    with FakeOpenAIServer(ttft_ms=2, token_ms=1, tokens=8, model="openai/gpt-oss-120b") as srv:
        res, claims, report = run_suite(pytester, "--endpoint", srv.url, "--target", "mi300x", "--input-tokens", "80",
                                        "--warm-requests", "5", "--warm-warmup", "1", "--max-tokens", "8",
                                        "-n", "2", "-v", "-p", "no:randomly", paths=(SUITE, SERVING))
    assert res.ret in (0, 1), res.stdout.str()  # warm claims of the fake server may fail the mi300x target
    ran = {}  # node id -> worker
    for line in res.stdout.lines:
        m = re.match(r"\[(gw\d+)\] \[\s*\d+%\] \w+ (\S+)", line)
        if m:
            ran[m.group(2)[m.group(2).index("suites/"):]] = m.group(1)  # shown relative to the child's cwd
    warm_workers = {w for nodeid, w in ran.items() if nodeid.startswith("suites/warm/")}
    assert warm_workers, res.stdout.str()
    measurements = json.loads((report / "summary.json").read_text())["measurements"]
    tokens = [m for m in measurements if m["name"] == "warm.tokens"]
    assert {m["id"].split("-")[0] for m in tokens} == warm_workers and len(tokens) == len(warm_workers)
    for m in tokens:
        assert m["unit"] == "tokens" and m["data"]["requests"] == 5
        assert m["data"]["prompt_tokens"] == [12] * 5 and m["data"]["output_tokens"] == [8] * 5
        assert ran[m["source"]] == m["id"].split("-")[0]  # published during a warm test of that worker
    for metric in METRICS:
        d = claims[metric]["details"]
        worker = ran[claims[metric]["test"]]
        if worker in warm_workers:  # its own warm run came first
            assert d["input_tokens"] == 12 and "(warm.tokens)" in d["input_tokens_source"]
        elif d["measurements"]:  # another worker's, published before the read
            assert d["input_tokens"] == 12 and "(warm.tokens)" in d["input_tokens_source"]
        else:
            assert d["input_tokens"] == 80 and d["input_tokens_source"].startswith("given: option --input-tokens")
