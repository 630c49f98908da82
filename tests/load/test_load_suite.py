"""The load suite (suites/load) end to end against the fake server of known capacity.

``FakeOpenAIServer(capacity=K)`` serves K streams at once and queues the rest (K / S req/s; here
4 / 0.2 s = 20 req/s, see test_load_fake_capacity.py for the D/D/K ground truth). The suite's
claims, its capacity bracket, what it publishes for the cost crossover, its records and charts,
and its refusal to judge what it did not measure are what is under test.
"""

from __future__ import annotations

import json

import pytest
from suite_runner import ROOT, claims_by_metric, run_suite
from test_load_fake_capacity import K, TOKEN_MS, TOKENS, TTFT_MS, highest, ideal_may_pass

from pytest_inference.testing.fake_openai import FakeOpenAIServer
from pytest_inference.testing.load import busy_loops

pytestmark = pytest.mark.xdist_group("timing")

SUITE = ROOT / "suites" / "load"
TARGET = '''
name = "load-test"
description = "the fake server of known capacity"
confidence = 0.95
[load]
slo = "ttft_ms:200"
workload = "synthetic:input=uniform(8,24),output=6,n=40,seed=3"
rate_rps = "10"
requests = 40
arrival = "constant"
max_lag_ms = 5
search_start_rps = 5
search_max_rps = 40
search_requests = 40
search_min_s = 0           # 40 requests a probe whatever the rate: the D/D/K ground truth is for N = 40
search_attainment = 0.9
search_max_s = 120
search_tight = 0.1
[claims]
"load.slo_attainment" = { op = ">=", threshold = 0.9 }
"load.ttft_p99_ms" = { op = "<=", threshold = 400 }
"load.output_length_mismatches" = { op = "==", threshold = 0 }
'''


def _target(tmp_path) -> str:
    path = tmp_path / "load-test.toml"
    path.write_text(TARGET)
    return str(path)


def test_the_suite_judges_a_rate_and_brackets_the_known_capacity(tmp_path):
    with FakeOpenAIServer(ttft_ms=TTFT_MS, token_ms=TOKEN_MS, tokens=TOKENS, capacity=K, kv_cache_tokens=65536) as srv:
        proc, out, summary, report = run_suite(
            tmp_path, "--endpoint", srv.url, "--target", _target(tmp_path), "-p", "no:randomly",
            suite=SUITE, timeout=400)
    assert summary is not None, out
    claims = claims_by_metric(summary)
    # at 10 req/s (half the capacity) every request is served at once: the SLO holds
    att = claims["load.slo_attainment"]
    if att["verdict"] == "inconclusive":  # only for the client's sake, and saying so
        assert att["reason"].startswith("the client was measured, not the server"), att
    else:
        assert att["verdict"] == "pass" and att["measured"] == 1.0, att
        assert claims["load.ttft_p99_ms"]["verdict"] in ("pass", "inconclusive")  # 40 requests: too few for a p99?
        assert claims["load.goodput_rps"]["measured"] == pytest.approx(10, rel=0.2)
    assert claims["load.output_length_mismatches"]["verdict"] == "pass"
    assert claims["load.kv_cache_tokens"]["measured"] == 65536
    # the bracket: never above what the ideal queue lets pass (the dangerous direction: a capacity
    # the server does not have), and the search ran its own probes, each judged
    cap = claims["capacity.max_rps_at_slo"]
    bracket = cap["details"]["bracket"]
    assert bracket["probes"], cap
    if bracket["highest_pass"] is not None:
        assert bracket["highest_pass"] <= highest(ideal_may_pass), bracket
        assert cap["measured"] == bracket["highest_pass"]
        # published for the cost crossover, with its bracket and SLO
        pub = [m for m in summary["measurements"] if m["name"] == "capacity.max_rps_at_slo"]
        assert pub and pub[0]["data"]["rps"] == bracket["highest_pass"] and pub[0]["data"]["slo"] == "ttft_ms:200"
    if bracket["lowest_fail"] is not None:
        assert bracket["lowest_fail"] > 10, bracket  # 10 req/s holds (the fixed-rate run above)
    for p in bracket["probes"]:
        if p["verdict"] == "inconclusive":
            assert p["details"]["reason"], p
    # charts as data, per-request records in the report folder
    names = {f["name"] for f in cap["details"]["figures"]}
    assert {"load latency vs offered rate", "load achieved vs offered rate", "load dispatch lag histogram"} <= names
    records = sorted((report / "records").glob("*.jsonl"))
    assert (report / "records" / "load-10rps.jsonl") in records and len(records) == 1 + len(bracket["probes"])
    rows = [json.loads(line) for line in (report / "records" / "load-10rps.jsonl").read_text().splitlines()]
    assert len(rows) == 40 and all(r["asked_output_tokens"] == 6 for r in rows)
    # the workload's hash and seed reach the report
    assert summary["run"]["load_workload"]["seed"] == 3 and len(summary["run"]["load_workload"]["content_hash"]) == 64


def test_measured_capacity_reaches_the_cost_crossover_in_the_same_session(tmp_path):
    target = tmp_path / "load-econ.toml"
    target.write_text(TARGET.replace('name = "load-test"', 'name = "load-econ"') + '''
[economics]
gpu_usd_per_hour = 1.88
usd_per_m_input = 0.10
usd_per_m_output = 0.70
input_tokens = 80
output_lengths = { medium = 220 }
''')
    with FakeOpenAIServer(ttft_ms=TTFT_MS, token_ms=TOKEN_MS, tokens=TOKENS, capacity=K) as srv:
        proc, out, summary, _ = run_suite(
            tmp_path, str(ROOT / "suites" / "economics"), "--endpoint", srv.url, "--target", str(target),
            "-k", "capacity or self_hosted or cheaper", "-p", "no:randomly", suite=SUITE, timeout=400)
    assert summary is not None, out
    cap = claims_by_metric(summary)["capacity.max_rps_at_slo"]
    rps = cap["details"]["bracket"]["highest_pass"]
    econ = [c for c in summary["claims"] if c["metric"].startswith("economics.self_hosted_usd_per_m_output")]
    assert econ, out
    if rps is None:  # nothing passed: the crossover says no capacity was measured
        assert all("capacity" in json.dumps(c["details"]) for c in econ)
    else:  # the crossover used the measured capacity, and says where it came from
        blob = json.dumps(econ[0]["details"])
        assert "measured" in blob and "capacity.max_rps_at_slo" in blob, econ[0]


def test_a_loaded_client_is_never_server_capacity(tmp_path):
    """Busy loops on every core: the client cannot time; every latency claim is inconclusive with
    that reason and no probe bounds the capacity — the search never reports the client's limit."""
    with FakeOpenAIServer(ttft_ms=TTFT_MS, token_ms=TOKEN_MS, tokens=TOKENS, capacity=K) as srv, \
            busy_loops(per_cpu=2, seconds=120):
        proc, out, summary, _ = run_suite(
            tmp_path, "--endpoint", srv.url, "--target", _target(tmp_path), "--search-max-probes", "3",
            "-k", "attainment or p99 or capacity", real_host_load=True, suite=SUITE, timeout=400, expect=1)
    claims = claims_by_metric(summary)
    for metric in ("load.slo_attainment", "load.ttft_p99_ms"):
        c = claims[metric]
        assert c["verdict"] == "inconclusive" and c["measured"] is None, c
        assert c["reason"].startswith("the client was measured, not the server"), c
    cap = claims["capacity.max_rps_at_slo"]
    assert cap["verdict"] == "inconclusive", cap
    for p in cap["details"]["bracket"]["probes"]:
        assert p["verdict"] == "inconclusive", p
    assert cap["details"]["bracket"]["highest_pass"] is None and cap["details"]["bracket"]["lowest_fail"] is None
    assert not [m for m in summary.get("measurements", []) if m["name"] == "capacity.max_rps_at_slo"]


def test_without_an_slo_nothing_is_judged_against_one(tmp_path):
    target = tmp_path / "no-slo.toml"
    target.write_text('name = "no-slo"\n[load]\nrate_rps = "20"\nrequests = 10\nworkload = "synthetic:input=8,output=4"\n'
                      '[claims]\n"load.slo_attainment" = { op = ">=", threshold = 0.9 }\n')
    with FakeOpenAIServer(ttft_ms=5, token_ms=1, tokens=4) as srv:
        proc, out, summary, _ = run_suite(tmp_path, "--endpoint", srv.url, "--target", str(target),
                                          "-k", "attainment or goodput or capacity", suite=SUITE, expect=1)
    claims = claims_by_metric(summary)
    for metric in ("load.slo_attainment", "load.goodput_rps", "capacity.max_rps_at_slo"):
        c = claims[metric]
        assert c["verdict"] == "inconclusive" and c["reason"].startswith("no SLO given: pass --slo"), c


def test_a_gpu_target_is_not_judged_on_another_server(tmp_path):
    """--target mi300x against a server that is not gpt-oss-120b: the load claims are measured but
    not judged against the MI300X's SLO (a toy never passes a GPU target)."""
    with FakeOpenAIServer(ttft_ms=5, token_ms=1, tokens=4) as srv:
        proc, out, summary, _ = run_suite(
            tmp_path, "--endpoint", srv.url, "--target", "mi300x", "--load-requests", "20", "--load-rate", "20",
            # a lag bound this box always keeps: the only reason left is what ran
            "--load-max-lag-ms", "100", "--workload", "synthetic:input=8,output=4", "-k", "attainment",
            suite=SUITE, expect=1)
    c = claims_by_metric(summary)["load.slo_attainment"]
    assert c["verdict"] == "inconclusive" and c["threshold"] == 0.99, c
    assert "fake-model" in c["reason"] or "gpt-oss-120b" in c["reason"], c
