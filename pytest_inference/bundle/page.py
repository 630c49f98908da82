"""The one-page HTML summary of a run: target, environment fingerprint, a verdict per claim, charts.

One self-contained file (inline CSS and SVG; no script, no external URL: it opens from disk, in
a mail attachment, in a browser without network), readable without Allure:

* the target and the run (plugin version, start / end, host), the verdict tally;
* the environment fingerprint (``summary["environment"]``; "unknown" when the run has none);
* a row per claim: metric, test, measured figure, requirement, samples, the verdict as colour and
  text, the claim's message, and a small chart of the measured figure against its threshold with
  the samples as ticks where they lie on the figure's scale (median, p99, mean, min, max);
* the latency distributions from the per-request records (TTFT, TPOT, end-to-end: a histogram with
  the median and p99 marked) when the run wrote records;
* what the bundle holds, when the page is a bundle's.

The charts are hand-written SVG: no matplotlib needed, so the page is the same wherever it is
made. :func:`build_page` is pure (dicts in, text out).
"""

from __future__ import annotations

import html
import math
from typing import Any, Iterable, Mapping, Sequence

from .. import stats
from ..claims import FAIL, INCONCLUSIVE, MEASURED, OPS, PASS, fmt
from ..report.charts import MISS_COLOUR, SAMPLE_COLOUR, THRESHOLD_COLOUR, VERDICT_COLOURS
from . import finite

#: records fields drawn as distributions, with their titles
DISTRIBUTIONS = (("ttft_ms", "time to first token (ms)"), ("tpot_ms", "time per output token (ms)"),
                 ("e2e_ms", "end-to-end latency (ms)"))
#: records files drawn at most (the load runs first, capacity probes after)
MAX_RECORD_FILES = 4
#: statistics whose value lies on the samples' own scale (samples drawn as ticks beside it)
_ON_SAMPLE_SCALE = set(stats.QUANTILE_STATS) | {"min", "max", "mean"}

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1200px;color:#212121;padding:0 16px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
.sub{color:#555} table{border-collapse:collapse;width:100%} th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #eee;vertical-align:middle}
th{background:#fafafa;font-weight:600} td.num{text-align:right;white-space:nowrap}
.v{display:inline-block;padding:1px 8px;border-radius:10px;color:#fff;font-weight:600;font-size:12px;text-transform:uppercase}
.tally span{margin-right:10px} .msg{color:#444;font-size:12px;max-width:420px}
.env td:first-child{width:220px;color:#555} .unknown{color:#ef6c00} .hist{display:inline-block;margin:0 16px 12px 0}
code{font-size:12px}
"""


def _e(x: Any) -> str:
    return html.escape("" if x is None else str(x), quote=True)


def _badge(verdict: str) -> str:
    colour = VERDICT_COLOURS.get(verdict, VERDICT_COLOURS[MEASURED])
    return f'<span class="v" style="background:{colour}">{_e(verdict)}</span>'


# ------------------------------------------------------------------------------------------ SVG
def bullet_svg(claim: Mapping[str, Any], width: int = 280, height: int = 30) -> str:
    """Measured figure (a bar in the verdict's colour) against the threshold (a red line); the
    samples as ticks when they are on the figure's scale. Empty text when nothing was measured."""
    measured = finite(claim.get("measured"))
    if measured is None:
        return ""
    threshold = finite(claim.get("threshold"))
    stat = claim.get("stat")
    samples = [v for v in (finite(x) for x in claim.get("sample_values") or []) if v is not None]
    samples = samples if stat in _ON_SAMPLE_SCALE else []
    values = [measured, *([threshold] if threshold is not None else []), *samples]
    lo, hi = min(0.0, *values), max(0.0, *values)
    if hi == lo:
        hi = lo + 1.0
    span = (hi - lo) * 1.08
    pad = 4

    def x(v: float) -> float:
        return pad + (v - lo) / span * (width - 2 * pad)

    colour = VERDICT_COLOURS.get(str(claim.get("verdict")), VERDICT_COLOURS[MEASURED])
    parts = [f'<svg width="{width}" height="{height}" role="img" '
             f'aria-label="{_e(claim.get("metric"))}: {_e(fmt(measured))} vs threshold {_e(fmt(threshold))}">',
             f'<rect x="{pad}" y="{height / 2 - 1}" width="{width - 2 * pad}" height="2" fill="#e0e0e0"/>']
    op = claim.get("op")
    for v in samples:
        miss = threshold is not None and op in OPS and stat in stats.QUANTILE_STATS and not OPS[op](v, threshold)
        parts.append(f'<line x1="{x(v):.1f}" x2="{x(v):.1f}" y1="4" y2="10" stroke="{MISS_COLOUR if miss else SAMPLE_COLOUR}" '
                     'stroke-opacity="0.6"/>')
    x0 = x(max(lo, 0.0) if lo < 0 <= hi else lo)
    xm = x(measured)
    parts.append(f'<rect x="{min(x0, xm):.1f}" y="13" width="{max(abs(xm - x0), 1.5):.1f}" height="10" fill="{colour}">'
                 f'<title>{_e(stat)} = {_e(fmt(measured))}</title></rect>')
    if threshold is not None:
        xt = x(threshold)
        parts.append(f'<line x1="{xt:.1f}" x2="{xt:.1f}" y1="2" y2="{height - 2}" stroke="{THRESHOLD_COLOUR}" '
                     f'stroke-width="2"><title>threshold {_e(op)} {_e(fmt(threshold))}</title></line>')
    parts.append("</svg>")
    return "".join(parts)


def histogram_svg(values: Sequence[float], title: str, width: int = 520, height: int = 200) -> str:
    """Histogram with the median and p99 marked, the counts on the y axis; empty text for < 2 values."""
    xs = [float(v) for v in values]
    if len(xs) < 2:
        return ""
    lo, hi = min(xs), max(xs)
    if hi == lo:
        lo, hi = lo - 0.5, hi + 0.5
    bins = max(5, min(40, math.ceil(math.sqrt(len(xs)))))
    counts = [0] * bins
    for v in xs:
        counts[min(bins - 1, int((v - lo) / (hi - lo) * bins))] += 1
    left, right, top, bottom = 40, 10, 26, 30
    pw, ph = width - left - right, height - top - bottom
    peak = max(counts)

    def x(v: float) -> float:
        return left + (v - lo) / (hi - lo) * pw

    bw = pw / bins
    parts = [f'<svg width="{width}" height="{height}" role="img" aria-label="{_e(title)}">',
             f'<text x="{left}" y="16" font-size="13" font-weight="600">{_e(title)}</text>',
             f'<line x1="{left}" x2="{left + pw}" y1="{top + ph}" y2="{top + ph}" stroke="#999"/>']
    for i, n in enumerate(counts):
        if n:
            h = ph * n / peak
            parts.append(f'<rect x="{left + i * bw + 0.5:.1f}" y="{top + ph - h:.1f}" width="{max(bw - 1, 1):.1f}" '
                         f'height="{h:.1f}" fill="{SAMPLE_COLOUR}"><title>{n}</title></rect>')
    p50, p99 = stats.median(xs), stats.percentile(xs, 99)
    for label, v, colour in (("median", p50, "#212121"), ("p99", p99, THRESHOLD_COLOUR)):
        near_end = x(v) > left + 0.75 * pw
        parts.append(f'<line x1="{x(v):.1f}" x2="{x(v):.1f}" y1="{top}" y2="{top + ph}" stroke="{colour}" stroke-width="1.5" '
                     f'stroke-dasharray="4 3"/><text x="{x(v) + (-3 if near_end else 3):.1f}" y="{top + 10}" '
                     f'font-size="11" fill="{colour}" text-anchor="{"end" if near_end else "start"}">'
                     f'{label} {_e(fmt(v))}</text>')
    parts.append(f'<text x="{left}" y="{height - 10}" font-size="11">{_e(fmt(lo))}</text>'
                 f'<text x="{left + pw}" y="{height - 10}" font-size="11" text-anchor="end">{_e(fmt(hi))}</text>'
                 f'<text x="{left - 4}" y="{top + 8}" font-size="11" text-anchor="end">{peak}</text>'
                 f'<text x="{left + pw / 2:.0f}" y="{height - 10}" font-size="11" text-anchor="middle">n = {len(xs)}</text>')
    parts.append("</svg>")
    return "".join(parts)


# ------------------------------------------------------------------------------------------ sections
def _environment_rows(env: Any) -> list[tuple[str, str]]:
    if not isinstance(env, dict):
        return [("hardware", "unknown (the run recorded no environment fingerprint)")]
    acc = env.get("accelerator") if isinstance(env.get("accelerator"), dict) else {}
    cpu = env.get("cpu") if isinstance(env.get("cpu"), dict) else {}
    vllm = env.get("vllm") if isinstance(env.get("vllm"), dict) else {}
    model = env.get("model") if isinstance(env.get("model"), dict) else {}
    target = env.get("target") if isinstance(env.get("target"), dict) else {}

    def join(*xs: Any, sep: str = " ") -> str:
        return sep.join(str(x) for x in xs if x not in (None, ""))

    accel = join(acc.get("vendor"), acc.get("model"), f"x{acc['count']}" if acc.get("count") else None)
    if acc.get("unknown"):
        accel = join(accel, f"(unknown: {acc['unknown']})")
    elif acc.get("note"):
        accel = join(accel, f"({acc['note']})")
    rows = [
        ("hardware", env.get("hardware") or "unknown"),
        ("accelerator", accel or "unknown"),
        ("driver / runtime", join(acc.get("driver"), acc.get("runtime"), sep=" / ") or "unknown"),
        ("read with", acc.get("tool") or "unknown"),
        ("CPU", join(cpu.get("model"), f"x{cpu['count']}" if cpu.get("count") else None) or "unknown"),
        ("kernel / OS", join(env.get("kernel"), env.get("os"), sep=" / ") or "unknown"),
        ("vLLM", join(vllm.get("version"), f"({vllm['source']})" if vllm.get("source") else None) or "unknown"),
        ("model", join(model.get("name"), f"@ {model['revision']}" if model.get("revision") else None) or "unknown"),
        ("plugin", env.get("plugin_version") or "unknown"),
        ("target profile", join(target.get("name"), f"sha256 {target['sha256']}" if target.get("sha256") else None)
         or "unknown"),
    ]
    return [(k, str(v)) for k, v in rows]


def _claims_table(claims: Sequence[Mapping[str, Any]]) -> str:
    out = ['<table class="claims"><thead><tr><th>verdict</th><th>claim</th><th>measured</th><th>requirement</th>'
           '<th>n</th><th>measured vs threshold</th><th>message</th></tr></thead><tbody>']
    order = {FAIL: 0, INCONCLUSIVE: 1, PASS: 2, MEASURED: 3}
    for c in sorted(claims, key=lambda c: order.get(str(c.get("verdict")), 4)):
        unit = c.get("unit") or ""
        measured = finite(c.get("measured"))
        req = (f"{c.get('stat')} {c.get('op')} {fmt(finite(c.get('threshold')))} {unit}".strip()
               if c.get("op") else "none (measured only)")
        test = str(c.get("test") or "")
        out.append(
            f'<tr data-verdict="{_e(c.get("verdict"))}"><td>{_badge(str(c.get("verdict")))}</td>'
            f'<td><b>{_e(c.get("metric"))}</b><br><code>{_e(test.rsplit("/", 1)[-1])}</code></td>'
            f'<td class="num">{_e(fmt(measured) + (" " + unit if unit and measured is not None else ""))}'
            f'<br><span class="sub">{_e(c.get("stat"))}</span></td>'
            f'<td>{_e(req)}</td><td class="num">{_e(c.get("samples"))}</td><td>{bullet_svg(c)}</td>'
            f'<td class="msg">{_e(c.get("message") or c.get("reason"))}</td></tr>')
    out.append("</tbody></table>")
    return "".join(out)


def _record_files(records: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[str]:
    names = [n for n in records if any(finite(r.get(k)) is not None for r in records[n] for k, _ in DISTRIBUTIONS)]
    return sorted(names, key=lambda n: (n.startswith("capacity-probe"), n))


def _distributions(records: Mapping[str, Sequence[Mapping[str, Any]]]) -> str:
    names = _record_files(records)
    if not names:
        return '<p class="sub">No per-request records in this run (the load suite writes them).</p>'
    out = []
    for name in names[:MAX_RECORD_FILES]:
        rows = records[name]
        ok = sum(1 for r in rows if r.get("ok") is True)
        out.append(f'<h3>{_e(name)} <span class="sub">({len(rows)} requests, {ok} completed)</span></h3>')
        for key, title in DISTRIBUTIONS:
            xs = [v for v in (finite(r.get(key)) for r in rows) if v is not None]
            svg = histogram_svg(xs, title)
            if svg:
                out.append(f'<div class="hist">{svg}</div>')
    if len(names) > MAX_RECORD_FILES:
        rest = ", ".join(names[MAX_RECORD_FILES:])
        out.append(f'<p class="sub">Not drawn ({len(names) - MAX_RECORD_FILES} more records files): {_e(rest)}</p>')
    return "".join(out)


def _tally(claims: Iterable[Mapping[str, Any]]) -> str:
    counts: dict[str, int] = {}
    for c in claims:
        counts[str(c.get("verdict"))] = counts.get(str(c.get("verdict")), 0) + 1
    return "".join(f"<span>{_badge(v)} {n}</span>" for v, n in sorted(counts.items()))


def _run_line(run: Mapping[str, Any]) -> str:
    bits = [f"run {run.get('start') or '?'} → {run.get('end') or '?'}" if run.get("start") or run.get("end") else None,
            f"plugin {run['plugin_version']}" if run.get("plugin_version") else None,
            f"host {run['host']}" if run.get("host") else None]
    return " · ".join(b for b in bits if b)


def build_page(summary: Mapping[str, Any], *, records: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
               info: Mapping[str, Any] | None = None) -> str:
    """The page's HTML text (pure). ``info``: the bundle's bundle.json (adds what it holds)."""
    target = summary.get("target") if isinstance(summary.get("target"), dict) else {}
    run = summary.get("run") if isinstance(summary.get("run"), dict) else {}
    claims = [c for c in summary.get("claims") or [] if isinstance(c, dict)]
    name = target.get("name") or "unknown target"
    env = summary.get("environment")
    env_rows = "".join(f'<tr><td>{_e(k)}</td><td class="{"unknown" if v.startswith("unknown") else ""}">{_e(v)}</td></tr>'
                       for k, v in _environment_rows(env))
    head = (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<title>pytest-inference: {_e(name)}</title><style>{_CSS}</style></head><body>')
    parts = [head,
             f'<h1>pytest-inference — target <span id="target">{_e(name)}</span></h1>',
             f'<p class="sub">{_e(target.get("description") or "")}</p>',
             f'<p class="sub">{_e(_run_line(run))}</p>',
             f'<p class="tally">{_tally(claims)}</p>',
             '<h2>Environment</h2>', f'<table class="env">{env_rows}</table>',
             f'<h2>Claims ({len(claims)})</h2>', _claims_table(claims) if claims else "<p>No claims.</p>",
             '<h2>Latency distributions (per-request records)</h2>', _distributions(records or {})]
    if info:
        held = "".join(f'<tr><td><code>{_e(c.get("path"))}</code></td><td class="num">{_e(c.get("bytes") if c.get("bytes") is not None else "")}</td></tr>'
                       for c in info.get("contents") or [] if isinstance(c, dict))
        allure = info.get("allure_html") or {}
        skipped = "".join(f"<li><code>{_e(s.get('path'))}</code>: {_e(s.get('reason'))}</li>"
                          for s in info.get("skipped") or [] if isinstance(s, dict))
        parts += ['<h2>Bundle</h2>',
                  f'<p class="sub">created {_e(info.get("created"))} · format {_e(info.get("format"))} '
                  f'v{_e(info.get("version"))} · check with <code>pytest-inference verify BUNDLE</code></p>',
                  f'<p>Allure HTML: {_e(allure.get("path") or allure.get("reason") or "none")}</p>',
                  f'<table><thead><tr><th>file</th><th>bytes</th></tr></thead><tbody>{held}</tbody></table>']
        if skipped:
            parts.append(f"<p>Left out of the bundle:</p><ul>{skipped}</ul>")
    parts.append("</body></html>\n")
    return "".join(parts)
