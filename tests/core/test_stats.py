import math
import statistics

import pytest
from hypothesis import given, strategies as st

from pytest_inference import stats

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


@given(st.lists(finite, min_size=1, max_size=60))
def test_median_matches_statistics(xs):
    assert math.isclose(stats.median(xs), statistics.median(xs), rel_tol=1e-9, abs_tol=1e-9)


@given(st.lists(finite, min_size=1, max_size=60), st.floats(min_value=0, max_value=100))
def test_percentile_between_min_and_max(xs, pct):
    assert min(xs) - 1e-9 <= stats.percentile(xs, pct) <= max(xs) + 1e-9


def test_percentile_matches_linear_interpolation():
    # statistics.quantiles(method="inclusive") is numpy's default (linear) percentile
    xs = [3.0, 1.0, 4.0, 1.5, 9.0, 2.6, 5.3]
    deciles = statistics.quantiles(xs, n=10, method="inclusive")
    for i, expected in enumerate(deciles, start=1):
        assert math.isclose(stats.percentile(xs, 10 * i), expected)
    assert stats.percentile(xs, 0) == 1.0 and stats.percentile(xs, 100) == 9.0


def test_summarize_fields():
    s = stats.summarize([1, 2, 3, 4, 10])
    assert s["count"] == 5 and s["median"] == 3 and s["min"] == 1 and s["max"] == 10 and s["spread"] == 9
    assert s["p50"] == 3 and math.isclose(s["p90"], 7.6) and math.isclose(s["p99"], 9.76)


def test_min_samples_for_quantile_matches_loadgen():
    # MLPerf LoadGen: a p99 claim with zero misses at 0.99 confidence needs ~459 samples
    assert stats.min_samples_for_quantile(0.99, 0.99) == 459
    assert stats.min_samples_for_quantile(0.5, 0.99) == 7


def test_binom_cdf_against_exact():
    n, p = 20, 0.3
    exact = sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(6))
    assert math.isclose(stats.binom_cdf(5, n, p), exact, rel_tol=1e-12)


def test_quantile_evidence_three_ways():
    assert stats.quantile_evidence(0, 20, 0.5, 0.99) == "supported"
    assert stats.quantile_evidence(10, 20, 0.5, 0.99) == "insufficient"
    assert stats.quantile_evidence(20, 20, 0.5, 0.99) == "refuted"
    assert stats.quantile_evidence(0, 20, 0.99, 0.99) == "insufficient"  # p99 from 20
    assert stats.quantile_evidence(0, 459, 0.99, 0.99) == "supported"


def test_nan_rejected():
    with pytest.raises(ValueError):
        stats.median([1.0, float("nan")])
