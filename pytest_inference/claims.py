"""The claim model: one measured figure judged against a target's requirement.

Pure: no pytest, no I/O.  Every suite reports through :func:`judge`, and every sink
(terminal, JUnit, summary.json, Allure, baseline) reads :class:`Claim`.

Verdicts
    ``pass``          the data support the requirement
    ``fail``          the data refute it
    ``inconclusive``  the samples cannot support the claim either way (too few for the
                      statistic, or contaminated) — never counted as a pass
    ``measured``      the target sets no requirement for this metric; reported only
"""

from __future__ import annotations

import math
import operator
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

from . import catalog, stats

PASS, FAIL, INCONCLUSIVE, MEASURED = "pass", "fail", "inconclusive", "measured"
VERDICTS = (PASS, FAIL, INCONCLUSIVE, MEASURED)

OPS = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}

@dataclass(frozen=True)
class Requirement:
    """What a target requires of one metric (one entry of a profile's ``[claims]`` table)."""

    metric: str
    op: str
    threshold: float
    unit: str | None = None
    stat: str | None = None
    min_samples: int = 1
    description: str = ""

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise ValueError(f"op must be one of {', '.join(OPS)}; got {self.op!r}")
        if self.stat is not None and self.stat not in stats.STATS:
            raise ValueError(f"stat must be one of {', '.join(stats.STATS)}; got {self.stat!r}")
        if isinstance(self.threshold, bool) or not isinstance(self.threshold, (int, float)):
            raise ValueError(f"threshold must be a number; got {self.threshold!r}")
        if not math.isfinite(self.threshold):
            raise ValueError("threshold must be finite")
        if not isinstance(self.min_samples, int) or self.min_samples < 1:
            raise ValueError(f"min_samples must be a positive integer; got {self.min_samples!r}")

    def holds(self, value: float) -> bool:
        return bool(OPS[self.op](value, self.threshold))


def fmt(x: float | None) -> str:
    """Human number: 7.9, 322.4, 16777216 — never scientific notation for ordinary figures."""
    if x is None:
        return "n/a"
    if isinstance(x, bool):
        return str(x).lower()
    x = float(x)
    if math.isnan(x) or math.isinf(x):
        return str(x)
    if x == int(x) and abs(x) < 1e15:
        return str(int(x))
    a = abs(x)
    digits = 1 if a >= 100 else 2 if a >= 10 else 3 if a >= 0.01 else 6
    out = f"{x:.{digits}f}".rstrip("0").rstrip(".")
    return out if out not in ("", "-0") else "0"


def _with_unit(x: float | None, unit: str | None) -> str:
    return f"{fmt(x)} {unit}" if unit else fmt(x)


@dataclass
class Claim:
    metric: str
    measured: float | None
    unit: str | None
    stat: str
    samples: list[float]
    verdict: str
    reason: str = ""
    op: str | None = None
    threshold: float | None = None
    target: str | None = None
    test: str | None = None
    min_samples: int = 1
    confidence: float | None = None
    contaminated: int = 0
    details: dict[str, Any] = field(default_factory=dict)
    baseline: dict[str, Any] | None = None
    id: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def count(self) -> int:
        return len(self.samples)

    @property
    def judged(self) -> bool:
        return self.verdict != MEASURED

    @property
    def regressed(self) -> bool:
        return bool(self.baseline and self.baseline.get("regression"))

    @property
    def margin(self) -> float | None:
        """Headroom to the threshold in the claim's unit: positive = inside, negative = beyond."""
        if self.measured is None or self.threshold is None or self.op is None:
            return None
        if self.op in ("<", "<="):
            return self.threshold - self.measured
        if self.op in (">", ">="):
            return self.measured - self.threshold
        return -abs(self.measured - self.threshold)

    @property
    def margin_pct(self) -> float | None:
        m = self.margin
        if m is None or not self.threshold:
            return None
        return 100.0 * m / abs(self.threshold)

    def requirement_text(self) -> str:
        if self.op is None:
            return "no requirement"
        return f"{self.op} {_with_unit(self.threshold, self.unit)}"

    def message(self) -> str:
        """``warm.ttft_spread_ms = 7.9 ms over 20 samples; target mi300x requires < 5 ms``"""
        n = self.count
        if self.measured is None:
            head = f"{self.metric} not measured"
            if self.contaminated:
                head += f" ({self.contaminated} contaminated samples excluded)"
            if self.op is None:
                return f"{head}: {self.reason}" if self.reason else head
            return f"{head}: {self.reason} (target {self.target or '?'} requires {self.requirement_text()})"
        head = f"{self.metric} = {_with_unit(self.measured, self.unit)}"
        if n > 1 or self.stat not in ("value",):
            head += f" over {n} sample{'s' if n != 1 else ''}"
        if self.contaminated:
            head += f" ({self.contaminated} contaminated excluded)"
        target = f"target {self.target}" if self.target else "the target"
        if self.verdict == MEASURED:
            return f"{head}; {target} sets no requirement (measured only)"
        req = f"{target} requires {self.requirement_text()}"
        if self.verdict == INCONCLUSIVE:
            return f"{head}; inconclusive: {self.reason} ({req})"
        text = f"{head}; {req}"
        if self.verdict == PASS:
            text += " — pass"
        if self.reason and self.verdict == FAIL and (self.stat in stats.QUANTILE_STATS
                                                     or self.stat in stats.BINOMIAL_STATS):
            text += f" ({self.reason})"
        if self.verdict == FAIL and self.details.get("explain"):
            # what the figure is made of, for a failing claim: e.g. the stale connection itself
            text += f": {self.details['explain']}"
        return text

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["samples"] = self.count
        d["sample_values"] = list(self.samples)
        d["margin"] = self.margin
        d["margin_pct"] = self.margin_pct
        d["message"] = self.message()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Claim":
        names = {f for f in cls.__dataclass_fields__}
        kw = {k: v for k, v in d.items() if k in names and k != "samples"}
        kw["samples"] = list(d.get("sample_values", []))
        return cls(**kw)


def judge(
    metric: str,
    samples: Sequence[float] = (),
    *,
    stat: str = "value",
    unit: str | None = None,
    requirement: Requirement | None = None,
    measured: float | None = None,
    target: str | None = None,
    confidence: float = 0.99,
    contaminated: int = 0,
    min_samples: int | None = None,
    details: dict[str, Any] | None = None,
    not_judged: str | None = None,
) -> Claim:
    """Judge one metric. Pure.

    ``not_judged`` (one line: why the target does not apply, e.g. the run measured a different
    model or accelerator than the target's) keeps the measured figure but makes a claim the
    target has a requirement for inconclusive with that reason — never a pass or a fail.

    ``samples`` are the per-observation values; ``measured`` defaults to ``stat`` over them
    (pass ``measured`` for figures that are not a statistic of the samples, e.g. tokens/s
    over a run's wall time). Quantile statistics (median, p90, p99, …) are judged on the
    share of samples beyond the threshold with a binomial test at ``confidence``; a rate over
    0/1 samples (``attainment``) on its one-sided binomial bounds at ``confidence``; every
    other statistic is judged on its value once ``min_samples`` samples exist.
    """
    xs = [float(x) for x in samples]
    if requirement is not None:
        stat = requirement.stat or stat
        unit = requirement.unit or unit
    if unit is None:
        known = catalog.find(metric)
        unit = known.unit if known else None
    if not_judged:
        claim = judge(metric, xs, stat=stat, unit=unit, requirement=requirement, measured=measured, target=target,
                      confidence=confidence, contaminated=contaminated, min_samples=min_samples, details=details)
        if claim.op is not None:
            claim.details["verdict_if_judged"] = claim.verdict
            claim.verdict = INCONCLUSIVE
            claim.reason = not_judged
        else:
            claim.details["not_judged"] = not_judged
        return claim
    if measured is None and not xs:
        # nothing usable (all samples failed or were contaminated): never a pass
        why = "no usable samples"
        if contaminated:
            why += f"; all {contaminated} were contaminated (burst-delivered: the server's sender was starved)"
        return Claim(
            metric=metric, measured=None, unit=unit, stat=stat, samples=[], verdict=INCONCLUSIVE, reason=why,
            op=requirement.op if requirement else None,
            threshold=float(requirement.threshold) if requirement else None,
            target=target, confidence=confidence, contaminated=contaminated, details=dict(details or {}),
        )
    if measured is None:
        measured = stats.compute(stat, xs)
    # the stricter of what the caller ran for (e.g. "over 20 requests") and what the target demands
    need = max(min_samples or 1, requirement.min_samples if requirement else 1)
    claim = Claim(
        metric=metric,
        measured=float(measured),
        unit=unit,
        stat=stat,
        samples=xs,
        verdict=MEASURED,
        target=target,
        min_samples=need,
        confidence=confidence,
        contaminated=contaminated,
        details=dict(details or {}),
    )
    if requirement is None:
        return claim
    claim.op, claim.threshold = requirement.op, float(requirement.threshold)
    n = len(xs) if xs else 1

    if n < need:
        claim.verdict = INCONCLUSIVE
        claim.reason = f"only {n} usable sample{'s' if n != 1 else ''}; the claim is stated over {need}"
        return claim

    if stat in stats.QUANTILE_STATS and requirement.op in ("<", "<=", ">", ">=") and xs:
        q = stats.QUANTILE_STATS[stat]
        # For "<=" style claims a miss is a sample above the threshold; the quantile claim
        # holds iff at most (1 - q) of the population misses. For ">=" claims on a low
        # quantile the roles flip: a miss is a sample below, allowed share q.
        misses = sum(1 for x in xs if not requirement.holds(x))
        tail_q = q if requirement.op in ("<", "<=") else 1 - q
        evidence = stats.quantile_evidence(misses, len(xs), tail_q, confidence)
        claim.details.setdefault("misses", misses)
        if evidence == "supported":
            claim.verdict = PASS
        elif evidence == "refuted":
            claim.verdict = FAIL
            claim.reason = f"{misses} of {len(xs)} samples beyond the threshold"
        else:
            claim.verdict = INCONCLUSIVE
            zero_miss_need = stats.min_samples_for_quantile(tail_q, confidence)
            if misses == 0 and len(xs) < zero_miss_need:
                claim.reason = (
                    f"a {stat} from {len(xs)} samples cannot be supported; even with no sample beyond "
                    f"the threshold it needs >= {zero_miss_need} at {confidence:.0%} confidence "
                    "(MLPerf LoadGen early-stopping rule)"
                )
            else:
                claim.reason = (
                    f"{misses} of {len(xs)} samples beyond the threshold; cannot tell at "
                    f"{confidence:.0%} confidence whether the {stat} meets it"
                )
        return claim

    if stat in stats.BINOMIAL_STATS and requirement.op in ("<", "<=", ">", ">=") and xs:
        _judge_rate(claim, requirement, stat, confidence)
        return claim

    claim.verdict = PASS if requirement.holds(claim.measured) else FAIL
    return claim


def _judge_rate(claim: Claim, requirement: Requirement, stat: str, confidence: float) -> None:
    """A rate over 0/1 samples (``attainment``: 1 = the request met every SLO bound) judged on
    its one-sided binomial (Clopper–Pearson) bounds at ``confidence``: ``>= t`` passes only when
    the lower bound is >= t, fails when the upper bound is below t, else is inconclusive with
    how many requests would decide it at the observed rate."""
    xs = claim.samples
    n = len(xs)
    met = int(sum(1 for x in xs if x == 1.0))
    lo = stats.rate_lower_bound(met, n, confidence)
    hi = stats.rate_upper_bound(met, n, confidence)
    op, t = requirement.op, float(requirement.threshold)
    claim.details.update({"met": met, "n": n, "lower_bound": lo, "upper_bound": hi})
    evidence = stats.rate_evidence(met, n, op, t, confidence)
    bounds = (f"{met} of {n} met; {confidence:.0%} bounds {fmt(lo)} .. {fmt(hi)}")
    if evidence == "supported":
        claim.verdict = PASS
        claim.reason = bounds
    elif evidence == "refuted":
        claim.verdict = FAIL
        side = "upper bound is below" if op in (">", ">=") else "lower bound is above"
        claim.reason = f"{bounds}: the {side} {fmt(t)}"
    else:
        claim.verdict = INCONCLUSIVE
        need = stats.trials_to_decide(met / n, op, t, confidence)
        if need is None:
            more = "no number of requests decides it at this rate (it sits on the threshold)"
        else:
            more = f"at this rate about {need} requests would decide it"
        claim.reason = (f"{bounds}, either side of {fmt(t)}; cannot tell at {confidence:.0%} confidence "
                        f"whether the {stat} meets it ({more})")


def direction(claim_or_op: Claim | str | None, metric: str | None = None) -> str | None:
    """'lower' or 'higher' is better: from the comparison if there is one (``<`` / ``>=`` …), else
    from the metric's catalog entry (:mod:`pytest_inference.catalog`; a count that must be 0 is
    better lower); None when neither says."""
    op = claim_or_op.op if isinstance(claim_or_op, Claim) else claim_or_op
    if isinstance(claim_or_op, Claim):
        metric = claim_or_op.metric
    if op in ("<", "<="):
        return "lower"
    if op in (">", ">="):
        return "higher"
    return catalog.direction(metric)
