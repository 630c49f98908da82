"""The load suite's figures: latency vs offered rate, achieved vs offered rate, dispatch lag.

Pure figure data (:mod:`.figures`), no matplotlib: a load claim carries them in its details
(``with_figures(details, *load_figures(...))``) and the report side draws them.

One *point* per load run or capacity-search probe, in any order::

    {"offered_rps": 8.0, "achieved_rps": 7.97, "ttft_p50_ms": 120.0, "ttft_p99_ms": 310.0,
     "tpot_p50_ms": 21.0, "tpot_p99_ms": 34.0, "e2e_p99_ms": 4900.0, "verdict": "pass"}

``offered_rps`` places the point; every other value may be missing or None (not measured: not
drawn). ``verdict`` is the probe's (``pass``/``fail``/``inconclusive``, or ``measured``/None for a
run nobody judged). :func:`load_point` makes one from an engine run.

Figures (only those with data):

* **latency vs offered rate**: TTFT p50 and p99 (TPOT p99 where measured) per offered rate, the
  SLO's bounds as horizontal lines, the capacity bracket [highest rate that passed, lowest that
  failed] shaded, and each probe as a point coloured by its verdict (on its TTFT p99);
* **e2e latency vs offered rate** (where e2e p99 was measured): the same for end-to-end latency;
* **achieved vs offered rate**: what the client sent against what the schedule asked, with y = x;
* **dispatch lag**: a histogram of the per-request lag (scheduled → bytes written) with the bound
  a run is held to marked.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping, Sequence

from .. import stats
from .figures import histogram, lines

__all__ = ["load_figures", "load_point", "POINT_KEYS", "VERDICT_STYLES"]

#: the numbers a point may carry (ms, req/s)
POINT_KEYS = ("offered_rps", "achieved_rps", "ttft_p50_ms", "ttft_p99_ms", "tpot_p50_ms", "tpot_p99_ms",
              "e2e_p99_ms")

#: verdict -> (series label, colour): the probes as points, as the reports colour verdicts
VERDICT_STYLES = {
    "pass": ("probe passed", "#2e7d32"),
    "fail": ("probe failed", "#c62828"),
    "inconclusive": ("probe inconclusive", "#ef6c00"),
    "measured": ("not judged", "#455a64"),
}

#: SLO key -> what its horizontal line is called
_SLO_LABELS = {"ttft_ms": "TTFT", "tpot_ms": "TPOT", "e2e_ms": "e2e"}

#: lags are kept to the microsecond: the figure travels in summary.json, one number per request
_LAG_DECIMALS = 3


def _num(value: Any, where: str, *, positive: bool = False) -> float | None:
    """``value`` as a float; None stays None (not measured); anything else is a one-line ValueError."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{where}: {value!r} is not a number")
    x = float(value)
    if not math.isfinite(x):
        raise ValueError(f"{where}: {value!r} is not a finite number (use None for not measured)")
    if positive and x <= 0:
        raise ValueError(f"{where}: {value!r} must be > 0")
    return x


def _points(points: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Checked points (numbers as floats, None where missing) sorted by offered rate; a point
    without an offered rate cannot be placed and is left out."""
    if isinstance(points, (str, bytes)) or not isinstance(points, Iterable):
        raise ValueError(f"points: a list of dicts, not {type(points).__name__}")
    out = []
    for i, p in enumerate(points):
        where = f"load point {i}"
        if not isinstance(p, Mapping):
            raise ValueError(f"{where}: a dict with offered_rps, not {type(p).__name__}")
        q: dict[str, Any] = {k: _num(p.get(k), f"{where}.{k}", positive=k == "offered_rps") for k in POINT_KEYS}
        verdict = p.get("verdict")
        if verdict is not None and verdict not in VERDICT_STYLES:
            raise ValueError(f"{where}.verdict: {verdict!r} is not one of {', '.join(VERDICT_STYLES)} or None")
        q["verdict"] = verdict
        if q["offered_rps"] is not None:
            out.append(q)
    out.sort(key=lambda q: q["offered_rps"])
    return out


def _slo_bounds(slo: Any) -> dict[str, float]:
    if slo is None:
        return {}
    if hasattr(slo, "bounds") and callable(slo.bounds):  # a pytest_inference.slo.SLO
        slo = slo.bounds()
    if not isinstance(slo, Mapping):
        raise ValueError(f"slo: a dict like {{'ttft_ms': 400}}, not {type(slo).__name__}")
    unknown = sorted(set(slo) - set(_SLO_LABELS))
    if unknown:
        raise ValueError(f"slo: unknown bound(s) {', '.join(map(repr, unknown))} (known: {', '.join(_SLO_LABELS)})")
    out = {}
    for k, v in slo.items():
        x = _num(v, f"slo.{k}", positive=True)
        if x is not None:
            out[k] = x
    return out


def _bracket_span(bracket: Mapping[str, Any] | None) -> list[tuple[str, float | None, float | None]]:
    """The capacity bracket as a shaded band: [highest pass, lowest fail], open where one is missing."""
    if bracket is None:
        return []
    if not isinstance(bracket, Mapping):
        raise ValueError(f"bracket: a dict with highest_pass and lowest_fail, not {type(bracket).__name__}")
    hp = _num(bracket.get("highest_pass"), "bracket.highest_pass", positive=True)
    lf = _num(bracket.get("lowest_fail"), "bracket.lowest_fail", positive=True)
    if hp is None and lf is None:
        return []
    if hp is not None and lf is not None:
        if lf < hp:
            raise ValueError(f"bracket: lowest_fail {lf:g} is below highest_pass {hp:g}")
        return [(f"capacity bracket [{hp:g}, {lf:g}] req/s", hp, lf)]
    if hp is not None:
        return [(f"capacity ≥ {hp:g} req/s (no rate failed)", hp, None)]
    return [(f"capacity < {lf:g} req/s (no rate passed)", None, lf)]


def _latency_figure(pts: list[dict[str, Any]], keys: Sequence[tuple[str, str]], probe_key: Sequence[str],
                    bounds: Mapping[str, float], slo_keys: Sequence[str],
                    spans: list[tuple[str, float | None, float | None]], title: str,
                    name: str) -> dict[str, Any] | None:
    series: dict[str, tuple[list[float], list[float]]] = {}
    styles: dict[str, dict[str, str]] = {}
    for key, label in keys:
        xs = [p["offered_rps"] for p in pts if p[key] is not None]
        if xs:
            series[label] = (xs, [p[key] for p in pts if p[key] is not None])
            if key.startswith("tpot"):
                styles[label] = {"style": "dashed"}
    if not series:
        return None
    marks: list[tuple[str, float]] = []
    for verdict, (label, colour) in VERDICT_STYLES.items():
        xs, ys = [], []
        for p in pts:
            if p["verdict"] != verdict:
                continue
            y = next((p[k] for k in probe_key if p[k] is not None), None)
            if y is None:  # judged, but nothing to place it at: a vertical mark says so
                marks.append((f"{verdict} (no latency)", p["offered_rps"]))
            else:
                xs.append(p["offered_rps"])
                ys.append(y)
        if xs:
            series[label] = (xs, ys)
            styles[label] = {"style": "points", "color": colour}
    hlines = [(f"SLO {_SLO_LABELS[k]} ≤ {bounds[k]:g} ms", bounds[k]) for k in slo_keys if k in bounds]
    return lines(series, title, "offered rate (req/s)", "latency (ms)", marks=marks, name=name,
                 hlines=hlines, spans=spans, styles=styles)


def load_figures(points: Iterable[Mapping[str, Any]], *, slo: Mapping[str, float] | None = None,
                 bracket: Mapping[str, Any] | None = None, lags_ms: Iterable[float] | None = None,
                 max_lag_ms: float = 1.0) -> list[dict[str, Any]]:
    """The load suite's figures (see the module docstring) from ``points`` (one per run or probe,
    any order), the SLO's bounds (``{"ttft_ms": 400, ...}`` or an :class:`~pytest_inference.slo.SLO`),
    the capacity ``bracket`` (``Bracket.to_dict()``: ``highest_pass``/``lowest_fail``, either None)
    and the per-request dispatch lags of a run. Only figures that have data; bad input is a
    one-line ValueError."""
    pts = _points(points)
    bounds = _slo_bounds(slo)
    spans = _bracket_span(bracket)
    bound = _num(max_lag_ms, "max_lag_ms", positive=True)
    out: list[dict[str, Any]] = []
    tpot = any(p["tpot_p99_ms"] is not None for p in pts)
    fig = _latency_figure(pts, [("ttft_p50_ms", "TTFT p50"), ("ttft_p99_ms", "TTFT p99"), ("tpot_p99_ms", "TPOT p99")],
                          ("ttft_p99_ms", "ttft_p50_ms"), bounds, ["ttft_ms", "tpot_ms"] if tpot else ["ttft_ms"],
                          spans, "latency vs offered rate", "load latency vs offered rate")
    if fig:
        out.append(fig)
    fig = _latency_figure(pts, [("e2e_p99_ms", "e2e p99")], ("e2e_p99_ms",), bounds, ["e2e_ms"], spans,
                          "end-to-end latency vs offered rate", "load e2e latency vs offered rate")
    if fig:
        out.append(fig)
    achieved = [p for p in pts if p["achieved_rps"] is not None]
    if achieved:
        top = max(max(p["offered_rps"], p["achieved_rps"]) for p in achieved)
        out.append(lines({"achieved": ([p["offered_rps"] for p in achieved], [p["achieved_rps"] for p in achieved]),
                          "y = x (schedule kept)": ([0.0, top], [0.0, top])},
                         "achieved vs offered rate", "offered rate (req/s)", "achieved rate (req/s)",
                         name="load achieved vs offered rate",
                         styles={"y = x (schedule kept)": {"style": "dashed", "color": "#757575"}}))
    if lags_ms is not None:
        if isinstance(lags_ms, (str, bytes)) or not isinstance(lags_ms, Iterable):
            raise ValueError(f"lags_ms: a list of numbers, not {type(lags_ms).__name__}")
        lags = [round(x, _LAG_DECIMALS) for i, v in enumerate(lags_ms)
                if (x := _num(v, f"lags_ms[{i}]")) is not None]
        if lags:
            bins = min(60, max(10, int(math.sqrt(len(lags)))))
            out.append(histogram(lags, "dispatch lag (scheduled → sent)", "dispatch lag (ms)",
                                 bins=bins, marks=[(f"bound {bound:g} ms", bound)],
                                 name="load dispatch lag histogram"))
    return out


def load_point(run: Any, verdict: str | None = None) -> dict[str, Any]:
    """A point for :func:`load_figures` from an open-loop run (an ``OpenLoopResult``: ``offered_rps``,
    ``achieved_rps`` and ``results`` with ``ok``, ``ttft_ms``, ``tpot_ms``, ``e2e_ms``). Percentiles
    are over the requests that succeeded; None where none measured the figure."""

    def pct(name: str, q: float) -> float | None:
        xs = [float(v) for r in getattr(run, "results", []) or []
              if getattr(r, "ok", False) and isinstance(v := getattr(r, name, None), (int, float))
              and not isinstance(v, bool) and math.isfinite(v)]
        return stats.percentile(xs, q) if xs else None

    return {"offered_rps": getattr(run, "offered_rps", None), "achieved_rps": getattr(run, "achieved_rps", None),
            "ttft_p50_ms": pct("ttft_ms", 50), "ttft_p99_ms": pct("ttft_ms", 99),
            "tpot_p50_ms": pct("tpot_ms", 50), "tpot_p99_ms": pct("tpot_ms", 99),
            "e2e_p99_ms": pct("e2e_ms", 99), "verdict": verdict}
