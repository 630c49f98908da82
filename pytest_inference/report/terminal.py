"""The end-of-session table: metric, measured, requirement, verdict, margin."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ..claims import FAIL, INCONCLUSIVE, MEASURED, PASS, Claim, fmt

_MARKUP = {PASS: {"green": True}, FAIL: {"red": True, "bold": True}, INCONCLUSIVE: {"yellow": True}, MEASURED: {}}


def rows(claims: Sequence[Claim]) -> list[tuple[str, ...]]:
    out = []
    for c in claims:
        measured = f"{fmt(c.measured)} {c.unit or ''}".strip()
        margin = ""
        if c.margin is not None and c.verdict != MEASURED:
            margin = f"{'+' if c.margin >= 0 else ''}{fmt(c.margin)}"
            if c.margin_pct is not None:
                margin += f" ({'+' if c.margin_pct >= 0 else ''}{c.margin_pct:.0f}%)"
        verdict = c.verdict + (" REGRESSED" if c.regressed else "")
        out.append((c.metric, measured, c.requirement_text() if c.op else "-", str(c.count), verdict, margin))
    return out


def aligned(header: Sequence[str], body: Sequence[Sequence[str]]) -> list[str]:
    """A plain-text table: the header, a rule of dashes, then the rows, each column as wide as its
    widest cell (pure)."""
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    line = lambda r: "  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip()  # noqa: E731
    return [line(header), line(tuple("-" * w for w in widths))] + [line(r) for r in body]


def format_table(claims: Sequence[Claim]) -> list[tuple[str, str]]:
    """Lines of the table with the verdict each colours by (pure, for tests)."""
    lines = aligned(("metric", "measured", "requirement", "n", "verdict", "margin"), rows(claims))
    return list(zip(lines, ["", ""] + [c.verdict for c in claims]))


def write_summary(tr, claims: Sequence[Claim], target, summary_path: Path) -> None:
    tr.write_sep("=", f"inference claims (target {target.name})")
    for text, verdict in format_table(claims):
        tr.write_line(text, **_MARKUP.get(verdict, {}))
    counts: dict[str, int] = {}
    for c in claims:
        counts[c.verdict] = counts.get(c.verdict, 0) + 1
    tally = ", ".join(f"{n} {v}" for v, n in sorted(counts.items()))
    regressed = sum(1 for c in claims if c.regressed)
    if regressed:
        tally += f", {regressed} regressed vs baseline"
    tr.write_line(f"{tally}; report: {summary_path}")
    for c in claims:
        if c.verdict in (FAIL, INCONCLUSIVE):
            tr.write_line(f"  {c.verdict.upper()}: {c.message()}", **_MARKUP[c.verdict])


# --- the terminal sink: an implementation of pytest_inference_terminal_summary (hookspec.py) ----------
def pytest_inference_terminal_summary(config, terminalreporter, claims) -> None:
    """The unmeasured-run notice, the claims table and the self-hosted vs serverless comparison."""
    from ..session import SESSION_KEY

    state = config.stash.get(SESSION_KEY, None)
    if state is None:
        return
    tr = terminalreporter
    if state.measured_nothing():
        allowed = config.getoption("inference_allow_unmeasured")
        tr.write_sep("=", "inference: no claim was measured", yellow=allowed, red=not allowed)
        for nodeid, why in sorted(state.unmeasured.items()):
            tr.write_line(f"  {nodeid}: {state.redact(why)}")
        tr.write_line(
            "a gate that measured nothing is not green" + (
                " (allowed by --inference-allow-unmeasured)" if allowed
                else "; exit status 1 (--inference-allow-unmeasured accepts it)"))
    if not claims:
        return
    write_summary(tr, claims, state.target, state.summary_path or state.summary_path_hint())
    from .comparison import format_rows, side_by_side

    rows = side_by_side(claims)
    if rows:
        tr.write_sep("-", "self-hosted vs serverless")
        for line in format_rows(rows):
            tr.write_line(line)
