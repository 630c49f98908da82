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
#: statistics of 0/1 samples judged on a one-sided binomial confidence bound of the rate
#: ("attainment": the fraction of requests that met every SLO bound)
BINOMIAL_STATS = ("attainment",)
STATS = tuple(QUANTILE_STATS) + POINT_STATS + BINOMIAL_STATS


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
    if stat in BINOMIAL_STATS:
        if any(x not in (0.0, 1.0) for x in xs):
            raise ValueError(f"{stat} takes 0/1 samples (1 = the request met it)")
        return math.fsum(xs) / len(xs)
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


# --- confidence bounds of a rate (SLO attainment) ---------------------------------------

def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 100_000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta function I_x(a, b) (a, b > 0)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    lbt = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1) / (a + b + 2):
        return min(1.0, max(0.0, math.exp(lbt) * _betacf(a, b, x) / a))
    return min(1.0, max(0.0, 1.0 - math.exp(lbt) * _betacf(b, a, 1.0 - x) / b))


def binom_sf_ge(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p), any n (incomplete beta: no sum over k terms)."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    return betainc(k, n - k + 1, p)


def _check_rate_args(successes: int, n: int, confidence: float) -> None:
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer; got {n!r}")
    if not isinstance(successes, int) or not 0 <= successes <= n:
        raise ValueError(f"successes must be an integer in 0..{n}; got {successes!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie strictly between 0 and 1; got {confidence!r}")


def _solve(f, target: float) -> float:
    """x in [0, 1] where the increasing function f crosses target (bisection)."""
    lo, hi = 0.0, 1.0
    for _ in range(200):
        mid = (lo + hi) / 2
        if f(mid) < target:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-13:
            break
    return (lo + hi) / 2


def rate_lower_bound(successes: int, n: int, confidence: float) -> float:
    """One-sided Clopper–Pearson lower bound of a success rate: the true rate is at least this
    with probability ``confidence``. ``n`` of ``n`` at 0.99 → ``0.01 ** (1/n)``."""
    _check_rate_args(successes, n, confidence)
    if successes == 0:
        return 0.0
    if successes == n:
        return (1 - confidence) ** (1 / n)
    # the p at which seeing >= successes has probability exactly 1 - confidence
    return _solve(lambda p: binom_sf_ge(successes, n, p), 1 - confidence)


def rate_upper_bound(successes: int, n: int, confidence: float) -> float:
    """One-sided Clopper–Pearson upper bound of a success rate (see :func:`rate_lower_bound`)."""
    _check_rate_args(successes, n, confidence)
    if successes == n:
        return 1.0
    return 1.0 - rate_lower_bound(n - successes, n, confidence)


def rate_evidence(successes: int, n: int, op: str, threshold: float, confidence: float) -> str:
    """'supported', 'refuted' or 'insufficient' for "the true rate <op> threshold", from
    ``successes`` of ``n`` 0/1 trials: supported when the one-sided bound at ``confidence`` on
    the far side lies inside the threshold (``>=``: the lower bound is >= threshold), refuted
    when the bound on the near side lies beyond it (``>=``: the upper bound is < threshold)."""
    if n <= 0:
        return "insufficient"
    lo = rate_lower_bound(successes, n, confidence)
    hi = rate_upper_bound(successes, n, confidence)
    if op == ">=":
        ok, bad = lo >= threshold, hi < threshold
    elif op == ">":
        ok, bad = lo > threshold, hi <= threshold
    elif op == "<=":
        ok, bad = hi <= threshold, lo > threshold
    elif op == "<":
        ok, bad = hi < threshold, lo >= threshold
    else:
        raise ValueError(f"a rate is judged with <, <=, >, >=; got {op!r}")
    return "supported" if ok else "refuted" if bad else "insufficient"


def trials_to_decide(rate: float, op: str, threshold: float, confidence: float,
                     limit: int = 10_000_000) -> int | None:
    """Fewest trials that would decide "rate <op> threshold" at ``confidence`` were the observed
    ``rate`` the true one (the successes rounded towards the threshold);
    None when no number up to ``limit`` would (the rate sits on the threshold)."""
    if not 0 <= rate <= 1:
        raise ValueError(f"rate must lie in 0..1; got {rate!r}")
    if rate == threshold:
        return None

    def decides(n: int) -> bool:
        # round towards the threshold: the conservative count either way
        k = math.floor(rate * n + 1e-9) if rate > threshold else math.ceil(rate * n - 1e-9)
        k = min(n, max(0, k))
        return rate_evidence(k, n, op, threshold, confidence) != "insufficient"

    n = 1
    while not decides(n):
        n *= 2
        if n > limit:
            return None
    lo = n // 2
    while lo + 1 < n:
        mid = (lo + n) // 2
        if decides(mid):
            n = mid
        else:
            lo = mid
    return n
