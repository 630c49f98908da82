"""The economics suite with a capacity per GPU: published to the session by another test (as the load
suite will publish ``capacity.max_rps_at_slo``), given with ``--capacity-rps``, or neither."""

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SUITE = ROOT / "suites" / "economics"
BE_MEDIUM = 1.88 / 3600 / 0.000162  # the seed's medium break-even, one GPU at any rate: 3.2236 req/s

PUBLISHER = '''
import pytest

def test_publish_capacity(inference_session):
    inference_session.publish("capacity.max_rps_at_slo", {DATA}, unit="req/s")
'''


def run_suite(pytester, *args, paths=(SUITE,)):
    report = pytester.path / "report"
    res = pytester.runpytest_subprocess(*map(str, paths), "-p", "no:cacheprovider", "-p", "no:randomly",
                                        "--rootdir", str(ROOT), "--inference-report", str(report), *args, timeout=300)
    summary = report / "summary.json"
    claims = {c["metric"]: c for c in json.loads(summary.read_text())["claims"]} if summary.exists() else {}
    return res, claims, report


def publisher(pytester, data):
    # named to sort before nothing in particular: the economics tests run last (inference_reads) anyway
    return pytester.makepyfile(test_zz_publish_capacity=PUBLISHER.replace("{DATA}", repr(data)))


def test_published_capacity_is_measured_and_used(pytester):
    pub = publisher(pytester, {"rps": 4.0, "bracket": [4, 5], "slo": {"ttft_ms": 3000, "tpot_ms": 80}})
    # the publisher is named last on the command line and still runs before the economics tests
    res, claims, report = run_suite(pytester, "--target", "mi300x", "--capacity-rps", "100", paths=(SUITE, pub))
    out = res.stdout.str()
    assert "Traceback" not in out
    medium = claims["economics.breakeven_rps.medium"]
    assert medium["measured"] == pytest.approx(BE_MEDIUM) and medium["verdict"] == "measured"
    d = medium["details"]
    assert d["capacity"]["kind"] == "measured" and d["capacity"]["rps"] == 4.0 and d["capacity"]["bracket"] == [4, 5]
    assert d["capacity"]["slo"] == {"ttft_ms": 3000, "tpot_ms": 80}
    assert d["capacity_source"].startswith("measured: 4 req/s per GPU (capacity.max_rps_at_slo from ")
    assert "::test_publish_capacity)" in d["capacity_source"]  # the publishing test's node id
    assert d["capacity_notes"] == ["given 100 req/s (option --capacity-rps) not used: a measured capacity wins"]
    assert d["steps"]["crossings_total"] == 9
    # serverless is cheaper again past each 4 req/s step until 5 GPUs' break-even
    above = claims["economics.gpu_cheaper_above_rps.medium"]
    assert above["measured"] == pytest.approx(5 * BE_MEDIUM) and above["details"]["gpus_needed"] == 5
    assert [round(c["rps"], 2) for c in above["details"]["crossings"]] == [
        3.22, 4.0, 6.45, 8.0, 9.67, 12.0, 12.89, 16.0, 16.12]
    usd = claims["economics.self_hosted_usd_per_m_output.medium"]
    assert usd["measured"] == pytest.approx(1.88 / (4 * 3600 * 220) * 1e6) and usd["unit"] == "USD/Mtok"
    # short: one GPU at 4 req/s costs more than serverless does at 4 req/s: no break-even, said so
    short = claims["economics.breakeven_rps.short"]
    assert short["verdict"] == "inconclusive"
    assert short["reason"].startswith("no break-even at capacity 4 req/s per GPU (measured): serverless is cheaper "
                                      "at every rate")
    # long: break-even 0.62 req/s, far under capacity: as before, and mi300x's "< 1" still passes
    assert claims["economics.breakeven_rps.long"]["verdict"] == "pass"
    assert claims["economics.gpu_cheaper_above_rps.long"]["measured"] == pytest.approx(0.6158, abs=1e-4)
    # the chart of the step curve against serverless' line travels with the claim
    fig = d["figures"][0]
    assert fig["kind"] == "lines" and fig["series"][0]["label"].startswith("self-hosted: ceil(R / 4 req/s) GPUs")
    assert "capacity 4 req/s per GPU (measured)" in fig["title"]
    measurements = json.loads((report / "summary.json").read_text())["measurements"]
    assert [m["name"] for m in measurements if m["name"].startswith("capacity.")] == ["capacity.max_rps_at_slo"]


def test_given_capacity_and_an_unusable_published_one(pytester):
    pub = publisher(pytester, {"rps": None, "bracket": None})  # the search found nothing that held the SLO
    res, claims, _ = run_suite(pytester, "--target", "mi300x", "--capacity-rps", "20", "-k", "medium or publish",
                               paths=(SUITE, pub))
    assert res.ret == 0, res.stdout.str()
    d = claims["economics.self_hosted_usd_per_m_output.medium"]["details"]
    assert d["capacity"]["kind"] == "given" and d["capacity_source"] == "given: 20 req/s per GPU (option --capacity-rps)"
    assert len(d["capacity_notes"]) == 1 and "no rps (the search found no rate that held the SLO)" in d["capacity_notes"][0]
    # 20 req/s per GPU is above every medium crossing: one crossing, today's figure
    assert claims["economics.gpu_cheaper_above_rps.medium"]["measured"] == pytest.approx(BE_MEDIUM)
    assert claims["economics.self_hosted_usd_per_m_output.medium"]["measured"] == pytest.approx(
        1.88 / (20 * 3600 * 220) * 1e6)


def test_no_capacity_is_todays_model_and_says_so(pytester):
    res, claims, _ = run_suite(pytester, "--target", "mi300x", "-k", "medium or table", "-rs")
    medium = claims["economics.breakeven_rps.medium"]
    assert medium["measured"] == pytest.approx(BE_MEDIUM)
    assert medium["details"]["capacity"] is None and medium["details"]["capacity_source"].startswith("capacity not given")
    assert claims["economics.gpu_cheaper_above_rps.medium"]["measured"] == pytest.approx(BE_MEDIUM)
    # no capacity, no cost per token at capacity: skipped with the reason, never a claim that passes
    assert "economics.self_hosted_usd_per_m_output.medium" not in claims
    assert res.ret == 0, res.stdout.str()
    res.stdout.fnmatch_lines(["*SKIPPED*test_economics.py*capacity not given: one GPU is assumed to serve any rate*"])


@pytest.mark.parametrize("value, needle", [
    ("0", "argument --capacity-rps: must be greater than 0 (requests/s one GPU serves within the SLO); got '0'"),
    ("-2", "argument --capacity-rps: must be greater than 0"),
    ("nan", "argument --capacity-rps: must be a finite number"),
])
def test_bad_capacity_option_is_a_usage_error(pytester, value, needle):
    pytester.makepyfile(test_capacity_usage_probe="def test_nothing(): pass")
    res = pytester.runpytest_subprocess("--capacity-rps", value, "-p", "no:cacheprovider")
    assert res.ret == pytest.ExitCode.USAGE_ERROR
    assert [line for line in res.stderr.lines if "error:" in line] == [
        line for line in res.stderr.lines if needle in line] != []
    assert "Traceback" not in res.stderr.str()
