"""Arrival schedules (engine/arrivals.py): shape, statistics, reproducibility, bad input."""

from __future__ import annotations

import math
import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_inference.engine import arrivals


def gaps(offs):
    return [b - a for a, b in zip(offs, offs[1:])]


def test_constant_is_exact():
    offs = arrivals.constant(8, n=17)
    assert offs[0] == 0.0 and len(offs) == 17
    assert all(g == pytest.approx(1 / 8, abs=1e-12) for g in gaps(offs))
    assert offs[-1] == pytest.approx(2.0)
    assert arrivals.offered_rate(offs) == pytest.approx(8.0)


def test_constant_by_duration():
    assert len(arrivals.constant(10, duration_s=1.0)) == 10  # 0.0 .. 0.9
    assert len(arrivals.constant(3, duration_s=1.01)) == 4
    assert all(x < 1.0 for x in arrivals.constant(7, duration_s=1.0))


@pytest.mark.parametrize("rate", [0.5, 10, 400])
def test_poisson_mean_rate_and_cv(rate):
    n = 20_000
    g = gaps(arrivals.poisson(rate, n=n, seed=7))
    mean = statistics.fmean(g)
    # the mean of n exponential gaps has relative standard deviation 1/sqrt(n): 5 sigma
    assert abs(mean * rate - 1) < 5 / math.sqrt(n)
    cv = statistics.pstdev(g) / mean
    assert abs(cv - 1) < 0.05  # exponential: cv 1
    assert min(g) >= 0


@pytest.mark.parametrize("cv", [0.25, 1.0, 3.0])
def test_gamma_mean_rate_and_burstiness(cv):
    n, rate = 40_000, 50
    g = gaps(arrivals.gamma(rate, cv, n=n, seed=11))
    mean = statistics.fmean(g)
    assert abs(mean * rate - 1) < 5 * cv / math.sqrt(n)
    measured_cv = statistics.pstdev(g) / mean
    assert measured_cv == pytest.approx(cv, rel=0.1)


def test_bursty_gamma_clumps_more_than_poisson():
    """Same rate: cv 3 puts far more arrivals into tight clumps (gap < a tenth of the mean)."""
    def tight(offs):
        return sum(1 for x in gaps(offs) if x < 0.1 / 20)
    assert tight(arrivals.gamma(20, 3.0, n=5000, seed=1)) > 2 * tight(arrivals.poisson(20, n=5000, seed=1))


def test_poisson_by_duration_count():
    rate, d = 200, 50.0
    offs = arrivals.poisson(rate, duration_s=d, seed=3)
    lam = rate * d
    assert abs(len(offs) - lam) < 5 * math.sqrt(lam)
    assert offs[-1] < d


def test_seeded_reproducible():
    assert arrivals.poisson(5, n=100, seed=42) == arrivals.poisson(5, n=100, seed=42)
    assert arrivals.poisson(5, n=100, seed=42) != arrivals.poisson(5, n=100, seed=43)
    assert arrivals.gamma(5, 2.0, n=100, seed=1) == arrivals.schedule("gamma", 5, n=100, seed=1, cv=2.0)
    assert arrivals.schedule("poisson", 5, duration_s=3, seed=9) == arrivals.poisson(5, duration_s=3, seed=9)
    assert arrivals.schedule("constant", 4, n=3) == [0.0, 0.25, 0.5]


@settings(max_examples=60, deadline=None)
@given(shape=st.sampled_from(arrivals.SHAPES), rate=st.floats(0.01, 1e5), n=st.integers(1, 300),
       seed=st.integers(0, 2**32), cv=st.floats(0.01, 100))
def test_schedule_invariants(shape, rate, n, seed, cv):
    offs = arrivals.schedule(shape, rate, n=n, seed=seed, cv=cv)
    assert len(offs) == n and offs[0] == 0.0
    assert all(math.isfinite(x) for x in offs)
    assert all(b >= a for a, b in zip(offs, offs[1:]))


@settings(max_examples=40, deadline=None)
@given(shape=st.sampled_from(arrivals.SHAPES), rate=st.floats(0.1, 1000), d=st.floats(0.01, 20),
       seed=st.integers(0, 1000))
def test_duration_bounds(shape, rate, d, seed):
    offs = arrivals.schedule(shape, rate, duration_s=d, seed=seed)
    assert offs[0] == 0.0 and all(x < d for x in offs[1:]) and len(offs) >= 1


@pytest.mark.parametrize("call,fragment", [
    (lambda: arrivals.constant(0, n=3), "rate must be"),
    (lambda: arrivals.poisson(-1, n=3), "rate must be"),
    (lambda: arrivals.poisson(float("nan"), n=3), "rate must be"),
    (lambda: arrivals.poisson(float("inf"), n=3), "rate must be"),
    (lambda: arrivals.poisson("5", n=3), "rate must be"),
    (lambda: arrivals.poisson(5, n=0), "n must be"),
    (lambda: arrivals.poisson(5, n=2.5), "n must be"),
    (lambda: arrivals.poisson(5, n=True), "n must be"),
    (lambda: arrivals.poisson(5), "exactly one of n"),
    (lambda: arrivals.poisson(5, n=3, duration_s=1), "exactly one of n"),
    (lambda: arrivals.poisson(5, duration_s=0), "duration_s must be"),
    (lambda: arrivals.poisson(1e9, duration_s=100), "arrivals in one schedule"),
    (lambda: arrivals.poisson(5, n=10**9), "arrivals in one schedule"),
    (lambda: arrivals.gamma(5, 0, n=3), "cv"),
    (lambda: arrivals.gamma(5, -1, n=3), "cv"),
    (lambda: arrivals.gamma(5, float("nan"), n=3), "cv"),
    (lambda: arrivals.gamma(5, 1000, n=3), "cv"),
    (lambda: arrivals.schedule("uniform", 5, n=3), "shape must be one of"),
])
def test_bad_input_is_one_line(call, fragment):
    with pytest.raises(ValueError) as e:
        call()
    assert fragment in str(e.value) and "\n" not in str(e.value)


def test_offered_rate():
    assert arrivals.offered_rate([0.0]) is None
    assert arrivals.offered_rate([1.0, 1.0]) is None
    assert arrivals.offered_rate([0.0, 0.5, 1.0]) == pytest.approx(2.0)


@pytest.mark.parametrize("text,want", [
    ("poisson", ("poisson", 1.0)),
    ("constant", ("constant", 1.0)),
    (" Poisson ", ("poisson", 1.0)),
    ("gamma:2", ("gamma", 2.0)),
    ("GAMMA: 0.5", ("gamma", 0.5)),
    ("gamma:1", ("gamma", 1.0)),
    ("gamma:100", ("gamma", 100.0)),
])
def test_parse_arrival(text, want):
    assert arrivals.parse_arrival(text) == want
    shape, cv = want
    # what it returns is what schedule() takes
    assert len(arrivals.schedule(shape, 10, n=5, seed=1, cv=cv)) == 5


def test_parse_arrival_gamma_cv_reaches_the_schedule():
    shape, cv = arrivals.parse_arrival("gamma:3")
    assert arrivals.schedule(shape, 20, n=50, seed=4, cv=cv) == arrivals.gamma(20, 3.0, n=50, seed=4)


@pytest.mark.parametrize("text,fragment", [
    ("", "give poisson, constant or gamma:CV"),
    ("   ", "give poisson, constant or gamma:CV"),
    (None, "give poisson, constant or gamma:CV"),
    ("uniform", "shape must be poisson, constant or gamma:CV"),
    ("gamma", "gamma needs its coefficient of variation"),
    ("gamma:", "gamma needs its coefficient of variation"),
    ("gamma:x", "is not a number"),
    ("gamma:0", "must be in [0.01, 100]"),
    ("gamma:-1", "must be in [0.01, 100]"),
    ("gamma:nan", "must be in [0.01, 100]"),
    ("gamma:inf", "must be in [0.01, 100]"),
    ("gamma:1000", "must be in [0.01, 100]"),
    ("poisson:2", "takes no parameter"),
    ("constant:1", "takes no parameter"),
])
def test_parse_arrival_bad_input_is_one_line(text, fragment):
    with pytest.raises(ValueError) as e:
        arrivals.parse_arrival(text)
    msg = str(e.value)
    assert msg.startswith("--arrival") and fragment in msg and "\n" not in msg


@pytest.mark.parametrize("shape,cv", [("poisson", 1.0), ("gamma", 2.0), ("constant", 1.0)])
def test_exact_rate_offers_exactly_the_rate_asked(shape, cv):
    from pytest_inference.engine.arrivals import offered_rate, schedule

    raw = schedule(shape, 64, n=48, seed=5, cv=cv)
    exact = schedule(shape, 64, n=48, seed=5, cv=cv, exact_rate=True)
    assert offered_rate(exact) == pytest.approx(64, rel=1e-9)
    assert exact[0] == 0.0 and exact == sorted(exact) and len(exact) == 48
    if shape != "constant":  # a random sample of 48 gaps misses the rate; scaled, the gaps keep their shape
        assert abs(offered_rate(raw) - 64) > 0.5
        ratios = {round(b / a, 9) for a, b in zip(raw[1:], exact[1:])}
        assert len(ratios) == 1
