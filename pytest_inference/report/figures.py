"""Figures as data: what a suite puts in a claim for the report side to draw.

A probe returns observations; a suite turns the ones worth a picture into a *figure* — plain JSON
data in the claim's details, ``details["figures"]`` (a list) — and a sink that draws (the Allure
sink, and through its results the HTML report) renders the claim's figures here with
:mod:`.charts`.  The data travel with the claim (between xdist workers, into ``summary.json``), so a
later report can redraw them (:func:`redraw_summary`).  A claim with two samples or more also gets
its samples chart (:func:`.charts.claim_chart_png`), as before.

Kinds (build them with :func:`timeline` and :func:`lines`; both check their input)::

    {"kind": "timeline", "name": ..., "title": ..., "rows": [[label, start_s, end_s], ...]}
    {"kind": "lines", "name": ..., "title": ..., "xlabel": ..., "ylabel": ...,
     "series": [{"label": ..., "x": [...], "y": [...]}, ...], "marks": [[label, x] or [label, x, y], ...]}

matplotlib is optional (the ``charts`` extra): without it nothing is drawn, the verdicts are the
same, and the run says so once (:func:`charts_note`).  This module imports neither matplotlib nor
allure.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from ..claims import Claim

FIGURES = "figures"
KINDS = ("timeline", "lines")
CHARTS_NOTE = "charts need matplotlib (pip install 'pytest-inference[charts]')"


class FigureError(ValueError):
    """A figure's data cannot be drawn; one line saying which figure and why."""


# --------------------------------------------------------------------------- building figures


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise FigureError(f"{where}: {value!r} is not a number")
    x = float(value)
    if not math.isfinite(x):
        raise FigureError(f"{where}: {value!r} is not a finite number")
    return x


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise FigureError(f"{where}: {value!r} is not text")
    return value


def timeline(rows: Iterable[Sequence[Any]], title: str, name: str | None = None) -> dict[str, Any]:
    """A Gantt-style figure: one bar per ``(label, start_s, end_s)`` row, top to bottom."""
    fig = {"kind": "timeline", "title": title, "rows": [list(r) for r in rows]}
    if name is not None:
        fig["name"] = name
    return check(fig)


def lines(series: Mapping[str, tuple[Sequence[float], Sequence[float]]], title: str, xlabel: str, ylabel: str,
          marks: Iterable[Sequence[Any]] | None = None, name: str | None = None) -> dict[str, Any]:
    """A line chart of labelled ``(xs, ys)`` series; ``marks``: ``(label, x)`` (a dotted vertical
    line) or ``(label, x, y)`` (a labelled point, e.g. a break-even)."""
    fig: dict[str, Any] = {
        "kind": "lines", "title": title, "xlabel": xlabel, "ylabel": ylabel,
        "series": [{"label": label, "x": list(xs), "y": list(ys)} for label, (xs, ys) in series.items()],
        "marks": [list(m) for m in (marks or ())],
    }
    if name is not None:
        fig["name"] = name
    return check(fig)


def check(fig: Any, where: str = "figure") -> dict[str, Any]:
    """``fig`` normalised (numbers as floats, tuples as lists: the same after a JSON round trip),
    or :class:`FigureError` naming what is wrong."""
    if not isinstance(fig, Mapping):
        raise FigureError(f"{where}: a figure is a mapping with a 'kind', not {type(fig).__name__}")
    kind = fig.get("kind")
    if kind not in KINDS:
        raise FigureError(f"{where}: kind {kind!r} is not one of {', '.join(KINDS)}")
    out: dict[str, Any] = {"kind": kind, "title": _text(fig.get("title", ""), f"{where}.title")}
    if fig.get("name") is not None:
        out["name"] = _text(fig["name"], f"{where}.name")
    if kind == "timeline":
        rows = fig.get("rows")
        if not isinstance(rows, (list, tuple)):
            raise FigureError(f"{where}.rows: a list of [label, start_s, end_s], not {type(rows).__name__}")
        out["rows"] = []
        for i, row in enumerate(rows):
            at = f"{where}.rows[{i}]"
            if not isinstance(row, (list, tuple)) or len(row) != 3:
                raise FigureError(f"{at}: {row!r} is not [label, start_s, end_s]")
            label, start, end = _text(row[0], at), _number(row[1], at), _number(row[2], at)
            if end < start:
                raise FigureError(f"{at}: {label!r} ends ({end:g}) before it starts ({start:g})")
            out["rows"].append([label, start, end])
        return out
    for key in ("xlabel", "ylabel"):
        out[key] = _text(fig.get(key, ""), f"{where}.{key}")
    series = fig.get("series")
    if not isinstance(series, (list, tuple)):
        raise FigureError(f"{where}.series: a list of {{label, x, y}}, not {type(series).__name__}")
    out["series"] = []
    for i, s in enumerate(series):
        at = f"{where}.series[{i}]"
        if not isinstance(s, Mapping) or not isinstance(s.get("x"), (list, tuple)) or not isinstance(s.get("y"), (list, tuple)):
            raise FigureError(f"{at}: a series is {{label, x: [...], y: [...]}}")
        if len(s["x"]) != len(s["y"]):
            raise FigureError(f"{at}: {len(s['x'])} x values but {len(s['y'])} y values")
        out["series"].append({"label": _text(s.get("label", ""), f"{at}.label"),
                              "x": [_number(v, f"{at}.x") for v in s["x"]],
                              "y": [_number(v, f"{at}.y") for v in s["y"]]})
    marks = fig.get("marks") or []
    if not isinstance(marks, (list, tuple)):
        raise FigureError(f"{where}.marks: a list of [label, x] or [label, x, y]")
    out["marks"] = []
    for i, m in enumerate(marks):
        at = f"{where}.marks[{i}]"
        if not isinstance(m, (list, tuple)) or len(m) not in (2, 3):
            raise FigureError(f"{at}: {m!r} is not [label, x] or [label, x, y]")
        out["marks"].append([_text(m[0], at), *(_number(v, at) for v in m[1:])])
    return out


def with_figures(details: Mapping[str, Any] | None, *figures: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a claim's ``details`` with ``figures`` added (after any it already carries)."""
    out = dict(details or {})
    out[FIGURES] = list(out.get(FIGURES) or []) + [check(f) for f in figures]
    return out


# --------------------------------------------------------------------------- drawing


def render(fig: Mapping[str, Any]) -> bytes | None:
    """The figure as PNG bytes (``None`` with nothing to draw). Needs matplotlib."""
    from . import charts

    fig = check(fig)
    if fig["kind"] == "timeline":
        return charts.timeline_png([tuple(r) for r in fig["rows"]], fig["title"])
    series = {s["label"]: (s["x"], s["y"]) for s in fig["series"]}
    return charts.line_chart_png(series, fig["title"], fig["xlabel"], fig["ylabel"], fig["marks"])


def _figures_of(claim: Claim) -> list[Any]:
    figs = claim.details.get(FIGURES) if isinstance(claim.details, Mapping) else None
    if figs is None:
        return []
    return list(figs) if isinstance(figs, (list, tuple)) else [figs]  # a lone mapping: check() says what is wrong


def drawings(claim: Claim) -> list[tuple[str, Callable[[], bytes | None]]]:
    """What a report draws for ``claim``: ``(attachment name, draw)`` pairs — its samples chart
    (two samples or more) as ``<metric> chart``, then each figure in its details under the
    figure's name. ``draw()`` needs matplotlib and raises :class:`FigureError` on bad data."""
    from . import charts

    metric = claim.metric.strip() or "claim"
    out: list[tuple[str, Callable[[], bytes | None]]] = []
    if claim.count >= 2:
        out.append((f"{metric} chart", lambda: charts.claim_chart_png(claim)))
    for i, fig in enumerate(_figures_of(claim), 1):
        kind = fig.get("kind") if isinstance(fig, Mapping) else None
        name = fig.get("name") if isinstance(fig, Mapping) and isinstance(fig.get("name"), str) else None
        title = name or f"{metric} {kind or 'figure'} chart {i}"
        out.append((title, lambda fig=fig, i=i: render(check(fig, f"{metric} details.figures[{i - 1}]"))))
    return out


_AVAILABLE: bool | None = None


def available() -> bool:
    """Can charts be drawn here (is matplotlib importable)? Asked once per process."""
    global _AVAILABLE
    if _AVAILABLE is None:
        from . import charts

        try:
            charts._matplotlib()
        except ImportError:
            _AVAILABLE = False
        else:
            _AVAILABLE = True
    return _AVAILABLE


def charts_note(claims: Iterable[Claim], drawing: bool = True) -> str | None:
    """The one line a run shows when it had charts to draw (``drawing``: a report that draws,
    e.g. Allure, was recorded) and no matplotlib to draw them; ``None`` otherwise."""
    if not drawing or not any(drawings(c) for c in claims):
        return None
    return None if available() else CHARTS_NOTE


# --------------------------------------------------------------------------- redrawing a run


def _file_name(name: str, taken: set[str]) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "chart"
    candidate, n = f"{stem[:120]}.png", 2
    while candidate in taken:
        candidate, n = f"{stem[:120]}-{n}.png", n + 1
    taken.add(candidate)
    return candidate


def redraw_summary(summary_path: str | os.PathLike[str], out_dir: str | os.PathLike[str]) -> list[Path]:
    """Draw every chart of a run again from its ``summary.json``: one PNG per samples chart and per
    figure, in ``out_dir``. Returns the files written. Raises :class:`FigureError` (one line) for a
    file that is not a summary, or without matplotlib."""
    path = Path(summary_path)
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FigureError(f"{path}: not a readable summary.json ({type(exc).__name__}: {exc})") from None
    claims = summary.get("claims") if isinstance(summary, dict) else None
    if not isinstance(claims, list):
        raise FigureError(f"{path}: no 'claims' list (not a pytest-inference summary.json)")
    if not available():
        raise FigureError(CHARTS_NOTE)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    taken: set[str] = set()
    for i, d in enumerate(claims):
        try:
            claim = Claim.from_dict(d)
        except (TypeError, ValueError) as exc:
            raise FigureError(f"{path}: claims[{i}] is not a claim ({exc})") from None
        for name, draw in drawings(claim):
            png = draw()
            if png:
                target = out / _file_name(name, taken)
                target.write_bytes(png)
                written.append(target)
    return written
