"""The capacity search: the highest request rate a server holds its SLO at, as a bracket.

Pure: the caller's ``probe(rate)`` runs the load and judges it; this module only chooses the
rates. Double the rate from ``start_rps`` until a probe fails (halve it while the first ones
fail), then bisect between the highest rate that passed and the lowest that failed until
``(lowest_fail - highest_pass) / highest_pass <= tight``.

An *inconclusive* probe (too few requests to judge, a client that could not keep the schedule,
a contaminated host) is never a bound: the same rate is probed once more, and a second
inconclusive verdict stops the search with the bracket it has so far and that reason. The
search is bounded by ``max_probes`` and ``max_seconds`` (checked before each probe).

    bracket = search(probe, start_rps=1, max_rps=64, min_rps=0.25)
    bracket.highest_pass, bracket.lowest_fail, bracket.stopped_because
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

PASS, FAIL, INCONCLUSIVE = "pass", "fail", "inconclusive"

#: why a search ended
TIGHT = "tight"  # the bracket is within ``tight``
MAX_RPS_PASSED = "max_rps passed"  # capacity >= max_rps: no failing rate in the range
MIN_RPS_FAILED = "min_rps failed"  # capacity < min_rps: no passing rate in the range
INCONCLUSIVE_TWICE = "inconclusive twice"  # a rate stayed inconclusive on its re-probe
MAX_PROBES = "max_probes"
MAX_SECONDS = "max_seconds"


@dataclass
class Probe:
    rate: float
    verdict: str
    details: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"rate": self.rate, "verdict": self.verdict, "details": dict(self.details),
                "seconds": self.seconds}


@dataclass
class Bracket:
    """[highest rate that passed, lowest that failed]; either may be None (not found)."""

    highest_pass: float | None
    lowest_fail: float | None
    probes: list[Probe]
    stopped_because: str
    tight: float = 0.1

    @property
    def width(self) -> float | None:
        """Relative width ``(lowest_fail - highest_pass) / highest_pass``; None when open."""
        if self.highest_pass is None or self.lowest_fail is None:
            return None
        return (self.lowest_fail - self.highest_pass) / self.highest_pass

    @property
    def is_tight(self) -> bool:
        w = self.width
        return w is not None and w <= self.tight + 1e-12

    def contains(self, rate: float) -> bool:
        lo = self.highest_pass if self.highest_pass is not None else 0.0
        hi = self.lowest_fail if self.lowest_fail is not None else math.inf
        return lo <= rate <= hi

    def describe(self) -> str:
        lo = "?" if self.highest_pass is None else f"{self.highest_pass:g}"
        hi = "?" if self.lowest_fail is None else f"{self.lowest_fail:g}"
        return (f"capacity in [{lo}, {hi}] req/s after {len(self.probes)} probes "
                f"(stopped: {self.stopped_because})")

    def to_dict(self) -> dict[str, Any]:
        return {"highest_pass": self.highest_pass, "lowest_fail": self.lowest_fail, "width": self.width,
                "tight": self.tight, "is_tight": self.is_tight, "stopped_because": self.stopped_because,
                "probes": [p.to_dict() for p in self.probes]}


def _positive(name: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be a number > 0; got {v!r}")
    return float(v)


def _verdict(out: Any) -> tuple[str, dict[str, Any]]:
    """A probe returns a verdict string, ``(verdict, details)``, a dict with ``verdict`` or an
    object with ``.verdict`` (a :class:`~pytest_inference.claims.Claim`)."""
    details: dict[str, Any] = {}
    if isinstance(out, tuple) and len(out) == 2:
        v, details = out[0], dict(out[1] or {})
    elif isinstance(out, dict):
        v = out.get("verdict")
        details = {k: x for k, x in out.items() if k != "verdict"}
    elif isinstance(out, str):
        v = out
    else:
        v = getattr(out, "verdict", None)
        for name in ("reason", "measured"):
            if getattr(out, name, None) not in (None, ""):
                details[name] = getattr(out, name)
    if v not in (PASS, FAIL, INCONCLUSIVE):
        raise ValueError(f"a probe must return pass, fail or inconclusive; got {v!r}")
    return v, details


def search(probe: Callable[[float], Any], *, start_rps: float, max_rps: float, min_rps: float | None = None,
           tight: float = 0.1, max_probes: int = 12, max_seconds: float | None = None,
           clock: Callable[[], float] = time.monotonic) -> Bracket:
    """Bracket the highest rate at which ``probe(rate)`` passes (see the module docstring).

    ``min_rps`` defaults to ``start_rps / 16``. Bad arguments raise a one-line ValueError.
    """
    start = _positive("start_rps", start_rps)
    top = _positive("max_rps", max_rps)
    bottom = _positive("min_rps", min_rps) if min_rps is not None else start / 16
    if not bottom <= start <= top:
        raise ValueError(f"the search range is upside down: need min_rps <= start_rps <= max_rps; got "
                         f"{bottom:g} <= {start:g} <= {top:g}")
    tight = _positive("tight", tight)
    if isinstance(max_probes, bool) or not isinstance(max_probes, int) or max_probes < 1:
        raise ValueError(f"max_probes must be a positive integer; got {max_probes!r}")
    if max_seconds is not None:
        max_seconds = _positive("max_seconds", max_seconds)

    probes: list[Probe] = []
    hp: float | None = None
    lf: float | None = None
    t0 = clock()

    def done(why: str) -> Bracket:
        return Bracket(hp, lf, probes, why, tight)

    def budget() -> str | None:
        if len(probes) >= max_probes:
            return MAX_PROBES
        if max_seconds is not None and clock() - t0 >= max_seconds:
            return MAX_SECONDS
        return None

    def run(rate: float) -> str | None:
        """Probe ``rate`` (re-probing an inconclusive once); the decisive verdict or None."""
        for _ in range(2):
            if budget():
                return None
            a = clock()
            verdict, details = _verdict(probe(rate))
            probes.append(Probe(rate, verdict, details, clock() - a))
            if verdict != INCONCLUSIVE:
                return verdict
        return INCONCLUSIVE

    rate = start
    # 1. expand: double while passing, halve while failing, until a pass and a fail are known
    while True:
        v = run(rate)
        if v is None:
            return done(budget() or MAX_PROBES)
        if v == INCONCLUSIVE:
            return done(INCONCLUSIVE_TWICE)
        if v == PASS:
            hp = rate
            if lf is not None:
                break
            if rate >= top:
                return done(MAX_RPS_PASSED)
            rate = min(rate * 2, top)
        else:
            lf = rate
            if hp is not None:
                break
            if rate <= bottom:
                return done(MIN_RPS_FAILED)
            rate = max(rate / 2, bottom)
    # 2. bisect
    while (lf - hp) / hp > tight + 1e-12:  # type: ignore[operator]
        mid = (hp + lf) / 2  # type: ignore[operator]
        v = run(mid)
        if v is None:
            return done(budget() or MAX_PROBES)
        if v == INCONCLUSIVE:
            return done(INCONCLUSIVE_TWICE)
        if v == PASS:
            hp = mid
        else:
            lf = mid
    return done(TIGHT)


def judge_capacity(bracket: Bracket, requirement: Any = None, *, metric: str = "capacity.max_rps_at_slo",
                   target: str | None = None, unit: str = "req/s") -> Any:
    """The bracket as a :class:`~pytest_inference.claims.Claim`: the figure is the highest rate that
    passed (the capacity is at least that; below the lowest that failed). ``>= t`` passes when a
    rate >= t passed, fails when a rate <= t failed, and is otherwise inconclusive (the bracket
    straddles t, or the search stopped first: its reason). ``<`` / ``<=`` the other way round."""
    from . import claims

    hp, lf = bracket.highest_pass, bracket.lowest_fail
    details = {"bracket": bracket.to_dict()}
    where = bracket.describe()
    if requirement is None:
        if hp is None:
            c = claims.judge(metric, [], unit=unit, target=target, details=details)
            c.reason = f"{where}: no rate passed"
            return c
        return claims.judge(metric, [hp], unit=unit, measured=hp, target=target, details=details)
    op, t = requirement.op, float(requirement.threshold)
    if op in (">=", ">"):
        ok = hp is not None and (hp >= t if op == ">=" else hp > t)
        bad = lf is not None and lf <= t
    elif op in ("<=", "<"):
        ok = lf is not None and lf <= t
        bad = hp is not None and (hp > t if op == "<=" else hp >= t)
    else:
        raise ValueError(f"a capacity is judged with <, <=, >, >=; got {op!r}")
    c = claims.Claim(metric=metric, measured=hp, unit=requirement.unit or unit, stat="value",
                     samples=[hp] if hp is not None else [], verdict=claims.INCONCLUSIVE, op=op, threshold=t,
                     target=target, details=details)
    if ok:
        c.verdict = claims.PASS
    elif bad:
        c.verdict = claims.FAIL
        c.reason = where
        c.details["explain"] = where
    else:
        c.reason = (f"{where}: the bracket straddles {t:g}" if hp is not None and lf is not None
                    else f"{where}: no decisive probe on the far side of {t:g}")
    return c
