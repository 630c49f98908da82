"""Judging SLO attainment on one-sided binomial bounds (stats.rate_* and claims.judge stat=attainment)."""

import math
import random

import pytest
from hypothesis import assume, given, settings, strategies as st

from pytest_inference import stats
from pytest_inference.claims import FAIL, INCONCLUSIVE, PASS, Requirement, judge

ATT_99 = Requirement("load.slo_attainment", ">=", 0.99, stat="attainment")


def samples(met, n):
    return [1.0] * met + [0.0] * (n - met)


# --- the bounds ------------------------------------------------------------------------------

def test_all_met_lower_bound_is_closed_form():
    for n in (1, 20, 459, 1000):
        assert stats.rate_lower_bound(n, n, 0.99) == pytest.approx(0.01 ** (1 / n))
    assert stats.rate_upper_bound(0, 50, 0.95) == pytest.approx(1 - 0.05 ** (1 / 50))


def test_bounds_match_known_clopper_pearson_values():
    # scipy.stats.beta.ppf(0.05, 50, 51) and beta.ppf(0.95, 51, 50)
    assert stats.rate_lower_bound(50, 100, 0.95) == pytest.approx(0.41362, abs=1e-4)
    assert stats.rate_upper_bound(50, 100, 0.95) == pytest.approx(0.58638, abs=1e-4)


@given(st.integers(1, 60), st.data(), st.sampled_from([0.8, 0.9, 0.95, 0.99]))
def test_lower_bound_is_where_the_binomial_tail_equals_alpha(n, data, conf):
    k = data.draw(st.integers(1, n))
    lo = stats.rate_lower_bound(k, n, conf)
    alpha = 1 - conf
    # P(X >= k | p = lo) == alpha, computed by the plain sum of binom_cdf
    assert 1 - stats.binom_cdf(k - 1, n, lo) == pytest.approx(alpha, rel=1e-6, abs=1e-12)
    assert 0 <= lo <= k / n <= stats.rate_upper_bound(k, n, conf) <= 1


def test_large_runs_are_fast_and_sane():
    lo = stats.rate_lower_bound(99_000, 100_000, 0.99)
    assert 0.9890 < lo < 0.9900


def test_bad_rate_arguments_are_one_line():
    for args in ((5, 3, 0.9), (-1, 3, 0.9), (1, 0, 0.9), (1, 3, 1.0), (1, 3, 0)):
        with pytest.raises(ValueError) as e:
            stats.rate_lower_bound(*args)
        assert "\n" not in str(e.value)


# --- the judge -------------------------------------------------------------------------------

def test_all_of_459_met_passes_99():
    c = judge("load.slo_attainment", samples(459, 459), requirement=ATT_99, confidence=0.99)
    assert c.verdict == PASS and c.measured == 1.0
    assert c.details["met"] == 459 and c.details["lower_bound"] >= 0.99


def test_all_of_100_met_is_inconclusive_and_says_how_many_are_needed():
    c = judge("load.slo_attainment", samples(100, 100), requirement=ATT_99, confidence=0.99, target="h200")
    assert c.verdict == INCONCLUSIVE
    assert "100 of 100 met" in c.reason and "about 459 requests would decide it" in c.reason
    assert "inconclusive" in c.message()


def test_a_clear_shortfall_fails_with_the_bounds():
    c = judge("load.slo_attainment", samples(90, 100), requirement=ATT_99, confidence=0.99, target="h200")
    assert c.verdict == FAIL and c.measured == 0.9
    assert "90 of 100 met; 99% bounds 0.809 .. 0.958: the upper bound is below 0.99" in c.message()


def test_measured_above_threshold_but_not_significant_is_inconclusive():
    # 995 of 1000 = 0.995 >= 0.99, but the lower bound is below 0.99
    c = judge("load.slo_attainment", samples(995, 1000), requirement=ATT_99, confidence=0.99)
    assert c.measured > 0.99 and c.verdict == INCONCLUSIVE
    assert "requests would decide it" in c.reason


def test_on_the_threshold_no_count_decides():
    c = judge("load.slo_attainment", samples(9, 10), requirement=Requirement(
        "load.slo_attainment", ">=", 0.9, stat="attainment"), confidence=0.9)
    assert c.verdict == INCONCLUSIVE and "sits on the threshold" in c.reason


def test_attainment_samples_must_be_zero_or_one():
    with pytest.raises(ValueError, match="0/1 samples"):
        judge("load.slo_attainment", [1.0, 0.5], requirement=ATT_99)


def test_no_samples_never_passes():
    assert judge("load.slo_attainment", [], requirement=ATT_99).verdict == INCONCLUSIVE


def test_miss_rate_claims_use_the_other_bound():
    req = Requirement("load.error_rate", "<=", 0.05, stat="attainment")
    assert judge("load.error_rate", samples(0, 200), requirement=req).verdict == PASS
    assert judge("load.error_rate", samples(40, 200), requirement=req).verdict == FAIL


@given(st.integers(1, 400), st.data(), st.sampled_from([0.5, 0.9, 0.95, 0.99]),
       st.sampled_from([0.9, 0.95, 0.99]))
def test_pass_implies_lower_bound_and_fail_implies_upper_bound(n, data, t, conf):
    met = data.draw(st.integers(0, n))
    c = judge("a", samples(met, n), requirement=Requirement("a", ">=", t, stat="attainment"), confidence=conf)
    if c.verdict == PASS:
        assert c.details["lower_bound"] >= t and met / n >= t
    elif c.verdict == FAIL:
        assert c.details["upper_bound"] < t and met / n < t
    else:
        assert c.verdict == INCONCLUSIVE and c.details["lower_bound"] < t <= c.details["upper_bound"]


@settings(max_examples=15, deadline=None)
@given(st.floats(0.5, 0.985), st.integers(0, 2**32 - 1))
def test_never_passes_below_the_threshold_by_construction_beyond_alpha(true_rate, seed):
    """True rate below 0.99: over many simulated runs the share that pass stays within alpha."""
    rng = random.Random(seed)
    n = 600
    trials = 20
    passes = 0
    for _ in range(trials):
        met = sum(1 for _ in range(n) if rng.random() < true_rate)
        passes += judge("a", samples(met, n), requirement=ATT_99, confidence=0.99).verdict == PASS
    # P(pass) <= 0.01 per run (far less this far below): 20 runs, more than 2 passes < 1e-3
    assert passes <= 2


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 300), st.sampled_from([0.9, 0.95, 0.99]))
def test_a_rate_truly_below_never_passes_when_every_sample_is_consistent(n, t):
    """Construction: the observed rate itself below t can never pass (the lower bound <= rate)."""
    met = math.ceil(t * n) - 1
    assume(met >= 0)
    c = judge("a", samples(met, n), requirement=Requirement("a", ">=", t, stat="attainment"))
    assert c.verdict != PASS


@given(st.sampled_from([0.9, 0.95, 0.99]), st.sampled_from([0.9, 0.95, 0.99]))
def test_all_met_needs_exactly_the_quantile_rule_count(t, conf):
    need = stats.min_samples_for_quantile(t, conf)
    req = Requirement("a", ">=", t, stat="attainment")
    assert judge("a", samples(need, need), requirement=req, confidence=conf).verdict == PASS
    if need > 1:
        assert judge("a", samples(need - 1, need - 1), requirement=req, confidence=conf).verdict == INCONCLUSIVE
    assert stats.trials_to_decide(1.0, ">=", t, conf) == need
