"""The seed's side-by-side table: self-hosted vs serverless, from the claims a session made.

Built from claims (not from fixtures), so it also works when the warm and serverless suites
ran on different xdist workers.
"""

from __future__ import annotations

from typing import Any, Sequence

from ..claims import Claim, fmt

ROWS = (
    ("median TTFT", "warm.ttft_median_ms", "serverless.ttft_median_ms", "ms"),
    ("TTFT spread (max - min)", "warm.ttft_spread_ms", "serverless.ttft_spread_ms", "ms"),
    ("output throughput", "warm.output_tok_s", "serverless.output_tok_s", "tok/s"),
    ("cold start", "coldstart.total_s", "serverless.cold_probe_ms", None),
)


def side_by_side(claims: Sequence[Claim]) -> list[dict[str, Any]] | None:
    """Rows when the session measured both a self-hosted server and a serverless endpoint."""
    by_metric = {c.metric: c for c in claims if c.measured is not None}
    if not any(m.startswith("warm.") for m in by_metric) or not any(m.startswith("serverless.") for m in by_metric):
        return None
    rows = []
    for label, own, managed, _unit in ROWS:
        a, b = by_metric.get(own), by_metric.get(managed)
        if a is None and b is None:
            continue
        rows.append({
            "row": label,
            "self_hosted": None if a is None else {"metric": own, "measured": a.measured, "unit": a.unit, "samples": a.count},
            "serverless": None if b is None else {"metric": managed, "measured": b.measured, "unit": b.unit, "samples": b.count},
        })
    return rows


def format_rows(rows: list[dict[str, Any]]) -> list[str]:
    def cell(x):
        return "-" if x is None else f"{fmt(x['measured'])} {x['unit'] or ''}".strip()

    table = [("", "self-hosted", "serverless")] + [(r["row"], cell(r["self_hosted"]), cell(r["serverless"])) for r in rows]
    widths = [max(len(t[i]) for t in table) for i in range(3)]
    return ["  ".join(v.ljust(w) for v, w in zip(t, widths)).rstrip() for t in table]
