"""The load suite's figures: the new figure data (lines' hlines/spans/scales/styles, the histogram
kind), report/load.py's builders, and that they reach a report (drawn, redrawn from summary.json)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_inference import capacity, stats
from pytest_inference.claims import judge
from pytest_inference.report import allure_sink
from pytest_inference.report.figures import (
    CHARTS_NOTE,
    FigureError,
    check,
    drawings,
    histogram,
    lines,
    redraw_summary,
    render,
    with_figures,
)
from pytest_inference.report.load import VERDICT_STYLES, load_figures, load_point

PNG = b"\x89PNG\r\n\x1a\n"
ROOT = Path(__file__).resolve().parents[2]
LAT, E2E, ACH, LAG = ("load latency vs offered rate", "load e2e latency vs offered rate",
                      "load achieved vs offered rate", "load dispatch lag histogram")


def _roundtrip(fig):
    again = json.loads(json.dumps(fig, allow_nan=False))  # what summary.json / an xdist worker carries
    assert again == fig and check(again) == fig and check(check(fig)) == fig
    return again


# --------------------------------------------------------------------------- figure data


def test_lines_new_keys_round_trip_and_draw():
    fig = lines({"TTFT p99": ([1, 2, 4], [80, 120, 500]), "passed": ([1, 2], [80, 120])}, "latency", "req/s", "ms",
                marks=[("fail (no latency)", 8)], name="lat", hlines=[("SLO TTFT ≤ 400 ms", 400)],
                spans=[("bracket", 2, 4), ("open right", 4, None), ("open left", None, 1)],
                xscale="log", yscale="linear", styles={"passed": {"style": "points", "color": "#2e7d32"}})
    assert fig["hlines"] == [["SLO TTFT ≤ 400 ms", 400.0]]
    assert fig["spans"] == [["bracket", 2.0, 4.0], ["open right", 4.0, None], ["open left", None, 1.0]]
    assert (fig["xscale"], fig["yscale"]) == ("log", "linear")
    assert fig["series"][1] == {"label": "passed", "x": [1.0, 2.0], "y": [80.0, 120.0], "style": "points",
                                "color": "#2e7d32"}
    again = _roundtrip(fig)
    png = render(again)
    assert png.startswith(PNG) and png == render(fig)  # the same data draw the same bytes
    # each new key changes the picture (it is drawn, not ignored)
    plain = lines({"TTFT p99": ([1, 2, 4], [80, 120, 500]), "passed": ([1, 2], [80, 120])}, "latency", "req/s", "ms",
                  marks=[("fail (no latency)", 8)], name="lat")
    assert render(plain) != png
    for extra in ({"hlines": [["SLO", 400]]}, {"spans": [["b", 2, None]]}, {"xscale": "log"}, {"yscale": "log"}):
        assert render({**plain, **extra}) not in (render(plain), None)


def test_old_figures_are_unchanged():
    """A figure without the new keys checks to exactly what it did before: no new keys appear."""
    old = {"kind": "lines", "title": "cost", "xlabel": "req/s", "ylabel": "USD/h",
           "series": [{"label": "gpu", "x": [0, 10], "y": [2, 2]}], "marks": [["today", 3]]}
    assert check(old) == {"kind": "lines", "title": "cost", "xlabel": "req/s", "ylabel": "USD/h",
                          "series": [{"label": "gpu", "x": [0.0, 10.0], "y": [2.0, 2.0]}], "marks": [["today", 3.0]]}
    assert set(lines({"gpu": ([0, 10], [2, 2])}, "cost", "x", "y")) == {"kind", "title", "xlabel", "ylabel",
                                                                         "series", "marks"}


def test_histogram_kind():
    values = [0.05 * (i % 30) for i in range(300)]
    fig = histogram(values, "dispatch lag", "ms", bins=20, marks=[("bound 1 ms", 1)], name="lag")
    assert fig == {"kind": "histogram", "title": "dispatch lag", "xlabel": "ms", "name": "lag", "bins": 20,
                   "values": [float(v) for v in values], "marks": [["bound 1 ms", 1.0]]}
    again = _roundtrip(fig)
    assert render(again).startswith(PNG) and render(again) == render(fig)
    assert render({**fig, "bins": 5}) != render(fig)
    assert "bins" not in histogram([1.0], "t", "x") and render(histogram([1.0], "t", "x")).startswith(PNG)
    assert render(histogram([], "nothing", "ms")) is None  # no values: nothing to draw


@pytest.mark.parametrize("fig, message", [
    ({"kind": "pie"}, "kind 'pie' is not one of timeline, lines, histogram"),
    ({"kind": "lines", "series": [], "hlines": [["SLO"]]}, r"hlines\[0\]: \['SLO'\] is not \[label, y\]"),
    ({"kind": "lines", "series": [], "hlines": {"SLO": 4}}, "hlines: a list"),
    ({"kind": "lines", "series": [], "hlines": [["SLO", "400"]]}, "'400' is not a number"),
    ({"kind": "lines", "series": [], "spans": [["b", 4, 2]]}, r"spans\[0\]: 'b' ends \(2\) before it starts \(4\)"),
    ({"kind": "lines", "series": [], "spans": [["b", None, None]]}, "has neither end"),
    ({"kind": "lines", "series": [], "spans": [["b", 1]]}, r"is not \[label, x0, x1\]"),
    ({"kind": "lines", "series": [], "spans": [["b", float("inf"), None]]}, "not a finite number"),
    ({"kind": "lines", "series": [], "xscale": "symlog"}, r"xscale: 'symlog' is not one of linear, log"),
    ({"kind": "lines", "series": [{"label": "s", "x": [0, 1], "y": [1, 2]}], "xscale": "log"},
     r"series\[0\]\.x: 0 cannot be drawn on a log x axis"),
    ({"kind": "lines", "series": [{"label": "s", "x": [1], "y": [1]}], "hlines": [["z", -1]], "yscale": "log"},
     r"hlines\[0\]: -1 cannot be drawn on a log y axis"),
    ({"kind": "lines", "series": [{"label": "s", "x": [1], "y": [1]}], "spans": [["b", 0, None]], "xscale": "log"},
     r"spans\[0\]: 0 cannot be drawn on a log x axis"),
    ({"kind": "lines", "series": [{"label": "s", "x": [1], "y": [1], "style": "bars"}]}, "style: 'bars' is not one of"),
    ({"kind": "lines", "series": [{"label": "s", "x": [1], "y": [1], "color": "green"}]}, "'green' is not a colour"),
    ({"kind": "histogram", "values": "1,2"}, "values: a list of numbers"),
    ({"kind": "histogram", "values": [1, None]}, r"values\[1\]: None is not a number"),
    ({"kind": "histogram", "values": [1], "bins": 0}, "bins: 0 is not a whole number from 1 to 1000"),
    ({"kind": "histogram", "values": [1], "bins": True}, "bins: True is not a whole number"),
    ({"kind": "histogram", "values": [1], "bins": 2.5}, "bins: 2.5"),
    ({"kind": "histogram", "values": [1], "marks": [["a", 1, 2]]}, r"marks\[0\]: \['a', 1, 2\] is not \[label, x\]"),
])
def test_bad_new_figure_data_is_one_line(fig, message):
    with pytest.raises(FigureError, match=message) as err:
        check(fig)
    assert "\n" not in str(err.value)


def test_builders_refuse_styles_of_unknown_series():
    with pytest.raises(FigureError, match="styles for series it does not have: 'nope'"):
        lines({"a": ([1], [1])}, "t", "x", "y", styles={"nope": {"style": "points"}})


# --------------------------------------------------------------------------- the load figures

POINTS = [  # deliberately out of order, one value missing here and there
    {"offered_rps": 16, "achieved_rps": 14.5, "ttft_p50_ms": 130, "ttft_p99_ms": 590, "tpot_p99_ms": 36,
     "e2e_p99_ms": 2900, "verdict": "fail"},
    {"offered_rps": 4, "achieved_rps": 3.99, "ttft_p50_ms": 70, "ttft_p99_ms": 110, "tpot_p99_ms": None,
     "e2e_p99_ms": 1300, "verdict": "pass"},
    {"offered_rps": 8, "achieved_rps": 7.98, "ttft_p50_ms": 90, "ttft_p99_ms": 210, "verdict": "pass"},
    {"offered_rps": 12, "achieved_rps": None, "ttft_p50_ms": 110, "ttft_p99_ms": 370, "tpot_p99_ms": 31,
     "verdict": "inconclusive"},
    {"offered_rps": 32, "verdict": "fail"},  # every request failed: judged, nothing to place it at
    {"offered_rps": None, "ttft_p99_ms": 5.0, "verdict": "pass"},  # no rate: cannot be placed
]
SLO = {"ttft_ms": 400, "tpot_ms": 80, "e2e_ms": 3000}


def _series(fig):
    return {s["label"]: list(zip(s["x"], s["y"])) for s in fig["series"]}


def test_load_figures_from_points():
    lags = [0.01 * (i % 50) for i in range(500)] + [1.5]
    figs = load_figures(POINTS, slo=SLO, bracket={"highest_pass": 8, "lowest_fail": 12.5}, lags_ms=lags)
    assert [f["name"] for f in figs] == [LAT, E2E, ACH, LAG]
    lat, e2e, ach, lag = figs
    s = _series(lat)
    # sorted by offered rate; missing values skipped, not drawn as zero
    assert s["TTFT p50"] == [(4, 70), (8, 90), (12, 110), (16, 130)]
    assert s["TTFT p99"] == [(4, 110), (8, 210), (12, 370), (16, 590)]
    assert s["TPOT p99"] == [(12, 31), (16, 36)]
    # each verdict its own series of points, coloured, on the TTFT p99 it was judged with
    assert s["probe passed"] == [(4, 110), (8, 210)]
    assert s["probe failed"] == [(16, 590)]
    assert s["probe inconclusive"] == [(12, 370)]
    styles = {x["label"]: (x.get("style"), x.get("color")) for x in lat["series"]}
    assert styles["probe passed"] == ("points", VERDICT_STYLES["pass"][1])
    assert styles["probe failed"] == ("points", VERDICT_STYLES["fail"][1])
    assert len({c for _, c in (styles[f"probe {v}"] for v in ("passed", "failed", "inconclusive"))}) == 3
    assert lat["marks"] == [["fail (no latency)", 32.0]]
    assert lat["hlines"] == [["SLO TTFT ≤ 400 ms", 400.0], ["SLO TPOT ≤ 80 ms", 80.0]]
    assert lat["spans"] == [["capacity bracket [8, 12.5] req/s", 8.0, 12.5]]
    assert _series(e2e)["e2e p99"] == [(4, 1300), (16, 2900)] and e2e["hlines"] == [["SLO e2e ≤ 3000 ms", 3000.0]]
    assert _series(ach)["achieved"] == [(4, 3.99), (8, 7.98), (16, 14.5)]
    assert _series(ach)["y = x (schedule kept)"] == [(0, 0), (16, 16)]
    assert lag["kind"] == "histogram" and lag["marks"] == [["bound 1 ms", 1.0]] and len(lag["values"]) == 501
    for fig in figs:
        assert render(_roundtrip(fig)).startswith(PNG)


def test_load_figures_only_with_data():
    assert load_figures([]) == []
    assert load_figures([], lags_ms=[]) == []
    only_rate = load_figures([{"offered_rps": 2, "achieved_rps": 2}])
    assert [f["name"] for f in only_rate] == [ACH]
    no_tpot = load_figures([{"offered_rps": 2, "ttft_p99_ms": 50, "verdict": "pass"}], slo=SLO)
    assert [f["name"] for f in no_tpot] == [LAT]
    assert no_tpot[0]["hlines"] == [["SLO TTFT ≤ 400 ms", 400.0]]  # no TPOT drawn: no TPOT line
    assert "spans" not in no_tpot[0]  # no bracket
    lag = load_figures([], lags_ms=[0.123456, 2], max_lag_ms=5)
    assert lag[0]["values"] == [0.123, 2.0] and lag[0]["marks"] == [["bound 5 ms", 5.0]]


@pytest.mark.parametrize("bracket, span", [
    ({"highest_pass": 4, "lowest_fail": None}, ["capacity ≥ 4 req/s (no rate failed)", 4.0, None]),
    ({"highest_pass": None, "lowest_fail": 0.5}, ["capacity < 0.5 req/s (no rate passed)", None, 0.5]),
    ({"highest_pass": None, "lowest_fail": None}, None),
])
def test_open_brackets(bracket, span):
    [fig] = load_figures([{"offered_rps": 1, "ttft_p99_ms": 9}], bracket=bracket)
    assert fig.get("spans") == ([span] if span else None)
    assert render(fig).startswith(PNG)


def test_the_bracket_drawn_holds_the_true_capacity():
    """A capacity search over a server whose true capacity is known (a probe passes iff the rate is
    at most 10 req/s): the shaded band is the search's bracket, it contains 10, every passing
    probe lies left of it and every failing one right of it."""
    true_capacity = 10.0

    def probe(rate):
        return capacity.PASS if rate <= true_capacity else capacity.FAIL

    bracket = capacity.search(probe, start_rps=1, max_rps=64, min_rps=0.25)
    points = [{"offered_rps": p.rate, "ttft_p99_ms": 100 + p.rate, "verdict": p.verdict} for p in bracket.probes]
    [fig] = load_figures(points, slo={"ttft_ms": 400}, bracket=bracket.to_dict())
    [[_, lo, hi]] = fig["spans"]
    assert (lo, hi) == (bracket.highest_pass, bracket.lowest_fail) and lo <= true_capacity <= hi
    s = _series(fig)
    assert s["probe passed"] and s["probe failed"]
    assert all(x <= lo for x, _ in s["probe passed"]) and all(x >= hi for x, _ in s["probe failed"])
    assert len(s["probe passed"]) + len(s["probe failed"]) == len(bracket.probes)


def test_an_slo_object_is_read_too():
    from pytest_inference import slo

    [fig] = load_figures([{"offered_rps": 1, "ttft_p99_ms": 9}], slo=slo.parse("ttft_ms:400,e2e_ms:5000"))
    assert fig["hlines"] == [["SLO TTFT ≤ 400 ms", 400.0]]


@pytest.mark.parametrize("kwargs, message", [
    ({"points": [{"offered_rps": 0}]}, r"load point 0\.offered_rps: 0 must be > 0"),
    ({"points": [{"offered_rps": -2}]}, "must be > 0"),
    ({"points": [{"offered_rps": 1, "ttft_p99_ms": float("nan")}]}, r"ttft_p99_ms: nan is not a finite number"),
    ({"points": [{"offered_rps": 1, "ttft_p99_ms": "fast"}]}, "'fast' is not a number"),
    ({"points": [{"offered_rps": True}]}, "True is not a number"),
    ({"points": [{"offered_rps": 1, "verdict": "ok"}]}, "verdict: 'ok' is not one of pass, fail, inconclusive"),
    ({"points": ["8 req/s"]}, "load point 0: a dict"),
    ({"points": "points"}, "points: a list of dicts"),
    ({"points": [], "slo": {"ttft": 400}}, "slo: unknown bound"),
    ({"points": [], "slo": {"ttft_ms": 0}}, r"slo\.ttft_ms: 0 must be > 0"),
    ({"points": [], "slo": "ttft_ms:400"}, "slo: a dict"),
    ({"points": [], "bracket": {"highest_pass": 8, "lowest_fail": 4}}, "lowest_fail 4 is below highest_pass 8"),
    ({"points": [], "bracket": [1, 2]}, "bracket: a dict"),
    ({"points": [], "lags_ms": [0.1, None, "x"]}, r"lags_ms\[2\]: 'x' is not a number"),
    ({"points": [], "lags_ms": 0.5}, "lags_ms: a list"),
    ({"points": [], "max_lag_ms": 0}, "max_lag_ms: 0 must be > 0"),
])
def test_bad_load_input_is_one_line(kwargs, message):
    points = kwargs.pop("points")
    with pytest.raises(ValueError, match=message) as err:
        load_figures(points, **kwargs)
    assert "\n" not in str(err.value)


def test_load_point_from_a_run():
    from pytest_inference.engine.openloop import OpenLoopRequestResult, OpenLoopResult

    ttfts = [10.0 + i for i in range(50)]
    rs = [OpenLoopRequestResult(index=i, ok=True, ttft_ms=t, tpot_ms=2.0 + i / 100, e2e_ms=t + 100)
          for i, t in enumerate(ttfts)]
    rs.append(OpenLoopRequestResult(index=50, ok=False, error="HTTP 503", ttft_ms=None))
    rs.append(OpenLoopRequestResult(index=51, ok=False, error="cut", ttft_ms=9000.0))  # failed: not a latency
    run = OpenLoopResult(results=rs, warmup_results=[], wall_s=5.0, concurrency=8, offered_rps=10.0, achieved_rps=9.9)
    p = load_point(run, "pass")
    assert p["offered_rps"] == 10.0 and p["achieved_rps"] == 9.9 and p["verdict"] == "pass"
    assert p["ttft_p99_ms"] == stats.percentile(ttfts, 99) and p["ttft_p50_ms"] == stats.percentile(ttfts, 50)
    assert p["e2e_p99_ms"] == stats.percentile([t + 100 for t in ttfts], 99)
    empty = load_point(OpenLoopResult(results=[], warmup_results=[], wall_s=0.0, concurrency=1))
    assert empty["ttft_p99_ms"] is None and empty["verdict"] is None
    assert load_figures([empty]) == []  # nothing measured: nothing drawn


# --------------------------------------------------------------------------- reaching the report


def _load_claim():
    figs = load_figures(POINTS, slo=SLO, bracket={"highest_pass": 8, "lowest_fail": 12}, lags_ms=[0.1, 0.2, 0.9])
    return judge("capacity.max_rps_at_slo", measured=8.0, unit="req/s", details=with_figures({"x": 1}, *figs))


def test_load_figures_are_drawn_for_allure_and_redrawn_from_the_summary(tmp_path):
    claim = _load_claim()
    assert [name for name, _ in drawings(claim)] == [LAT, E2E, ACH, LAG]
    attached = allure_sink._attachments(claim, "load", None, chart=True)
    pngs = {name: body for body, name, kind in attached if kind == "PNG"}
    assert list(pngs) == [LAT, E2E, ACH, LAG] and all(b.startswith(PNG) for b in pngs.values())
    assert not [name for _, name, _ in attached if "error" in name]
    summary = tmp_path / "summary.json"
    summary.write_text(json.dumps({"schema": 1, "claims": [claim.to_dict()]}, allow_nan=False))
    written = redraw_summary(summary, tmp_path / "charts")
    assert [p.name for p in written] == ["load-latency-vs-offered-rate.png", "load-e2e-latency-vs-offered-rate.png",
                                         "load-achieved-vs-offered-rate.png", "load-dispatch-lag-histogram.png"]
    assert [p.read_bytes() for p in written] == list(pngs.values())  # the same charts from summary.json


HIDE = """
import sys

class _Hide:
    def find_spec(self, name, path=None, target=None):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, _Hide())
"""


def test_without_matplotlib_the_load_figures_are_data_and_one_note(tmp_path):
    """report/load.py and records.py import no matplotlib (nor allure); without it the figures are still built and checked
    (they reach summary.json), nothing is drawn, and the run's note says what to install."""
    (tmp_path / "hide_matplotlib.py").write_text(HIDE)
    code = ("import sys, json\n"
            "import pytest_inference.report.load as load, pytest_inference.report.records\n"
            "assert not [m for m in ('matplotlib', 'allure') if m in sys.modules]\n"
            "import hide_matplotlib\n"
            "from pytest_inference.claims import judge\n"
            "from pytest_inference.report import figures\n"
            "figs = load.load_figures([{'offered_rps': 2, 'achieved_rps': 2, 'ttft_p99_ms': 50, 'verdict': 'pass'}],\n"
            "                         slo={'ttft_ms': 400}, bracket={'highest_pass': 2, 'lowest_fail': None},\n"
            "                         lags_ms=[0.1, 0.2])\n"
            "c = judge('load.ttft_p99_ms', measured=50.0, details=figures.with_figures({}, *figs))\n"
            "assert [f['kind'] for f in figs] == ['lines', 'lines', 'histogram']\n"
            "assert figures.available() is False and 'matplotlib' not in sys.modules\n"
            "assert len(figures.drawings(c)) == 3\n"
            "print(figures.charts_note([c]))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == CHARTS_NOTE
