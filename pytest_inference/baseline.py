"""Compare a run's claims with a saved ``summary.json`` and flag regressions.

Like pytest-benchmark's ``--benchmark-compare-fail``, but for every claim and direction-aware:
a claim whose requirement is ``<``/``<=`` is better lower, ``>``/``>=`` better higher; without
one, the metric catalog's ``better`` says (:mod:`pytest_inference.catalog`). The baseline is
read-only, so every xdist worker can judge its own tests' claims.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .claims import Claim, direction, fmt

DEFAULT_TOLERANCE = 0.10


class BaselineError(Exception):
    """An unusable baseline file or tolerance; one line for the user."""


def parse_tolerance(text: str | None) -> float:
    if text is None or text == "":
        return DEFAULT_TOLERANCE
    raw = str(text).strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise BaselineError(f"--inference-baseline-tolerance {text!r} is not a percentage like 10%") from None
    if not 0 <= value < 10:
        raise BaselineError(f"--inference-baseline-tolerance {text!r} is out of range")
    return value


def _claim_problem(c: Any) -> str | None:
    """What is wrong with one baseline claim entry (one phrase), or None."""
    if not isinstance(c, dict):
        return "is not an object"
    metric = c.get("metric")
    if not isinstance(metric, str) or not metric:
        return f"has no metric name (metric must be a string; got {type(metric).__name__})"
    measured = c.get("measured")
    if measured is not None:
        if isinstance(measured, bool) or not isinstance(measured, (int, float)):
            return f"({metric}) measured must be a number or null; got {type(measured).__name__}"
        if not math.isfinite(measured):
            return f"({metric}) measured is {measured}, not a finite number"
    test = c.get("test")
    if test is not None and not isinstance(test, str):
        return f"({metric}) test must be a string; got {type(test).__name__}"
    for key in ("op", "unit"):
        if c.get(key) is not None and not isinstance(c.get(key), str):
            return f"({metric}) {key} must be a string; got {type(c.get(key)).__name__}"
    return None


@dataclass
class Baseline:
    path: str
    tolerance: float
    by_test_metric: dict[tuple[str, str], dict[str, Any]]
    by_metric: dict[str, dict[str, Any]]

    @classmethod
    def load(cls, path: str, tolerance: str | None = None) -> "Baseline":
        from .report.summary import SummaryError, read_summary

        tol = parse_tolerance(tolerance)
        try:
            data = read_summary(path, f"baseline {path}")
        except SummaryError as exc:
            raise BaselineError(str(exc)) from None
        by_tm: dict[tuple[str, str], dict[str, Any]] = {}
        by_m: dict[str, dict[str, Any]] = {}
        for i, c in enumerate(data["claims"]):
            problem = _claim_problem(c)
            if problem:
                raise BaselineError(f"baseline {path} has a malformed claim entry: claims[{i}] {problem}")
            by_tm[(c.get("test") or "", c["metric"])] = c
            by_m.setdefault(c["metric"], c)
        return cls(str(path), tol, by_tm, by_m)

    def compare(self, claim: Claim) -> dict[str, Any] | None:
        """The ``baseline`` block of a claim, or None when the baseline has no such metric."""
        base = self.by_test_metric.get((claim.test or "", claim.metric)) or self.by_metric.get(claim.metric)
        if base is None or base.get("measured") is None or claim.measured is None:
            return None
        old, new = float(base["measured"]), float(claim.measured)
        better = direction(claim.op, claim.metric) or direction(base.get("op"), claim.metric)
        change = None if old == 0 else (new - old) / abs(old)
        if better == "lower":
            regression = new > old * (1 + self.tolerance) if old > 0 else new > old
        elif better == "higher":
            regression = new < old * (1 - self.tolerance) if old > 0 else new < old
        else:
            regression = False
        return {
            "file": self.path,
            "measured": old,
            "change_pct": None if change is None else round(100 * change, 2),
            "better": better,
            "tolerance_pct": round(100 * self.tolerance, 2),
            "regression": bool(regression),
        }

    def describe(self, claim: Claim) -> str:
        b = claim.baseline or {}
        unit = f" {claim.unit}" if claim.unit else ""
        change = b.get("change_pct")
        delta = f"{change:+.1f}%" if change is not None else "changed"
        return (
            f"{claim.metric} regressed {delta} against baseline {b.get('file')} "
            f"({fmt(b.get('measured'))} -> {fmt(claim.measured)}{unit}; {b.get('better')} is better, "
            f"tolerance {b.get('tolerance_pct'):g}%)"
        )
