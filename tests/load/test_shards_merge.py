"""``pytest-inference merge`` on hand-built shard summaries (fast, pure figures), the clock-offset
rule on a simulated reference, and the shard options' parsers; one short measure_load shard against
the fake server (its share of the schedule at the original offsets)."""

from __future__ import annotations

import json
import random
import time

import pytest
from fake_server_fixtures import client, fake  # noqa: F401

from pytest_inference import load as load_plan
from pytest_inference import shards, stats
from pytest_inference.claims import judge
from pytest_inference.cli import main as cli_main
from pytest_inference.report.records import write_records

TARGET = '''
name = "merge-test"
description = "hand-built shards"
confidence = 0.95
[claims]
"load.ttft_p99_ms" = { op = "<=", threshold = 100 }
"load.slo_attainment" = { op = ">=", threshold = 0.9 }
"load.goodput_rps" = { op = ">=", threshold = 10 }
"load.output_length_mismatches" = { op = "==", threshold = 0 }
"load.kv_cache_tokens" = { op = ">=", threshold = 1000 }
'''
SHA = "ab" * 32
P99 = "suites/load/test_load.py::test_latency_p99[30rps-ttft]"


def _claim(test, metric, samples, *, stat, unit, req=None, **details):
    from pytest_inference.claims import Requirement

    r = Requirement(metric, *req, unit=unit) if req else None
    c = judge(metric, samples, stat=stat, unit=unit, requirement=r, target="merge-test", confidence=0.95,
              details=details).to_dict()
    c["test"] = test
    return c


def _inconclusive(test, metric, reason, *, unit, **details):
    return {"metric": metric, "test": test, "measured": None, "unit": unit, "stat": "value", "sample_values": [],
            "samples": 0, "verdict": "inconclusive", "reason": reason, "op": None, "threshold": None,
            "details": details}


def _write(tmp_path, index, count, claims, *, offset=0.0, lag=0.0001, sha=SHA, start_at=1800000000.0, records=None):
    d = tmp_path / f"s{index}"
    d.mkdir(exist_ok=True)
    target = tmp_path / "merge-test.toml"
    target.write_text(TARGET)
    summary = {"schema": 1, "target": {"name": "merge-test", "description": "", "source": str(target)},
               "run": {"start": "2026-12-02T13:00:00Z", "end": "2026-12-02T13:00:09Z", "host": f"pod-{index}",
                       "shard": {"index": index, "count": count, "schedule_sha256": sha, "start_at": start_at,
                                 "first_send_lag_s": lag, "clock_offset_s": offset, "clock_uncertainty_s": 0.002,
                                 "clock_reference": "HTTP Date of GET http://svc/v1/models"}},
               "totals": {}, "claims": claims}
    (d / "summary.json").write_text(json.dumps(summary))
    if records is not None:
        write_records(d, "load-30rps", records)
    return d


def _p99_shards(tmp_path, n_each=150, count=3, offsets=(0.0, 0.001, -0.001)):
    rng = random.Random(4)
    dirs, pooled = [], []
    for k in range(count):
        xs = [rng.uniform(10, 60) for _ in range(n_each)]
        pooled += xs
        claims = [
            _claim(P99, "load.ttft_p99_ms", xs, stat="p99", unit="ms", req=("<=", 100)),
            _claim("t::test_slo_attainment[30rps]", "load.slo_attainment", [1.0] * n_each, stat="attainment", unit="",
                   req=(">=", 0.9)),
            _claim("t::test_goodput[30rps]", "load.goodput_rps", [10.0 + k], stat="value", unit="req/s",
                   req=(">=", 10), wall_s=5.0 + k),
            _claim("t::test_output_lengths[30rps]", "load.output_length_mismatches", [k], stat="value", unit="",
                   req=("==", 0)),
            _claim("t::test_announces[kv]", "load.kv_cache_tokens", [4096], stat="value", unit="tokens",
                   req=(">=", 1000)),
            _claim("t::test_kv[30rps]", "load.preemptions", [k * 2], stat="value", unit=""),
            _claim("t::test_kv[30rps]", "load.kv_cache_usage_peak", [0.1 * (k + 1)], stat="max", unit=""),
            _claim("t::test_other", "load.something_per_shard", [1.0], stat="value", unit="x"),
        ]
        dirs.append(_write(tmp_path, k, count, claims, offset=offsets[k]))
    return dirs, pooled


def _by_metric(summary):
    return {c["metric"]: c for c in summary["claims"]}


def test_merge_pools_samples_and_judges_the_pool(tmp_path, capsys):
    dirs, pooled = _p99_shards(tmp_path)
    for d in dirs:  # each shard alone: 150 samples cannot support a p99
        p99 = _by_metric(json.loads((d / "summary.json").read_text()))["load.ttft_p99_ms"]
        assert p99["verdict"] == "inconclusive"
    assert cli_main(["merge", *map(str, dirs), "--out", str(tmp_path / "m")]) == 1  # a count failed (below)
    out = capsys.readouterr().out
    m = _by_metric(json.loads((tmp_path / "m" / "summary.json").read_text()))
    p99 = m["load.ttft_p99_ms"]
    assert p99["samples"] == 450 and p99["verdict"] == "pass"  # 450 >= 299: the pool supports it
    assert p99["measured"] == pytest.approx(stats.compute("p99", pooled))  # not a percentile of percentiles
    assert p99["measured"] != pytest.approx(max(stats.compute("p99", pooled[i:i + 150]) for i in (0, 150, 300)))
    assert m["load.slo_attainment"]["samples"] == 450 and m["load.slo_attainment"]["verdict"] == "pass"
    # a rate: sum of rate x span over the longest span (10x5 + 11x6 + 12x7) / 7
    g = m["load.goodput_rps"]
    assert g["measured"] == pytest.approx((10 * 5 + 11 * 6 + 12 * 7) / 7) and g["details"]["merge"]["window_s"] == 7
    # counts add (0 + 1 + 2 mismatches: a fail), the server's announcement is the common one, its
    # preemption counter the largest reading, a peak the largest peak
    assert m["load.output_length_mismatches"]["measured"] == 3 and m["load.output_length_mismatches"]["verdict"] == "fail"
    assert m["load.kv_cache_tokens"]["measured"] == 4096 and m["load.kv_cache_tokens"]["verdict"] == "pass"
    assert m["load.preemptions"]["measured"] == 4
    assert m["load.kv_cache_usage_peak"]["measured"] == pytest.approx(0.3)
    # a figure with no rule: inconclusive, never passed on
    other = m["load.something_per_shard"]
    assert other["verdict"] == "inconclusive" and "no rule to combine" in other["reason"]
    assert "load.ttft_p99_ms" in out and "bound 50 ms" in out


def test_clock_disagreement_makes_every_timing_claim_inconclusive(tmp_path, capsys):
    dirs, _ = _p99_shards(tmp_path, offsets=(0.0, 0.120, 0.0))
    assert cli_main(["merge", *map(str, dirs), "--out", str(tmp_path / "m"), "--max-skew-ms", "50"]) == 1
    out = capsys.readouterr().out
    assert "clock offsets differ by up to 124.0 ms" in out  # 120 ms + both uncertainties (2 ms each)
    s = json.loads((tmp_path / "m" / "summary.json").read_text())
    assert s["merge"]["clock_spread_ms"] == pytest.approx(124.0)
    m = _by_metric(s)
    for metric in ("load.ttft_p99_ms", "load.slo_attainment", "load.goodput_rps"):
        assert m[metric]["verdict"] == "inconclusive" and "did not offer one schedule" in m[metric]["reason"], m[metric]
        assert m[metric]["details"]["verdict_if_judged"] == "pass"  # what it would have been, kept
    assert m["load.kv_cache_tokens"]["verdict"] == "pass"  # not a timing claim
    # the same shards within a wider bound: judged
    assert cli_main(["merge", *map(str, dirs), "--out", str(tmp_path / "m2"), "--max-skew-ms", "200"]) == 1
    assert _by_metric(json.loads((tmp_path / "m2" / "summary.json").read_text()))["load.ttft_p99_ms"]["verdict"] == "pass"


def test_a_late_first_send_or_an_unmeasured_clock_is_a_timing_problem():
    ok = {"clock_offset_s": 0.0, "clock_uncertainty_s": 0.001, "first_send_lag_s": 0.0001}
    late = dict(ok, index=1, first_send_lag_s=0.2)
    t = shards.timing_check([dict(ok, index=0), late], 50)
    assert t["clock_spread_ms"] == pytest.approx(2.0) and t["start_spread_ms"] == pytest.approx(201.9)
    assert "first sends on the common clock differ by up to 201.9 ms" in t["problem"]
    t = shards.timing_check([dict(ok, index=0), dict(ok, index=1, clock_offset_s=None,
                                                      clock_problem="the reference sent no Date header")], 50)
    assert t["problem"] == ("the shards' clocks cannot be compared (shard 1: the reference sent no Date header)")
    assert shards.timing_check([dict(ok, index=0), dict(ok, index=1)], 50)["problem"] is None


def test_a_shard_that_measured_its_client_leaves_the_pooled_claim_inconclusive(tmp_path):
    dirs, _ = _p99_shards(tmp_path)
    s = json.loads((dirs[1] / "summary.json").read_text())
    s["claims"][0] = _inconclusive(P99, "load.ttft_p99_ms", "the client was measured, not the server: p99 lag",
                                   unit="ms", problem="p99 lag")
    (dirs[1] / "summary.json").write_text(json.dumps(s))
    summary, claims = shards.merge(list(map(str, dirs)), tmp_path / "m")
    c = _by_metric(summary)["load.ttft_p99_ms"]
    assert c["verdict"] == "inconclusive" and c["measured"] is None
    assert c["reason"] == "shard 1: the client was measured, not the server: p99 lag"


def test_steadiness_is_recomputed_from_the_pooled_records(tmp_path):
    # per shard too few requests a window; pooled, the schedule's TTFTs grow from 20 to 80 ms
    count, n = 3, 60
    rows = [{"index": i, "scheduled_s": i * 0.05, "ttft_ms": 20 + i, "ok": True} for i in range(n)]
    dirs = []
    for k in range(count):
        mine = [r for r in rows if r["index"] % count == k]
        claim = _inconclusive("t::test_steady[30rps]", "load.ttft_drift_ms", "too few completed requests", unit="ms",
                              problem=None)
        dirs.append(_write(tmp_path, k, count, [claim], records=mine))
    summary, _ = shards.merge(list(map(str, dirs)), tmp_path / "m")
    c = _by_metric(summary)["load.ttft_drift_ms"]
    assert c["details"]["merge"]["rule"] == "recomputed from the pooled records"
    assert c["measured"] == pytest.approx(45.0) and c["verdict"] == "fail"  # last window's median - first's
    pooled = [json.loads(x) for x in (tmp_path / "m" / "records" / "load-30rps.jsonl").read_text().splitlines()]
    assert [r["index"] for r in pooled] == list(range(n)) and [r["shard"] for r in pooled[:4]] == [0, 1, 2, 0]


@pytest.mark.parametrize("edit,said", [
    (lambda s: s["run"]["shard"].update(schedule_sha256="cd" * 32), "shards of different schedules: schedule_sha256 "),
    (lambda s: s["run"]["shard"].update(start_at=1800000001.0), "shards of different schedules: start_at "),
    (lambda s: s["target"].update(name="other"), "shards judged against different targets: merge-test"),
    (lambda s: s["run"].pop("shard"), "not a shard's summary (no run.shard"),
    (lambda s: s["run"]["shard"].update(index="1"), "malformed summary.json (run.shard.index is '1')"),
    (lambda s: s["claims"].append("x"), "malformed summary.json (claims[8] is not a claim)"),
    (lambda s: s.update(schema=2), "is not a pytest-inference summary.json (schema 1"),
])
def test_bad_shard_sets_are_one_line(tmp_path, capsys, edit, said):
    dirs, _ = _p99_shards(tmp_path)
    s = json.loads((dirs[1] / "summary.json").read_text())
    edit(s)
    (dirs[1] / "summary.json").write_text(json.dumps(s))
    assert cli_main(["merge", *map(str, dirs), "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pytest-inference merge: ") and said in err and err.count("\n") == 1, err
    assert not (tmp_path / "m" / "summary.json").exists()


def test_missing_file_bad_skew_and_a_count_mismatch_are_one_line(tmp_path, capsys):
    dirs, _ = _p99_shards(tmp_path)
    assert cli_main(["merge", str(tmp_path / "nope"), "--out", str(tmp_path / "m")]) == 2
    assert "no summary.json there" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        cli_main(["merge", *map(str, dirs), "--out", str(tmp_path / "m"), "--max-skew-ms", "-3"])
    assert e.value.code == 2 and capsys.readouterr().err.count("\n") == 1
    (tmp_path / "x").mkdir()
    extra = _write(tmp_path / "x", 3, 4, [])
    assert cli_main(["merge", *map(str, dirs), str(extra), "--out", str(tmp_path / "m")]) == 2
    assert "shards of different schedules: count 3" in capsys.readouterr().err


# ----------------------------------------------------------------------------------- the clock


class _Reference:
    """A reference whose clock runs ``offset`` ahead of the local one; answers take ``rtt`` s."""

    def __init__(self, offset: float, rtt: float = 0.0004):
        self.now, self.offset, self.rtt = 1800000000.3, offset, rtt

    def clock(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.now += max(s, 0.0)

    def read(self) -> int:
        self.now += self.rtt / 2
        second = int(self.now + self.offset)  # the server stamps mid-way
        self.now += self.rtt / 2
        return second


@pytest.mark.parametrize("offset", [0.0, 0.1234, -0.3, 2.75])
def test_the_clock_offset_is_read_off_the_date_flip_within_its_uncertainty(offset):
    ref = _Reference(offset)
    got = shards.measure_clock_offset(ref.read, clock=ref.clock, sleep=ref.sleep, target_second=1800000003)
    assert got["flip_to"] >= 1800000003
    assert abs(got["offset_s"] - offset) <= got["uncertainty_s"] <= 0.005, got


def test_no_date_header_or_no_flip_is_said():
    assert shards.measure_clock_offset(lambda: None, clock=time.time, sleep=lambda s: None)["problem"] == (
        "the reference sent no Date header")
    ref = _Reference(0.0)
    frozen = shards.measure_clock_offset(lambda: 5, clock=ref.clock, sleep=ref.sleep, max_s=1.5)
    assert frozen["offset_s"] is None and "did not flip" in frozen["problem"]
    assert shards.offset_from_polls([(0.0, 0.1, 10), (0.2, 0.3, 11)]) == {
        "offset_s": pytest.approx(11 - 0.15), "uncertainty_s": pytest.approx(0.15), "flip_to": 11, "polls": 2}


# ----------------------------------------------------------------------------------- the options


def test_shard_option_parsers():
    assert load_plan.parse_shard("2/8") == (2, 8) and load_plan.parse_shard(" 0/1 ") == (0, 1)
    for bad, said in (("3/2", "index must be 0 .. 1"), ("-1/4", "index must be 0 .. 3"), ("x", "INDEX/COUNT"),
                      ("1/0", "count must be between"), ("1", "INDEX/COUNT")):
        with pytest.raises(ValueError, match=said):
            load_plan.parse_shard(bad)
    assert load_plan.parse_start_at("2026-12-02T13:00:00Z") == 1796216400.0
    assert load_plan.parse_start_at("2026-12-02T14:00:00+01:00") == 1796216400.0
    assert load_plan.parse_start_at("1796216400.5") == 1796216400.5
    for bad in ("2026-12-02T13:00:00", "soon", "-5", "nan"):
        with pytest.raises(ValueError, match="--load-start-at"):
            load_plan.parse_start_at(bad)
    assert "in the past" in load_plan.start_problem(100.0, 106.0) and load_plan.start_problem(100.0, 104.0) is None
    assert "ahead" in load_plan.start_problem(100.0 + 2 * 86400, 100.0)


def test_clock_skew_seam(monkeypatch):
    monkeypatch.setenv(load_plan.CLOCK_SKEW_ENV, "0.25")
    assert load_plan.wall_clock() - time.time() == pytest.approx(0.25, abs=0.01)
    monkeypatch.setenv(load_plan.CLOCK_SKEW_ENV, "soon")
    with pytest.raises(ValueError, match="PYTEST_INFERENCE_CLOCK_SKEW_S='soon' is not a number"):
        load_plan.wall_clock()


def test_a_shard_sends_its_share_at_the_original_offsets(client):
    from pytest_inference.engine import arrivals
    from pytest_inference.probes.load import measure_load
    from pytest_inference.workloads import parse_workload

    wl = parse_workload("synthetic:input=8,output=4,n=20,seed=1")
    full = arrivals.schedule("poisson", 50.0, n=20, seed=5, exact_rate=True)
    runs = []
    for k in (1, 0):
        run = measure_load(client, wl, model="fake-model", rate_rps=50.0, requests=20, seed=5, arrival="poisson",
                           shard=(k, 3), start_at=time.time() + 0.3, clock=time.time, max_lag_ms=50)
        runs.append(run)
    one, zero = runs
    assert one.schedule_index == [1, 4, 7, 10, 13, 16, 19] and zero.schedule_index == list(range(0, 20, 3))
    assert one.offsets_s == pytest.approx([full[i] for i in one.schedule_index], abs=1e-6)  # not rebased to 0
    assert one.shard["schedule_sha256"] == zero.shard["schedule_sha256"] and one.shard["count"] == 3
    assert 0 <= one.shard["first_send_lag_s"] < 0.05
    assert [r["index"] for r in one.records()] == one.schedule_index
    other = measure_load(client, wl, model="fake-model", rate_rps=50.0, requests=20, seed=6, arrival="poisson",
                         shard=(1, 3), start_at=time.time() + 0.3, clock=time.time, max_lag_ms=50)
    assert other.shard["schedule_sha256"] != one.shard["schedule_sha256"]  # another seed, another schedule
    with pytest.raises(ValueError, match="shard 5/6 of a 4-arrival schedule has no arrival"):
        measure_load(client, wl, model="fake-model", rate_rps=50.0, requests=4, shard=(5, 6), start_at=time.time())


def test_the_merged_summary_keeps_a_common_environment_and_notes_a_mixed_one(tmp_path):
    dirs, _ = _p99_shards(tmp_path)
    for k, d in enumerate(dirs):
        s = json.loads((d / "summary.json").read_text())
        s["environment"] = {"schema": 1, "hardware": "cpu Xeon x2"}
        (d / "summary.json").write_text(json.dumps(s))
    summary, _ = shards.merge(list(map(str, dirs)), tmp_path / "m")
    assert summary["environment"]["hardware"] == "cpu Xeon x2" and summary["run"]["merged"] is True
    s = json.loads((dirs[2] / "summary.json").read_text())
    s["environment"]["hardware"] = "nvidia H100 x8"
    (dirs[2] / "summary.json").write_text(json.dumps(s))
    summary, _ = shards.merge(list(map(str, dirs)), tmp_path / "m2")
    assert "environment" not in summary
    assert any("ran on different hardware" in n for n in summary["merge"]["notes"])
    assert [x["hardware"] for x in summary["merge"]["shards"]] == ["cpu Xeon x2", "cpu Xeon x2", "nvidia H100 x8"]
