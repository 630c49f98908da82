"""Figures as data: what a suite puts in a claim for the report side to draw.

A probe returns observations; a suite turns the ones worth a picture into a *figure* — plain JSON
data in the claim's details, ``details["figures"]`` (a list) — and a sink that draws (the Allure
sink, and through its results the HTML report) renders the claim's figures here with
:mod:`.charts`.  The data travel with the claim (between xdist workers, into ``summary.json``), so a
later report can redraw them (:func:`redraw_summary`).  A claim with two samples or more also gets
its samples chart (:func:`.charts.claim_chart_png`), as before.

Kinds (build them with :func:`timeline`, :func:`lines` and :func:`histogram`; each checks its input)::

    {"kind": "timeline", "name": ..., "title": ..., "rows": [[label, start_s, end_s], ...]}
    {"kind": "lines", "name": ..., "title": ..., "xlabel": ..., "ylabel": ...,
     "series": [{"label": ..., "x": [...], "y": [...]}, ...], "marks": [[label, x] or [label, x, y], ...]}
    {"kind": "histogram", "name": ..., "title": ..., "xlabel": ..., "values": [...], "bins": int,
     "marks": [[label, x], ...]}

Optional keys of ``lines`` (absent when not used, so older figures read and draw as before):
``hlines: [[label, y], ...]`` (a horizontal line, e.g. an SLO bound), ``spans: [[label, x0, x1], ...]``
(a shaded vertical band, e.g. a capacity bracket; ``x0`` or ``x1`` may be None: open to that edge of
the plot), ``xscale``/``yscale`` (``"linear"`` or ``"log"``; on a log axis every value on it is > 0),
and per series ``style`` (``"line"``, ``"points"``: markers only, ``"dashed"``) and ``color``
(``"#rrggbb"``). ``bins`` of a histogram is optional (matplotlib's ``auto`` rule without it).

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
KINDS = ("timeline", "lines", "histogram")
SCALES = ("linear", "log")
STYLES = ("line", "points", "dashed")
#: the most bins a histogram may ask for (more is no longer a picture of a distribution)
MAX_BINS = 1000
_COLOUR = re.compile(r"#[0-9A-Fa-f]{6}")
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
          marks: Iterable[Sequence[Any]] | None = None, name: str | None = None, *,
          hlines: Iterable[Sequence[Any]] | None = None, spans: Iterable[Sequence[Any]] | None = None,
          xscale: str | None = None, yscale: str | None = None,
          styles: Mapping[str, Mapping[str, str]] | None = None) -> dict[str, Any]:
    """A line chart of labelled ``(xs, ys)`` series; ``marks``: ``(label, x)`` (a dotted vertical
    line) or ``(label, x, y)`` (a labelled point, e.g. a break-even); ``hlines``: ``(label, y)``
    (a horizontal line, e.g. an SLO bound); ``spans``: ``(label, x0, x1)`` (a shaded band, either
    end None: open); ``xscale``/``yscale``: ``"linear"`` or ``"log"``; ``styles``: per series
    label, ``{"style": "points"|"line"|"dashed", "color": "#rrggbb"}``."""
    styles = styles or {}
    unknown = sorted(set(styles) - set(series))
    if unknown:
        raise FigureError(f"figure {title!r}: styles for series it does not have: {', '.join(map(repr, unknown))}")
    fig: dict[str, Any] = {
        "kind": "lines", "title": title, "xlabel": xlabel, "ylabel": ylabel,
        "series": [{"label": label, "x": list(xs), "y": list(ys), **dict(styles.get(label) or {})}
                   for label, (xs, ys) in series.items()],
        "marks": [list(m) for m in (marks or ())],
    }
    if hlines:
        fig["hlines"] = [list(h) for h in hlines]
    if spans:
        fig["spans"] = [list(sp) for sp in spans]
    if xscale is not None:
        fig["xscale"] = xscale
    if yscale is not None:
        fig["yscale"] = yscale
    if name is not None:
        fig["name"] = name
    return check(fig)


def histogram(values: Iterable[float], title: str, xlabel: str, bins: int | None = None,
              marks: Iterable[Sequence[Any]] | None = None, name: str | None = None) -> dict[str, Any]:
    """A histogram of ``values`` (counts per bin); ``marks``: ``(label, x)``, a vertical line (e.g.
    a bound the values are held to)."""
    fig: dict[str, Any] = {"kind": "histogram", "title": title, "xlabel": xlabel, "values": list(values),
                           "marks": [list(m) for m in (marks or ())]}
    if bins is not None:
        fig["bins"] = bins
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
    if kind == "histogram":
        return _check_histogram(fig, where, out)
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
        one = {"label": _text(s.get("label", ""), f"{at}.label"),
               "x": [_number(v, f"{at}.x") for v in s["x"]],
               "y": [_number(v, f"{at}.y") for v in s["y"]]}
        if s.get("style") is not None:
            one["style"] = _choice(s["style"], STYLES, f"{at}.style")
        if s.get("color") is not None:
            colour = _text(s["color"], f"{at}.color")
            if not _COLOUR.fullmatch(colour):
                raise FigureError(f"{at}.color: {colour!r} is not a colour like '#2e7d32'")
            one["color"] = colour
        out["series"].append(one)
    marks = fig.get("marks") or []
    if not isinstance(marks, (list, tuple)):
        raise FigureError(f"{where}.marks: a list of [label, x] or [label, x, y]")
    out["marks"] = []
    for i, m in enumerate(marks):
        at = f"{where}.marks[{i}]"
        if not isinstance(m, (list, tuple)) or len(m) not in (2, 3):
            raise FigureError(f"{at}: {m!r} is not [label, x] or [label, x, y]")
        out["marks"].append([_text(m[0], at), *(_number(v, at) for v in m[1:])])
    hlines = fig.get("hlines")
    if hlines is not None:
        if not isinstance(hlines, (list, tuple)):
            raise FigureError(f"{where}.hlines: a list of [label, y], not {type(hlines).__name__}")
        out["hlines"] = []
        for i, h in enumerate(hlines):
            at = f"{where}.hlines[{i}]"
            if not isinstance(h, (list, tuple)) or len(h) != 2:
                raise FigureError(f"{at}: {h!r} is not [label, y]")
            out["hlines"].append([_text(h[0], at), _number(h[1], at)])
    spans = fig.get("spans")
    if spans is not None:
        if not isinstance(spans, (list, tuple)):
            raise FigureError(f"{where}.spans: a list of [label, x0, x1], not {type(spans).__name__}")
        out["spans"] = []
        for i, sp in enumerate(spans):
            at = f"{where}.spans[{i}]"
            if not isinstance(sp, (list, tuple)) or len(sp) != 3:
                raise FigureError(f"{at}: {sp!r} is not [label, x0, x1]")
            label = _text(sp[0], at)
            x0 = None if sp[1] is None else _number(sp[1], at)
            x1 = None if sp[2] is None else _number(sp[2], at)
            if x0 is None and x1 is None:
                raise FigureError(f"{at}: {label!r} has neither end (x0 and x1 both None)")
            if x0 is not None and x1 is not None and x1 < x0:
                raise FigureError(f"{at}: {label!r} ends ({x1:g}) before it starts ({x0:g})")
            out["spans"].append([label, x0, x1])
    for axis in ("x", "y"):
        key = f"{axis}scale"
        if fig.get(key) is not None:
            out[key] = _choice(fig[key], SCALES, f"{where}.{key}")
    _check_log_axes(out, where)
    return out


def _choice(value: Any, allowed: Sequence[str], where: str) -> str:
    if value not in allowed:
        raise FigureError(f"{where}: {value!r} is not one of {', '.join(allowed)}")
    return value


def _check_log_axes(out: dict[str, Any], where: str) -> None:
    """On a log axis every value drawn on it must be > 0 (matplotlib would drop the others
    silently: a chart that hides a point is wrong without saying so)."""
    on_x: list[tuple[str, float | None]] = []
    on_y: list[tuple[str, float | None]] = []
    for i, s in enumerate(out["series"]):
        on_x += [(f"{where}.series[{i}].x", v) for v in s["x"]]
        on_y += [(f"{where}.series[{i}].y", v) for v in s["y"]]
    for i, m in enumerate(out["marks"]):
        on_x.append((f"{where}.marks[{i}]", m[1]))
        if len(m) > 2:
            on_y.append((f"{where}.marks[{i}]", m[2]))
    on_y += [(f"{where}.hlines[{i}]", h[1]) for i, h in enumerate(out.get("hlines", []))]
    for i, sp in enumerate(out.get("spans", [])):
        on_x += [(f"{where}.spans[{i}]", sp[1]), (f"{where}.spans[{i}]", sp[2])]
    for axis, values in (("x", on_x), ("y", on_y)):
        if out.get(f"{axis}scale") != "log":
            continue
        for at, v in values:
            if v is not None and v <= 0:
                raise FigureError(f"{at}: {v:g} cannot be drawn on a log {axis} axis (values must be > 0)")


def _check_histogram(fig: Mapping[str, Any], where: str, out: dict[str, Any]) -> dict[str, Any]:
    out["xlabel"] = _text(fig.get("xlabel", ""), f"{where}.xlabel")
    values = fig.get("values")
    if not isinstance(values, (list, tuple)):
        raise FigureError(f"{where}.values: a list of numbers, not {type(values).__name__}")
    out["values"] = [_number(v, f"{where}.values[{i}]") for i, v in enumerate(values)]
    bins = fig.get("bins")
    if bins is not None:
        if isinstance(bins, bool) or not isinstance(bins, int) or not 1 <= bins <= MAX_BINS:
            raise FigureError(f"{where}.bins: {bins!r} is not a whole number from 1 to {MAX_BINS}")
        out["bins"] = bins
    marks = fig.get("marks") or []
    if not isinstance(marks, (list, tuple)):
        raise FigureError(f"{where}.marks: a list of [label, x]")
    out["marks"] = []
    for i, m in enumerate(marks):
        at = f"{where}.marks[{i}]"
        if not isinstance(m, (list, tuple)) or len(m) != 2:
            raise FigureError(f"{at}: {m!r} is not [label, x]")
        out["marks"].append([_text(m[0], at), _number(m[1], at)])
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
    if fig["kind"] == "histogram":
        return charts.histogram_png(fig["values"], fig["title"], fig["xlabel"], bins=fig.get("bins"),
                                    marks=fig["marks"])
    series = {s["label"]: (s["x"], s["y"]) for s in fig["series"]}
    styles = {s["label"]: {k: s[k] for k in ("style", "color") if k in s} for s in fig["series"]}
    return charts.line_chart_png(series, fig["title"], fig["xlabel"], fig["ylabel"], fig["marks"],
                                 hlines=fig.get("hlines"), spans=fig.get("spans"), xscale=fig.get("xscale"),
                                 yscale=fig.get("yscale"), styles={k: v for k, v in styles.items() if v})


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
