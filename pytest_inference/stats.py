"""Sample statistics and the sample-sufficiency rules behind the *inconclusive* verdict.

Pure functions over lists of floats; no third-party imports.

Percentiles use linear interpolation between closest ranks (numpy's default), so
``percentile(xs, 50) == median(xs)``.

Sufficiency follows MLPerf LoadGen's early-stopping idea: a claim about the q-th
quantile is a claim about a miss rate (the share of samples beyond the threshold
must be below ``1 - q``).  With ``n`` samples and ``k`` misses a one-sided binomial
test at the chosen confidence says whether the data *support* the claim, *refute*
it, or neither.  With zero misses a p99 claim at 0.99 confidence needs 459 samples;
from 20 samples nothing can be said about a p99, so such a claim is inconclusive.
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

#: statistic name -> quantile it estimates (the ones judged with the binomial rule)
QUANTILE_STATS = {"median": 0.5, "p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99, "p999": 0.999}
#: statistics that are a deterministic function of the sample (judged as a point value)
POINT_STATS = ("value", "mean", "min", "max", "spread", "sum", "count", "std")
STATS = tuple(QUANTILE_STATS) + POINT_STATS


def _clean(samples: Iterable[float]) -> list[float]:
    xs = [float(x) for x in samples if x is not None]
    if any(math.isnan(x) for x in xs):
        raise ValueError("samples contain NaN")
    return xs


def percentile(samples: Sequence[float], pct: float) -> float:
    """Linear-interpolated percentile (0..100) of a non-empty sample."""
    xs = sorted(_clean(samples))
    if not xs:
        raise ValueError("percentile of an empty sample")
    if not 0 <= pct <= 100:
        raise ValueError(f"percentile {pct} outside 0..100")
    pos = (len(xs) - 1) * pct / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def median(samples: Sequence[float]) -> float:
    return percentile(samples, 50)


def mean(samples: Sequence[float]) -> float:
    xs = _clean(samples)
    if not xs:
        raise ValueError("mean of an empty sample")
    return math.fsum(xs) / len(xs)


def std(samples: Sequence[float]) -> float:
    xs = _clean(samples)
    if len(xs) < 2:
        return 0.0
    m = mean(xs)
    return math.sqrt(math.fsum((x - m) ** 2 for x in xs) / (len(xs) - 1))


def compute(stat: str, samples: Sequence[float]) -> float:
    """Value of statistic ``stat`` over ``samples``."""
    xs = _clean(samples)
    if stat == "count":
        return float(len(xs))
    if not xs:
        raise ValueError(f"{stat} of an empty sample")
    if stat in QUANTILE_STATS:
        return percentile(xs, QUANTILE_STATS[stat] * 100)
    if stat == "value":
        if len(xs) != 1:
            raise ValueError("stat 'value' takes exactly one sample")
        return xs[0]
    if stat == "mean":
        return mean(xs)
    if stat == "min":
        return min(xs)
    if stat == "max":
        return max(xs)
    if stat == "spread":
        return max(xs) - min(xs)
    if stat == "sum":
        return math.fsum(xs)
    if stat == "std":
        return std(xs)
    raise ValueError(f"unknown statistic {stat!r}; known: {', '.join(STATS)}")


def summarize(samples: Sequence[float]) -> dict:
    """count, mean, std, median, min, max, spread, p50/p90/p99 — the figures every report shows."""
    xs = _clean(samples)
    if not xs:
        return {"count": 0}
    return {
        "count": len(xs),
        "mean": mean(xs),
        "std": std(xs),
        "median": median(xs),
        "min": min(xs),
        "max": max(xs),
        "spread": max(xs) - min(xs),
        "p50": percentile(xs, 50),
        "p90": percentile(xs, 90),
        "p99": percentile(xs, 99),
    }


# --- binomial sufficiency -------------------------------------------------------------

def binom_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p)."""
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    if p <= 0:
        return 1.0
    if p >= 1:
        return 0.0
    # sum in log space for stability at large n
    logp, logq = math.log(p), math.log1p(-p)
    terms = [
        math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * logp + (n - i) * logq
        for i in range(k + 1)
    ]
    top = max(terms)
    return min(1.0, math.exp(top) * math.fsum(math.exp(t - top) for t in terms))


def min_samples_for_quantile(q: float, confidence: float) -> int:
    """Fewest samples with zero misses that support a q-quantile claim at ``confidence``.

    ``q**n <= 1 - confidence``  →  p99 at 0.99 → 459; median at 0.99 → 7.
    """
    if not 0 < q < 1 or not 0 < confidence < 1:
        raise ValueError("q and confidence must lie strictly between 0 and 1")
    return math.ceil(math.log(1 - confidence) / math.log(q))


def quantile_evidence(misses: int, n: int, q: float, confidence: float) -> str:
    """'supported', 'refuted' or 'insufficient' for the claim "the q-quantile meets the threshold".

    ``misses`` = samples on the wrong side of the threshold. The claim holds iff the true
    miss rate is at most ``1 - q``. Supported when seeing this few misses would be unlikely
    (≤ 1 - confidence) were the miss rate exactly ``1 - q``; refuted when seeing this many
    would be equally unlikely.
    """
    if n <= 0:
        return "insufficient"
    alpha = 1 - confidence
    rate = 1 - q
    if binom_cdf(misses, n, rate) <= alpha:
        return "supported"
    if 1 - binom_cdf(misses - 1, n, rate) <= alpha:
        return "refuted"
    return "insufficient"
