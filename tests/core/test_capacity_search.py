"""The capacity search (pytest_inference.capacity) against pure probe functions."""

import random

import pytest
from hypothesis import given, settings, strategies as st

from pytest_inference import capacity
from pytest_inference.capacity import FAIL, INCONCLUSIVE, PASS, search
from pytest_inference.claims import Claim


def threshold_probe(cap):
    calls = []

    def probe(rate):
        calls.append(rate)
        return PASS if rate <= cap else FAIL

    probe.calls = calls
    return probe


def test_doubles_then_bisects_to_a_tight_bracket():
    p = threshold_probe(13.0)
    b = search(p, start_rps=1, max_rps=1000, tight=0.1)
    assert p.calls[:5] == [1, 2, 4, 8, 16]
    assert b.stopped_because == capacity.TIGHT and b.is_tight
    assert b.highest_pass <= 13.0 < b.lowest_fail
    assert (b.lowest_fail - b.highest_pass) / b.highest_pass <= 0.1
    assert [pr.rate for pr in b.probes] == p.calls
    assert "capacity in [" in b.describe()


def test_halves_when_the_start_fails():
    p = threshold_probe(3.0)
    b = search(p, start_rps=20, max_rps=100, min_rps=0.5, tight=0.05)
    assert p.calls[:4] == [20, 10, 5, 2.5]
    assert b.contains(3.0) and b.is_tight


def test_capacity_above_the_range():
    b = search(threshold_probe(1e9), start_rps=1, max_rps=10)
    assert b.stopped_because == capacity.MAX_RPS_PASSED
    assert b.highest_pass == 10 and b.lowest_fail is None and b.width is None
    assert [p.rate for p in b.probes] == [1, 2, 4, 8, 10]


def test_capacity_below_the_range():
    b = search(threshold_probe(0.01), start_rps=4, max_rps=10, min_rps=1)
    assert b.stopped_because == capacity.MIN_RPS_FAILED
    assert b.highest_pass is None and b.lowest_fail == 1
    assert [p.rate for p in b.probes] == [4, 2, 1]


def test_an_inconclusive_probe_is_re_probed_and_never_a_bound():
    seen = {}

    def probe(rate):
        seen[rate] = seen.get(rate, 0) + 1
        if rate == 8 and seen[rate] == 1:
            return INCONCLUSIVE, {"reason": "client could not keep the schedule"}
        return PASS if rate <= 10 else FAIL

    b = search(probe, start_rps=1, max_rps=100, tight=0.1)
    assert [(p.rate, p.verdict) for p in b.probes][:5] == [(1, PASS), (2, PASS), (4, PASS), (8, INCONCLUSIVE),
                                                           (8, PASS)]
    assert b.probes[3].details == {"reason": "client could not keep the schedule"}
    assert b.contains(10) and b.is_tight


def test_twice_inconclusive_stops_with_the_bracket_so_far():
    def probe(rate):
        if rate > 4:
            return INCONCLUSIVE
        return PASS

    b = search(probe, start_rps=1, max_rps=100)
    assert b.stopped_because == capacity.INCONCLUSIVE_TWICE
    assert b.highest_pass == 4 and b.lowest_fail is None
    assert [p.verdict for p in b.probes][-2:] == [INCONCLUSIVE, INCONCLUSIVE]


def test_probe_budget_and_time_budget():
    b = search(threshold_probe(13.0), start_rps=1, max_rps=1000, tight=0.001, max_probes=6)
    assert b.stopped_because == capacity.MAX_PROBES and len(b.probes) == 6 and b.contains(13.0)

    now = [0.0]

    def slow(rate):
        now[0] += 10.0
        return PASS if rate <= 13 else FAIL

    b = search(slow, start_rps=1, max_rps=1000, tight=0.001, max_seconds=45, clock=lambda: now[0])
    assert b.stopped_because == capacity.MAX_SECONDS and len(b.probes) == 5
    assert all(p.seconds == 10.0 for p in b.probes)


def test_probe_may_return_a_claim_or_a_dict():
    def probe(rate):
        if rate <= 5:
            return Claim("load.slo_attainment", 1.0, None, "attainment", [1.0], PASS)
        return {"verdict": FAIL, "attainment": 0.5}

    b = search(probe, start_rps=1, max_rps=100, tight=0.5)
    assert b.contains(5)
    assert all(p.details == {"attainment": 0.5} for p in b.probes if p.verdict == FAIL)
    assert all(p.details == {"measured": 1.0} for p in b.probes if p.verdict == PASS)


@pytest.mark.parametrize("kw, words", [
    (dict(start_rps=10, max_rps=5), "upside down"),
    (dict(start_rps=1, max_rps=5, min_rps=2), "upside down"),
    (dict(start_rps=0, max_rps=5), "start_rps must be a number > 0"),
    (dict(start_rps=-1, max_rps=5), "start_rps must be a number > 0"),
    (dict(start_rps=1, max_rps=float("inf")), "max_rps must be"),
    (dict(start_rps=1, max_rps=5, min_rps=0), "min_rps must be"),
    (dict(start_rps=1, max_rps=5, tight=0), "tight must be"),
    (dict(start_rps=1, max_rps=5, max_probes=0), "max_probes"),
    (dict(start_rps=1, max_rps=5, max_seconds=-1), "max_seconds"),
])
def test_bad_arguments_are_one_line(kw, words):
    with pytest.raises(ValueError) as e:
        search(lambda r: PASS, **kw)
    assert words in str(e.value) and "\n" not in str(e.value)


def test_a_probe_returning_nonsense_is_one_line():
    with pytest.raises(ValueError, match="pass, fail or inconclusive; got 'maybe'"):
        search(lambda r: "maybe", start_rps=1, max_rps=2)


@settings(max_examples=200)
@given(st.floats(0.05, 5000), st.floats(0.1, 100), st.sampled_from([0.02, 0.05, 0.1, 0.25]))
def test_bracket_always_contains_a_sharp_threshold(cap, start, tight):
    b = search(threshold_probe(cap), start_rps=start, max_rps=10_000, min_rps=0.01, tight=tight, max_probes=60)
    assert b.contains(cap)
    assert b.stopped_because == capacity.TIGHT and b.is_tight
    assert all((p.verdict == PASS) == (p.rate <= cap) for p in b.probes)


@settings(max_examples=100)
@given(st.floats(1, 500), st.integers(0, 2**32 - 1), st.floats(0, 0.6))
def test_noisy_probes_never_bound_with_an_inconclusive(cap, seed, p_inc):
    """Probes near the threshold are noisy: inconclusive at random. The bounds come only from
    decisive probes and a decisive probe here is always right, so the bracket holds the threshold."""
    rng = random.Random(seed)

    def probe(rate):
        if abs(rate - cap) / cap < 0.3 and rng.random() < p_inc:
            return INCONCLUSIVE
        return PASS if rate <= cap else FAIL

    b = search(probe, start_rps=1, max_rps=2000, min_rps=0.01, tight=0.1, max_probes=40)
    assert b.contains(cap)
    decisive = {p.rate: p.verdict for p in b.probes if p.verdict != INCONCLUSIVE}
    if b.highest_pass is not None:
        assert decisive[b.highest_pass] == PASS
    if b.lowest_fail is not None:
        assert decisive[b.lowest_fail] == FAIL
    if b.stopped_because != capacity.INCONCLUSIVE_TWICE:
        assert b.is_tight


def test_judge_capacity_from_the_bracket():
    from pytest_inference.capacity import judge_capacity
    from pytest_inference.claims import Requirement

    b = search(threshold_probe(13.0), start_rps=1, max_rps=1000, tight=0.1)  # [12, 13.x]
    at_least = lambda t: Requirement("capacity.max_rps_at_slo", ">=", t)  # noqa: E731
    assert judge_capacity(b, at_least(10)).verdict == PASS
    assert judge_capacity(b, at_least(b.highest_pass)).verdict == PASS
    c = judge_capacity(b, at_least(20), target="h200")
    assert c.verdict == FAIL and "capacity in [" in c.message()
    c = judge_capacity(b, at_least((b.highest_pass + b.lowest_fail) / 2))
    assert c.verdict == INCONCLUSIVE and "straddles" in c.reason
    assert judge_capacity(b).verdict == "measured" and judge_capacity(b).measured == b.highest_pass
    # a search stopped by inconclusive probes never passes a claim above what passed
    stopped = search(lambda r: PASS if r <= 4 else INCONCLUSIVE, start_rps=1, max_rps=100)
    c = judge_capacity(stopped, at_least(6))
    assert c.verdict == INCONCLUSIVE and "inconclusive twice" in c.reason
    none = search(threshold_probe(0.01), start_rps=4, max_rps=10, min_rps=1)
    assert judge_capacity(none).verdict == INCONCLUSIVE
    assert judge_capacity(none, at_least(0.5)).verdict == INCONCLUSIVE
    assert judge_capacity(none, at_least(2)).verdict == FAIL


@settings(max_examples=100)
@given(st.floats(0.05, 5000), st.floats(0.01, 10_000))
def test_judged_capacity_agrees_with_the_truth_when_decisive(cap, t):
    from pytest_inference.capacity import judge_capacity
    from pytest_inference.claims import Requirement

    b = search(threshold_probe(cap), start_rps=1, max_rps=10_000, min_rps=0.01, tight=0.1, max_probes=60)
    v = judge_capacity(b, Requirement("capacity.max_rps_at_slo", ">=", t)).verdict
    if v == PASS:
        assert cap >= t
    elif v == FAIL:
        assert cap < t
