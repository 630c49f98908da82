"""The seed's side-by-side table: self-hosted vs serverless, from the claims a session made.

Built from claims (not from fixtures), so it also works when the warm and serverless suites
ran on different xdist workers.
"""

from __future__ import annotations

from typing import Any, Sequence

from .. import catalog
from ..claims import Claim, fmt

#: (row label, self-hosted metric, serverless metric); units come from the claims, else the catalog
ROWS = (
    ("median TTFT", "warm.ttft_median_ms", "serverless.ttft_median_ms"),
    ("TTFT spread (max - min)", "warm.ttft_spread_ms", "serverless.ttft_spread_ms"),
    ("output throughput", "warm.output_tok_s", "serverless.output_tok_s"),
    ("cold start", "coldstart.total_s", "serverless.cold_probe_ms"),
)


def _cell(c: Claim | None) -> dict[str, Any] | None:
    if c is None:
        return None
    known = catalog.find(c.metric)
    unit = c.unit or (known.unit if known else None)
    return {"metric": c.metric, "measured": c.measured, "unit": unit, "samples": c.count}


def side_by_side(claims: Sequence[Claim]) -> list[dict[str, Any]] | None:
    """Rows when the session measured both a self-hosted server and a serverless endpoint."""
    by_metric = {c.metric: c for c in claims if c.measured is not None}
    if not any(m.startswith("warm.") for m in by_metric) or not any(m.startswith("serverless.") for m in by_metric):
        return None
    rows = []
    for label, own, managed in ROWS:
        a, b = by_metric.get(own), by_metric.get(managed)
        if a is None and b is None:
            continue
        rows.append({"row": label, "self_hosted": _cell(a), "serverless": _cell(b)})
    return rows


def format_rows(rows: list[dict[str, Any]]) -> list[str]:
    def cell(x):
        return "-" if x is None else f"{fmt(x['measured'])} {x['unit'] or ''}".strip()

    table = [("", "self-hosted", "serverless")] + [(r["row"], cell(r["self_hosted"]), cell(r["serverless"])) for r in rows]
    widths = [max(len(t[i]) for t in table) for i in range(3)]
    return ["  ".join(v.ljust(w) for v, w in zip(t, widths)).rstrip() for t in table]
