"""ColdStartRun, its timeline (rows, JSON, drawn by the report side), floor math."""

from __future__ import annotations

import json

import pytest

from pytest_inference.probes.coldstart import ColdStartRun, floor_ratio, floor_s, spread_s, timeline_json
from pytest_inference.report.charts import PNG_SIGNATURE
from pytest_inference.report.figures import render, timeline


@pytest.fixture
def mi300x_run(mi300x_log) -> ColdStartRun:
    pairs, m = mi300x_log
    return ColdStartRun.from_log(pairs, launched_at=1764327900.0, port_open_s=m["port_open_s"],
                                 health_s=m["health_s"], first_token_s=m["first_token_s"], cache_state="fresh",
                                 lock_wait_s=3.5)


# --------------------------------------------------------------------------- the run


def test_run_figures(mi300x_run):
    r = mi300x_run
    assert r.total_s == 61.02
    assert r.covered_s == pytest.approx(45.721745)
    assert r.uncovered_s == pytest.approx(61.02 - 45.721745)  # imports and process start-up, not in the log
    assert r.phase("graph_capture").duration_s == 11
    assert r.facts["log_clock"] == "harness" and r.facts["model"] == "openai/gpt-oss-120b"


def test_run_to_dict_is_json(mi300x_run):
    d = json.loads(json.dumps(mi300x_run.to_dict(), allow_nan=False))
    assert d["first_token_s"] == 61.02 and d["health_s"] == 60.46 and d["port_open_s"] == 60.41
    assert d["lock_wait_s"] == 3.5 and d["cache_state"] == "fresh"
    assert d["top_level"] == ["model_load", "engine_init", "api_server_start"]
    assert d["launched_at_iso"] == "2025-11-28T11:05:00Z"
    assert {p["name"] for p in d["phases"]} >= {"weights_load", "torch_compile", "graph_capture", "engine_init"}


def test_cache_state_is_checked():
    with pytest.raises(ValueError, match="cache_state"):
        ColdStartRun(cache_state="lukewarm")
    assert ColdStartRun(cache_state="warm").cache_state == "warm"


def test_timeline_rows(mi300x_run):
    rows = mi300x_run.timeline_rows()
    labels = [r[0] for r in rows]
    assert labels == [
        "model_load", "└ weights_load", "engine_init", "└ torch_compile", "└── dynamo_transform",
        "└── inductor_compile", "└ profiling", "└ kv_cache", "└ graph_capture", "api_server_start",
        "launch → port open", "launch → /health 200", "launch → first token"]
    assert rows[-1] == ("launch → first token", 0.0, 61.02)
    assert all(s <= e for _, s, e in rows)


def test_timeline_rows_skip_missing_milestones():
    run = ColdStartRun(health_s=12.0)
    assert run.timeline_rows() == [("launch → /health 200", 0.0, 12.0)]
    assert run.total_s is None and run.uncovered_s is None


def test_timeline_chart_and_json(mi300x_run):
    fig = timeline(mi300x_run.timeline_rows(), "cold start")
    assert json.loads(json.dumps(fig)) == fig  # data that survive summary.json
    png = render(fig)
    assert png is not None and png.startswith(PNG_SIGNATURE)
    assert render(timeline(ColdStartRun().timeline_rows(), "nothing")) is None
    doc = json.loads(timeline_json(mi300x_run))
    kinds = [(r["kind"], r["name"]) for r in doc["rows"]]
    assert ("milestone", "launch → first token") in kinds and ("phase", "graph_capture") in kinds
    assert next(r for r in doc["rows"] if r["name"] == "dynamo_transform")["depth"] == 2
    assert doc["run"]["first_token_s"] == 61.02


def test_real_cpu_recording_as_a_run(cpu_recording):
    rec = cpu_recording("fresh_compile")
    run = ColdStartRun.from_log(rec["lines"], port_open_s=rec["port_open_s"], health_s=rec["health_s"],
                                first_token_s=rec["first_token_s"])
    assert run.port_open_s <= run.health_s <= run.first_token_s
    # on this CPU box the log's phases explain under half of the cold start
    assert run.covered_s / run.total_s < 0.5
    assert render(timeline(run.timeline_rows(), "cpu")).startswith(PNG_SIGNATURE)


# --------------------------------------------------------------------------- floor math


def test_floor():
    # 68 GB of weights at 2,800 MB/s: 24.3 s, the seed's weight phase
    assert floor_s(68e9, 2800) == pytest.approx(24.2857, rel=1e-4)
    assert floor_s(0, 100) == 0
    assert floor_s(140e9, 880) == pytest.approx(159.09, rel=1e-3)  # article B, tuned NFS
    with pytest.raises(ValueError):
        floor_s(1e9, 0)
    with pytest.raises(ValueError):
        floor_s(-1, 10)
    with pytest.raises(ValueError):
        floor_s(1e9, float("nan"))


def test_floor_ratio():
    assert floor_ratio(61.0, floor_s(68e9, 2800)) == pytest.approx(61 / 24.2857, rel=1e-4)
    assert floor_ratio(61.0, 0) is None and floor_ratio(None, 3) is None


def test_spread():
    runs = [ColdStartRun(first_token_s=x) for x in (60.8, 61.4, 61.0)]
    assert spread_s(runs) == pytest.approx(0.6)  # the seed's three restarts
    assert spread_s([60.8, None, 61.4, float("nan")]) == pytest.approx(0.6)
    assert spread_s([ColdStartRun(first_token_s=61.0)]) is None
    assert spread_s([]) is None
