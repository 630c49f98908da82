"""PNG charts for the reports: one claim's samples, a phase timeline, a line chart, a histogram.

The report side draws: :mod:`.figures` turns the figure data a claim carries into these charts
for the sinks; probes and suites never call this module.  matplotlib is optional (the
``charts`` extra) and imported inside the functions, never at module import, so loading the
plugin stays fast.  The figures are built with the object-oriented API on an Agg canvas
(no pyplot, no global figure registry, no backend switch in the host process) under
matplotlib's default style, so the output does not depend on a user's matplotlibrc.
Every function returns the PNG bytes, or ``None`` where there is nothing to draw.
"""

from __future__ import annotations

import io
import os
import tempfile
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from .. import stats
from ..claims import FAIL, INCONCLUSIVE, MEASURED, OPS, PASS, Claim, fmt

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

VERDICT_COLOURS = {PASS: "#2e7d32", FAIL: "#c62828", INCONCLUSIVE: "#ef6c00", MEASURED: "#455a64"}
SAMPLE_COLOUR = "#5b8def"
MISS_COLOUR = "#e57373"
THRESHOLD_COLOUR = "#c62828"
STAT_COLOUR = "#212121"

#: statistics whose value lies on the same axis as the individual samples
_ON_SAMPLE_SCALE = set(stats.QUANTILE_STATS) | {"min", "max", "mean"}
#: statistics whose threshold is a level each sample can be compared against
_THRESHOLD_ON_SAMPLES = set(stats.QUANTILE_STATS) | {"min", "max"}
#: above this many samples the per-sample chart uses dots instead of bars
_MAX_BARS = 60

_DPI = 100


def _private_mpl_dir() -> str:
    """matplotlib's config/cache folder in the shared temp dir: ours alone (0700, a real directory,
    owned by us), else a fresh private one — a name another user planted (a symlink, their folder)
    must not receive the files we write."""
    import stat

    uid = os.getuid() if hasattr(os, "getuid") else 0
    path = os.path.join(tempfile.gettempdir(), f"pytest-inference-mpl-{uid}")
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError:
        return tempfile.mkdtemp(prefix="pytest-inference-mpl-")
    try:
        st = os.lstat(path)
    except OSError:
        return tempfile.mkdtemp(prefix="pytest-inference-mpl-")
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != uid:
        return tempfile.mkdtemp(prefix="pytest-inference-mpl-")
    if stat.S_IMODE(st.st_mode) & 0o077:
        os.chmod(path, 0o700)  # ours (an older version made it 0755): private from now on
    return path


def _matplotlib():
    """Import matplotlib lazily, with a writable config/cache dir and the Agg canvas."""
    if not os.environ.get("MPLCONFIGDIR"):
        os.environ["MPLCONFIGDIR"] = _private_mpl_dir()
    import matplotlib
    import matplotlib.style
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    return matplotlib, Figure, FigureCanvasAgg


def _render(build) -> bytes:
    """Create a figure under the default style, let ``build(fig)`` draw it, return PNG bytes."""
    matplotlib, Figure, FigureCanvasAgg = _matplotlib()
    with matplotlib.style.context("default"):
        fig = Figure(figsize=(9, 4), dpi=_DPI, layout="constrained")
        FigureCanvasAgg(fig)
        try:
            build(fig)
            buf = io.BytesIO()
            # no Software/date metadata: the same data give the same bytes
            fig.savefig(buf, format="png", dpi=_DPI, metadata={"Software": None})
            return buf.getvalue()
        finally:
            fig.clear()


def _unit_label(name: str, unit: str | None) -> str:
    return f"{name} ({unit})" if unit else name


def _misses(claim: Claim) -> list[bool]:
    """Per sample: is it beyond the threshold (only where the threshold applies per sample)?"""
    if claim.threshold is None or claim.op not in OPS or claim.stat not in _THRESHOLD_ON_SAMPLES:
        return [False] * claim.count
    return [not OPS[claim.op](x, claim.threshold) for x in claim.samples]


def claim_chart_png(claim: Claim) -> bytes | None:
    """Per-sample chart of one claim; ``None`` for a claim with fewer than two samples.

    Bars (dots above 60 samples) are the samples in order; samples beyond the threshold
    are drawn in red.  A solid red line marks the threshold where it applies to each
    sample (quantile, min, max statistics); a dashed line marks the statistic's value
    where it is on the samples' scale; for ``spread`` the min–max band is shaded and its
    width annotated.  The title carries the metric and the verdict.
    """
    samples = [float(x) for x in claim.samples]
    n = len(samples)
    if n < 2:
        return None
    verdict = claim.verdict
    unit = claim.unit
    misses = _misses(claim)
    xlabel = str(claim.details.get("sample_label") or "sample #") if isinstance(claim.details, dict) else "sample #"

    def build(fig: "Figure") -> None:
        from matplotlib.lines import Line2D
        from matplotlib.patches import Patch

        ax = fig.add_subplot()
        extra: list[Any] = []
        xs = list(range(1, n + 1))
        colours = [MISS_COLOUR if m else SAMPLE_COLOUR for m in misses]
        spread_view = claim.stat == "spread"
        if spread_view:
            # a spread is about variation: dots on a zoomed axis, not bars from zero
            ax.plot(xs, samples, color=SAMPLE_COLOUR, lw=0.8, alpha=0.6, zorder=2)
            ax.scatter(xs, samples, c=colours, s=22, zorder=3)
        elif n <= _MAX_BARS:
            ax.bar(xs, samples, color=colours, width=0.7, zorder=2)
        else:
            ax.scatter(xs, samples, c=colours, s=12, zorder=2)
        if n <= 30:
            ax.set_xticks(xs)
        ax.set_xlim(0.3, n + 0.7)
        extra.insert(0, Line2D([], [], color=SAMPLE_COLOUR, marker="o" if spread_view or n > _MAX_BARS else "s",
                               ls="", ms=7, label=f"samples (n={n})"))

        lo, hi = min(samples), max(samples)
        if claim.stat == "spread":
            ax.axhspan(lo, hi, color=VERDICT_COLOURS.get(verdict, STAT_COLOUR), alpha=0.15, zorder=1,
                       label=f"min–max band ({fmt(lo)}–{fmt(hi)})")
            ax.axhline(lo, color=STAT_COLOUR, lw=0.8, ls=":", zorder=3)
            ax.axhline(hi, color=STAT_COLOUR, lw=0.8, ls=":", zorder=3)
            spread = claim.measured if claim.measured is not None else hi - lo
            text = f"spread = {fmt(spread)}{' ' + unit if unit else ''}"
            if claim.threshold is not None and claim.op:
                text += f"\nrequired {claim.op} {fmt(claim.threshold)}{' ' + unit if unit else ''}"
            ax.annotate("", xy=(n + 0.45, hi), xytext=(n + 0.45, lo),
                        arrowprops={"arrowstyle": "<->", "color": STAT_COLOUR, "lw": 1.2})
            ax.text(0.99, 0.97, text, transform=ax.transAxes, ha="right", va="top", fontsize=9,
                    bbox={"boxstyle": "round", "fc": "white", "ec": "#999999", "alpha": 0.9})

        if claim.stat in _ON_SAMPLE_SCALE and claim.measured is not None:
            ax.axhline(claim.measured, color=STAT_COLOUR, ls="--", lw=1.4, zorder=4,
                       label=f"{claim.stat} = {fmt(claim.measured)}{' ' + unit if unit else ''}")

        if claim.threshold is not None and claim.op and claim.stat in _THRESHOLD_ON_SAMPLES:
            ax.axhline(claim.threshold, color=THRESHOLD_COLOUR, lw=1.6, zorder=5,
                       label=f"threshold: {claim.stat} {claim.op} {fmt(claim.threshold)}{' ' + unit if unit else ''}")
            if any(misses):
                extra.append(Patch(color=MISS_COLOUR, label=f"beyond threshold ({sum(misses)} of {n})"))

        if claim.stat not in _ON_SAMPLE_SCALE and claim.stat != "spread" and claim.measured is not None:
            # sum, count, std, value-from-elsewhere: state the figure instead of drawing it
            ax.text(0.99, 0.97, f"{claim.stat} = {fmt(claim.measured)}{' ' + unit if unit else ''}",
                    transform=ax.transAxes, ha="right", va="top", fontsize=9,
                    bbox={"boxstyle": "round", "fc": "white", "ec": "#999999", "alpha": 0.9})

        if spread_view:
            width = (hi - lo) or (abs(hi) * 0.05) or 1.0
            ax.set_ylim(lo - 0.5 * width, hi + 0.9 * width)
        elif lo >= 0:
            top = max(hi, claim.threshold if claim.threshold is not None and claim.stat in _THRESHOLD_ON_SAMPLES else hi)
            headroom = 1.1 if claim.stat in _ON_SAMPLE_SCALE else 1.25  # room for the figure's text box
            ax.set_ylim(0, top * headroom if top > 0 else 1)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(_unit_label(claim.metric.rsplit(".", 1)[-1], unit))
        ax.grid(axis="y", alpha=0.3, zorder=0)
        handles, _ = ax.get_legend_handles_labels()
        ax.legend(handles=extra[:1] + handles + extra[1:], loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8,
                  frameon=False)
        fig.suptitle(f"{claim.metric} — {verdict.upper()}", color=VERDICT_COLOURS.get(verdict, STAT_COLOUR),
                     fontsize=12, fontweight="bold")
        target = f"target {claim.target}" if claim.target else "the target"
        if claim.op is None:
            sub = f"{target} sets no requirement (measured only)"
        else:
            sub = f"{target} requires {claim.stat} {claim.requirement_text()}"
        ax.set_title(sub, fontsize=9, color="#555555")

    return _render(build)


def timeline_png(phases: Sequence[tuple[str, float, float]], title: str) -> bytes | None:
    """Gantt-style chart: one row per ``(name, start_s, end_s)`` phase, top to bottom.

    Each bar is labelled with its duration; the x axis is seconds from the first start.
    ``None`` when there are no phases.
    """
    rows = [(str(name), float(start), float(end)) for name, start, end in phases]
    if not rows:
        return None
    for name, start, end in rows:
        if end < start:
            raise ValueError(f"phase {name!r} ends ({end}) before it starts ({start})")

    def build(fig: "Figure") -> None:
        fig.set_size_inches(8, max(2.2, 0.55 * len(rows) + 1.3))
        ax = fig.add_subplot()
        total = max(end for _, _, end in rows) - min(start for _, start, _ in rows)
        palette = ["#5b8def", "#26a69a", "#ab47bc", "#ffa726", "#8d6e63", "#ec407a", "#78909c"]
        for i, (name, start, end) in enumerate(rows):
            ax.barh(i, end - start, left=start, height=0.6, color=palette[i % len(palette)], zorder=2)
            ax.text(end + total * 0.01, i, f"{fmt(end - start)} s", va="center", fontsize=8)
        ax.set_yticks(range(len(rows)), [name for name, _, _ in rows])
        ax.invert_yaxis()
        right = max(end for _, _, end in rows)
        ax.set_xlim(min(0.0, min(s for _, s, _ in rows)), right + max(total * 0.15, 1e-9))
        ax.set_xlabel("time (s)")
        ax.grid(axis="x", alpha=0.3, zorder=0)
        ax.set_title(title, fontsize=12, fontweight="bold")

    return _render(build)


#: colours of the horizontal lines (bounds) and shaded bands of a line chart, in order
_HLINE_COLOURS = ["#c62828", "#6a1b9a", "#ef6c00", "#00838f"]
_SPAN_COLOURS = ["#43a047", "#1e88e5", "#8e24aa", "#fb8c00"]


def _open_limits(lo: float, hi: float, ends: Sequence[float], log: bool) -> tuple[float, float]:
    """Axis limits that also show a little beyond every closed end of an open band (a band open
    to the right from the last data point must still be visible)."""
    for x in ends:
        if log:
            lo, hi = min(lo, x / 1.25), max(hi, x * 1.25)
        else:
            pad = 0.08 * ((hi - lo) or abs(x) or 1.0)
            lo, hi = min(lo, x - pad), max(hi, x + pad)
    return lo, hi


def line_chart_png(
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    title: str,
    xlabel: str,
    ylabel: str,
    marks: Iterable[Sequence[Any]] | None = None,
    *,
    hlines: Iterable[Sequence[Any]] | None = None,
    spans: Iterable[Sequence[Any]] | None = None,
    xscale: str | None = None,
    yscale: str | None = None,
    styles: Mapping[str, Mapping[str, str]] | None = None,
) -> bytes | None:
    """Line chart of labelled ``(xs, ys)`` series.

    ``marks`` are ``(label, x)`` — a dotted vertical line — or ``(label, x, y)`` — a point
    with its label (e.g. the break-even of a cost crossover).  ``hlines`` are ``(label, y)``:
    a dashed horizontal line in the legend (e.g. an SLO bound); ``spans`` are ``(label, x0, x1)``:
    a shaded vertical band (e.g. a capacity bracket), an end of None reaching that edge of the
    plot.  ``xscale``/``yscale``: ``"linear"`` (default) or ``"log"``.  ``styles``: per series
    label, ``style`` (``"line"``, ``"points"``: markers only, ``"dashed"``) and ``color``.
    ``None`` when no series has a point.
    """
    lines = {str(k): ([float(x) for x in xs], [float(y) for y in ys]) for k, (xs, ys) in series.items()}
    for label, (xs, ys) in lines.items():
        if len(xs) != len(ys):
            raise ValueError(f"series {label!r}: {len(xs)} x values but {len(ys)} y values")
    if not any(xs for xs, _ in lines.values()):
        return None
    mark_list = [tuple(m) for m in (marks or ())]
    hline_list = [(str(h[0]), float(h[1])) for h in (hlines or ())]
    span_list = [(str(sp[0]), None if sp[1] is None else float(sp[1]), None if sp[2] is None else float(sp[2]))
                 for sp in (spans or ())]
    for axis, scale in (("x", xscale), ("y", yscale)):
        if scale not in (None, "linear", "log"):
            raise ValueError(f"{axis}scale {scale!r} is not 'linear' or 'log'")
    styles = styles or {}

    def build(fig: "Figure") -> None:
        ax = fig.add_subplot()
        if xscale:
            ax.set_xscale(xscale)
        if yscale:
            ax.set_yscale(yscale)
        for label, (xs, ys) in lines.items():
            style = styles.get(label) or {}
            kw: dict[str, Any] = {"color": style["color"]} if style.get("color") else {}
            kind = style.get("style", "line")
            if kind == "points":
                ax.plot(xs, ys, ls="", marker="o", ms=7, mec="white", mew=0.8, label=label, zorder=5, **kw)
            else:
                ax.plot(xs, ys, marker="o" if len(xs) <= 20 else None, ms=3, lw=1.6, label=label, zorder=3,
                        ls="--" if kind == "dashed" else "-", **kw)
        for i, (label, y) in enumerate(hline_list):
            ax.axhline(y, color=_HLINE_COLOURS[i % len(_HLINE_COLOURS)], ls="--", lw=1.4, label=label, zorder=4)
        for mark in mark_list:
            if len(mark) < 2:
                raise ValueError(f"a mark is (label, x) or (label, x, y); got {mark!r}")
            label, x = str(mark[0]), float(mark[1])
            y = mark[2] if len(mark) > 2 else None
            ax.axvline(x, color="#616161", ls=":", lw=1.2, zorder=2)
            if y is None:
                ax.annotate(label, xy=(x, 1), xycoords=("data", "axes fraction"), xytext=(3, -12),
                            textcoords="offset points", fontsize=8, color="#424242")
            else:
                ax.plot([x], [float(y)], marker="D", color="#c62828", ms=6, zorder=4)
                ax.annotate(label, xy=(x, float(y)), xytext=(6, 6), textcoords="offset points", fontsize=8,
                            color="#c62828")
        if span_list:  # after everything else: an open band reaches the final edge
            ends = [x for _, x0, x1 in span_list for x in (x0, x1) if x is not None]
            left, right = _open_limits(*ax.get_xlim(), ends, xscale == "log")
            for i, (label, x0, x1) in enumerate(span_list):
                ax.axvspan(left if x0 is None else x0, right if x1 is None else x1,
                           color=_SPAN_COLOURS[i % len(_SPAN_COLOURS)], alpha=0.15, lw=0, label=label, zorder=1)
            ax.set_xlim(left, right)
        from matplotlib.ticker import FuncFormatter, NullFormatter

        plain = FuncFormatter(lambda v, _pos: f"{v:,.0f}" if abs(v) >= 1000 else fmt(v))
        ax.xaxis.set_major_formatter(plain)  # 2,500,000 — not "2.5" with a "1e6" offset
        ax.yaxis.set_major_formatter(plain)
        for axis, lim, scale in ((ax.xaxis, ax.get_xlim(), xscale), (ax.yaxis, ax.get_ylim(), yscale)):
            if scale == "log":
                # within two decades label the minor ticks too (plainly: 200, not 2×10²), else none
                narrow = lim[0] > 0 and lim[1] / lim[0] < 100
                axis.set_minor_formatter(plain if narrow else NullFormatter())
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3, zorder=0)
        if len(lines) > 1 or mark_list or hline_list or span_list:
            if len(ax.get_legend_handles_labels()[0]) > 6:  # a long legend goes beside the plot, not on it
                ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
            else:
                ax.legend(fontsize=8, framealpha=0.9)
        ax.set_title(title, fontsize=12, fontweight="bold")

    return _render(build)


def histogram_png(
    values: Sequence[float],
    title: str,
    xlabel: str,
    bins: int | None = None,
    marks: Iterable[Sequence[Any]] | None = None,
) -> bytes | None:
    """Histogram of ``values`` (counts per bin; ``bins`` or matplotlib's ``auto`` rule).

    ``marks`` are ``(label, x)``: a solid vertical line in the legend (e.g. the bound the values
    are held to); a box states n, median, p99 and max, and how many values lie beyond the first
    mark.  ``None`` when there are no values.
    """
    xs = [float(v) for v in values]
    if not xs:
        return None
    if bins is not None and (isinstance(bins, bool) or not isinstance(bins, int) or bins < 1):
        raise ValueError(f"bins {bins!r} is not a whole number >= 1")
    mark_list = [tuple(m) for m in (marks or ())]
    for mark in mark_list:
        if len(mark) != 2:
            raise ValueError(f"a histogram mark is (label, x); got {mark!r}")

    def build(fig: "Figure") -> None:
        ax = fig.add_subplot()
        ax.hist(xs, bins=bins or "auto", color=SAMPLE_COLOUR, edgecolor="white", lw=0.5, zorder=2,
                label=f"values (n={len(xs)})")
        for i, (label, x) in enumerate(mark_list):
            ax.axvline(float(x), color=_HLINE_COLOURS[i % len(_HLINE_COLOURS)], lw=1.6, label=str(label), zorder=4)
        text = (f"n = {len(xs)}\nmedian = {fmt(stats.median(xs))}\np99 = {fmt(stats.percentile(xs, 99))}"
                f"\nmax = {fmt(max(xs))}")
        if mark_list:
            bound = float(mark_list[0][1])
            text += f"\nabove {fmt(bound)}: {sum(x > bound for x in xs)}"
        ax.text(0.99, 0.97, text, transform=ax.transAxes, ha="right", va="top", fontsize=9,
                bbox={"boxstyle": "round", "fc": "white", "ec": "#999999", "alpha": 0.9})
        ax.set_xlabel(xlabel)
        ax.set_ylabel("count")
        ax.grid(axis="y", alpha=0.3, zorder=0)
        ax.legend(fontsize=8, framealpha=0.9, loc="upper left")
        ax.set_title(title, fontsize=12, fontweight="bold")

    return _render(build)
