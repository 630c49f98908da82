"""Compare two runs claim by claim on their stored samples: improved, regressed, no change or inconclusive.

Claims are paired by (test, metric) — the k-th claim of a metric in a test with the k-th of the
other run — and each pair is judged on the samples ``summary.json`` stores with the claim
(``sample_values``), for the claim's own statistic (``stat``: median, p99, mean, attainment ...):

* **median, p50 … p999, mean, std, attainment** — a percentile *bootstrap* confidence interval of
  the difference ``stat(new) - stat(old)``: each side is resampled with replacement on its own
  (:data:`RESAMPLES` times — proportionally fewer, down to :data:`MIN_RESAMPLES`, when the two runs
  hold over 2,000 samples together — seeded from the test and metric, so the same inputs give the
  same interval and verdict), the statistic computed on each resample, and the interval's ends are the
  (1 - c)/2 and (1 + c)/2 quantiles of the differences at ``--confidence`` c (default 0.95).
  An interval that excludes 0 is a significant change; one that includes 0 is *no change*.
* **min, max, spread** — the bootstrap does not work for a sample's extremes (a resample can never
  go beyond them), so these use a two-sided *permutation test* on the same difference: the pooled
  samples are split at random into groups of the two runs' sizes :data:`RESAMPLES` times; the
  p-value is the share of splits with a difference at least as large as the observed one (plus one
  over resamples plus one). p <= 1 - c is a significant change; otherwise *no change*.
* **value, sum, count** — one figure per run or a total that depends on how many requests ran:
  there is nothing to resample; *inconclusive* with that reason. Also inconclusive: a figure that is
  not the statistic of its stored samples (measured another way, e.g. tokens/s over wall time).

A significant change is *improved* or *regressed* by the claim's direction
(:func:`pytest_inference.claims.direction`: the requirement's ``<``/``>=``, else the metric
catalog's ``better``); with no direction it is *inconclusive* (changed, but which way is better is
not known). Too few samples is *inconclusive* with the count: each side needs at least
:data:`MIN_SAMPLES`, and a quantile ``q`` needs as many as put the sample maximum beyond it at the
confidence (:func:`pytest_inference.stats.min_samples_for_quantile` of max(q, 1 - q); p99 at 0.95:
299) — below that a p99 is the sample's largest value and no interval of it means anything.
A claim in only one run, or not measured on a side, is *inconclusive* too.

This is not a fixed-percentage rule: a 3 % shift in a tight distribution can be significant and a
30 % shift of a noisy one not. Each row is its own test at ``--confidence``: across many claims
about (1 - c)/2 of the unchanged ones will show as regressed by chance (for a gate over many
claims, raise ``--confidence``). Runs on different hardware are refused by the CLI unless
``--allow-different-hardware``; then every row carries "different hardware".

Exit status of ``pytest-inference compare``: 0 when the comparison was printed and nothing
regressed, 1 when at least one claim regressed (a CI gate, as pytest-benchmark's
``--benchmark-compare-fail``), 2 for bad input or a refused comparison (one line).
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import asdict, dataclass
from typing import Any, Sequence

from .. import stats
from ..claims import direction, fmt
from . import finite

IMPROVED, REGRESSED, NO_CHANGE, INCONCLUSIVE = "improved", "regressed", "no change", "inconclusive"
VERDICTS = (IMPROVED, REGRESSED, NO_CHANGE, INCONCLUSIVE)
#: resamples (bootstrap) or random splits (permutation) per claim
RESAMPLES = 2000
#: ... but no fewer than this many when the claims carry many samples (the work is resamples x samples)
MIN_RESAMPLES = 500
#: samples in both runs together above which the resamples shrink (down to MIN_RESAMPLES)
_FULL_RESAMPLES_UP_TO = 2000
#: fewest samples per side for any test
MIN_SAMPLES = 10
#: statistics compared with a bootstrap interval / a permutation test
BOOTSTRAP_STATS = frozenset(stats.QUANTILE_STATS) | {"mean", "std"} | set(stats.BINOMIAL_STATS)
PERMUTATION_STATS = frozenset({"min", "max", "spread"})
DIFFERENT_HARDWARE = "different hardware"


@dataclass
class Row:
    """One claim compared."""

    test: str | None
    metric: str
    stat: str | None
    unit: str | None
    old: float | None
    new: float | None
    n_old: int
    n_new: int
    better: str | None
    verdict: str
    reason: str
    method: str | None = None           # "bootstrap" | "permutation" | None
    ci_low: float | None = None         # bootstrap interval of new - old
    ci_high: float | None = None
    p_value: float | None = None        # permutation test
    resamples: int | None = None        # bootstrap resamples / permutation splits drawn
    note: str | None = None             # "different hardware"

    @property
    def change(self) -> float | None:
        return None if self.old is None or self.new is None else self.new - self.old

    @property
    def change_pct(self) -> float | None:
        c = self.change
        return None if c is None or not self.old else 100.0 * c / abs(self.old)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "change": self.change, "change_pct": self.change_pct}


def needed_samples(stat: str, confidence: float) -> int:
    """Fewest samples per side this module tests ``stat`` with (see the module docstring)."""
    q = stats.QUANTILE_STATS.get(stat)
    if q is None:
        return MIN_SAMPLES
    return max(MIN_SAMPLES, stats.min_samples_for_quantile(max(q, 1 - q), confidence))


def resamples_for(samples: int, resamples: int = RESAMPLES) -> int:
    """``resamples`` for up to 2,000 samples in all, proportionally fewer above (never below
    :data:`MIN_RESAMPLES`), so a compare of 10,000-request runs stays seconds per claim."""
    if samples <= _FULL_RESAMPLES_UP_TO:
        return resamples
    return max(min(MIN_RESAMPLES, resamples), resamples * _FULL_RESAMPLES_UP_TO // samples)


def _seed(*parts: Any) -> int:
    return int.from_bytes(hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()[:8], "big")


def bootstrap_interval(old: Sequence[float], new: Sequence[float], stat: str, confidence: float, *,
                       resamples: int = RESAMPLES, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of ``stat(new) - stat(old)`` at ``confidence`` (pure, seeded)."""
    rng = random.Random(seed)
    a, b = list(old), list(new)
    diffs = [stats.compute(stat, rng.choices(b, k=len(b))) - stats.compute(stat, rng.choices(a, k=len(a)))
             for _ in range(resamples)]
    tail = 100.0 * (1.0 - confidence) / 2.0
    return stats.percentile(diffs, tail), stats.percentile(diffs, 100.0 - tail)


def permutation_p(old: Sequence[float], new: Sequence[float], stat: str, *, resamples: int = RESAMPLES,
                  seed: int = 0) -> float:
    """Two-sided permutation p-value of ``stat(new) - stat(old)`` (pure, seeded)."""
    rng = random.Random(seed)
    observed = abs(stats.compute(stat, new) - stats.compute(stat, old))
    pooled = list(old) + list(new)
    k = len(old)
    hits = 0
    for _ in range(resamples):
        rng.shuffle(pooled)
        if abs(stats.compute(stat, pooled[k:]) - stats.compute(stat, pooled[:k])) >= observed - 1e-12 * max(1.0, observed):
            hits += 1
    return (hits + 1) / (resamples + 1)


def _samples(c: dict[str, Any]) -> list[float]:
    xs = c.get("sample_values")
    if not isinstance(xs, list):
        return []
    return [v for v in map(finite, xs) if v is not None]


def _consistent(c: dict[str, Any], stat: str, xs: list[float]) -> bool:
    """Is the claim's figure the ``stat`` of its stored samples?"""
    m = finite(c.get("measured"))
    if m is None:
        return True
    try:
        v = stats.compute(stat, xs)
    except ValueError:
        return False
    return abs(v - m) <= 1e-6 * max(1.0, abs(m))


def judge_pair(old: dict[str, Any], new: dict[str, Any], *, confidence: float = 0.95,
               resamples: int = RESAMPLES) -> Row:
    """Compare one claim of the old run with the same claim of the new one (both ``Claim.to_dict`` dicts)."""
    metric = str(new.get("metric") or old.get("metric"))
    stat = new.get("stat") or old.get("stat")
    a, b = _samples(old), _samples(new)
    better = direction(new.get("op"), metric) or direction(old.get("op"), metric)
    row = Row(test=new.get("test") or old.get("test"), metric=metric, stat=stat, unit=new.get("unit") or old.get("unit"),
              old=finite(old.get("measured")), new=finite(new.get("measured")), n_old=len(a), n_new=len(b),
              better=better, verdict=INCONCLUSIVE, reason="")
    if old.get("stat") != new.get("stat"):
        row.reason = f"the statistic changed ({old.get('stat')} -> {new.get('stat')})"
        return row
    for side, c, xs in (("old", old, a), ("new", new, b)):
        if finite(c.get("measured")) is None:
            row.reason = f"not measured in the {side} run" + (f" ({c.get('reason')})" if c.get("reason") else "")
            return row
        if not xs:
            row.reason = f"the {side} run stored no samples"
            return row
    if stat not in BOOTSTRAP_STATS and stat not in PERMUTATION_STATS:
        row.reason = (f"a {stat} is one figure per run: there are no samples to test" if stat == "value" else
                      f"a {stat} depends on how many requests ran: there are no samples to test"
                      if stat in ("sum", "count") else f"no two-sample test for the statistic {stat!r}")
        return row
    for side, c, xs in (("old", old, a), ("new", new, b)):
        if not _consistent(c, stat, xs):
            row.reason = f"the {side} figure is not the {stat} of its stored samples: they cannot test it"
            return row
    need = needed_samples(stat, confidence)
    if min(len(a), len(b)) < need:
        row.reason = (f"too few samples ({len(a)} old, {len(b)} new): comparing a {stat} needs >= {need} "
                      f"on each side at {confidence:.0%}")
        return row
    seed = _seed(row.test or "", metric, stat)
    row.resamples = resamples_for(len(a) + len(b), resamples)
    if stat in PERMUTATION_STATS:
        row.method = "permutation"
        row.p_value = permutation_p(a, b, stat, resamples=row.resamples, seed=seed)
        significant = row.p_value <= 1.0 - confidence
        evidence = f"permutation p = {row.p_value:.3g}"
    else:
        row.method = "bootstrap"
        row.ci_low, row.ci_high = bootstrap_interval(a, b, stat, confidence, resamples=row.resamples, seed=seed)
        significant = row.ci_low > 0 or row.ci_high < 0
        unit = f" {row.unit}" if row.unit else ""
        evidence = f"{confidence:.0%} interval of the change {fmt(row.ci_low)} .. {fmt(row.ci_high)}{unit}"
    change = row.change or 0.0
    if not significant:
        row.verdict, row.reason = NO_CHANGE, evidence
    elif better is None:
        row.reason = f"changed ({evidence}) but neither the claim nor the catalog says which way is better"
    else:
        worse = change > 0 if better == "lower" else change < 0
        row.verdict = REGRESSED if worse else IMPROVED
        row.reason = f"{evidence}; {better} is better"
    return row


def _keyed(claims: Sequence[Any]) -> dict[tuple[str, str, int], dict[str, Any]]:
    out: dict[tuple[str, str, int], dict[str, Any]] = {}
    seen: dict[tuple[str, str], int] = {}
    for c in claims:
        if not isinstance(c, dict) or not isinstance(c.get("metric"), str):
            continue
        k = (str(c.get("test") or ""), c["metric"])
        i = seen.get(k, 0)
        seen[k] = i + 1
        out[(*k, i)] = c
    return out


def _absent(c: dict[str, Any], side: str) -> Row:
    return Row(test=c.get("test"), metric=str(c.get("metric")), stat=c.get("stat"), unit=c.get("unit"),
               old=finite(c.get("measured")) if side == "new" else None,
               new=finite(c.get("measured")) if side == "old" else None,
               n_old=len(_samples(c)) if side == "new" else 0, n_new=len(_samples(c)) if side == "old" else 0,
               better=direction(c.get("op"), str(c.get("metric"))), verdict=INCONCLUSIVE,
               reason=f"not in the {side} run")


def compare_summaries(old: dict[str, Any], new: dict[str, Any], *, confidence: float = 0.95,
                      resamples: int = RESAMPLES, note: str | None = None) -> list[Row]:
    """One :class:`Row` per claim in either run: the new run's order, then claims only the old had."""
    if not 0.5 <= confidence < 1:
        raise ValueError(f"confidence {confidence!r} must lie in [0.5, 1)")
    a, b = _keyed(old.get("claims") or []), _keyed(new.get("claims") or [])
    rows = []
    for key, c in b.items():
        rows.append(judge_pair(a[key], c, confidence=confidence, resamples=resamples) if key in a
                    else _absent(c, "old"))
    rows += [_absent(c, "new") for key, c in a.items() if key not in b]
    if note:
        for r in rows:
            r.note = note
    return rows


def hardware_problem(old_hw: str, new_hw: str) -> str | None:
    """Why two runs' environment["hardware"] do not count as the same hardware, or None."""
    if old_hw == "unknown" or new_hw == "unknown":
        side = "old" if old_hw == "unknown" else "new"
        return f"the {side} run's hardware is unknown (no environment fingerprint)"
    if old_hw != new_hw:
        return f"different hardware: {old_hw!r} vs {new_hw!r}"
    return None


def format_rows(rows: Sequence[Row]) -> list[str]:
    from ..report.terminal import aligned

    def num(x: float | None, unit: str | None) -> str:
        return "-" if x is None else f"{fmt(x)} {unit or ''}".strip()

    body = []
    for r in rows:
        pct = r.change_pct
        change = "-" if r.change is None else f"{'+' if r.change >= 0 else ''}{fmt(r.change)}"
        if pct is not None:
            change += f" ({pct:+.1f}%)"
        verdict = r.verdict + (f" [{r.note}]" if r.note else "")
        name = f"{r.test.rsplit('::', 1)[-1]} {r.metric}" if r.test else r.metric
        body.append((name, r.stat or "-", num(r.old, r.unit), num(r.new, r.unit), change, f"{r.n_old}/{r.n_new}",
                     verdict, r.reason))
    return aligned(("claim", "stat", "old", "new", "change", "n", "verdict", "why"), body)


def tally(rows: Sequence[Row]) -> str:
    counts = {v: sum(1 for r in rows if r.verdict == v) for v in VERDICTS}
    return ", ".join(f"{n} {v}" for v, n in counts.items() if n) or "no claims"
