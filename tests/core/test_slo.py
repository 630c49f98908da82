"""SLO strings, per-request misses and attainment (pytest_inference.slo)."""

import pytest
from hypothesis import given, strategies as st

from pytest_inference import slo
from pytest_inference.engine import RequestResult


def ok(ttft=100.0, tpot=20.0, e2e=1000.0, **kw):
    return RequestResult(ok=True, ttft_ms=ttft, tpot_ms=tpot, e2e_ms=e2e, **kw)


def test_parse_all_three_keys():
    s = slo.parse("ttft_ms:400,tpot_ms:80,e2e_ms:5000")
    assert (s.ttft_ms, s.tpot_ms, s.e2e_ms) == (400, 80, 5000)
    assert str(s) == "ttft_ms:400,tpot_ms:80,e2e_ms:5000"
    assert slo.parse(str(s)) == s


def test_parse_one_key_spaces_and_decimals():
    s = slo.parse(" ttft_ms : 250.5 ")
    assert s.ttft_ms == 250.5 and s.tpot_ms is None and s.bounds() == {"ttft_ms": 250.5}


@pytest.mark.parametrize("text, words", [
    ("", "empty"),
    ("   ", "empty"),
    ("ttft:400", "unknown key 'ttft'"),
    ("ttft_ms:fast", "not a number"),
    ("ttft_ms:0", "must be > 0"),
    ("ttft_ms:-5", "must be > 0"),
    ("ttft_ms:inf", "must be > 0"),
    ("ttft_ms:nan", "must be > 0"),
    ("ttft_ms:400,,e2e_ms:1", "empty item"),
    ("ttft_ms", "not key:value"),
    ("ttft_ms:1,ttft_ms:2", "given twice"),
])
def test_bad_slo_is_one_line(text, words):
    with pytest.raises(ValueError) as e:
        slo.parse(text)
    msg = str(e.value)
    assert words in msg and "\n" not in msg


def test_slo_needs_a_bound_and_positive_numbers():
    with pytest.raises(ValueError, match="at least one bound"):
        slo.SLO()
    with pytest.raises(ValueError, match="> 0"):
        slo.SLO(ttft_ms=0)


def test_meets_every_bound_inclusive():
    s = slo.parse("ttft_ms:400,tpot_ms:80,e2e_ms:5000")
    assert slo.meets(ok(400, 80, 5000), s)
    assert not slo.meets(ok(400.01, 80, 5000), s)
    assert not slo.meets(ok(400, 80.5, 5000), s)
    assert not slo.meets(ok(400, 80, 5001), s)
    assert slo.miss_reason(ok(450, 80, 5000), s) == "ttft_ms 450.0 > 400"


def test_errors_and_timeouts_are_misses_whatever_the_timings():
    s = slo.parse("ttft_ms:400")
    assert not slo.meets(RequestResult(ok=False, error="HTTP 503", ttft_ms=10.0), s)
    assert slo.miss_reason(RequestResult(ok=False, error="HTTP 503"), s) == "failed: HTTP 503"
    assert slo.miss_reason(RequestResult(ok=True, timed_out=True, ttft_ms=10.0), s) == "timed out"


def test_a_bounded_figure_that_is_missing_is_a_miss():
    # one-token answer: no TPOT; nothing says it met a TPOT bound
    assert slo.miss_reason(ok(tpot=None), slo.parse("tpot_ms:80")) == "no tpot_ms"
    # but an unbounded missing figure does not matter
    assert slo.meets(ok(tpot=None), slo.parse("ttft_ms:400"))


def test_dicts_work_like_results():
    s = slo.parse("ttft_ms:400")
    assert slo.meets({"ok": True, "ttft_ms": 10.0}, s)
    assert not slo.meets({"ok": True, "ttft_ms": 500.0}, s)


def test_attainment_and_goodput():
    s = slo.parse("ttft_ms:400")
    rs = [ok(100)] * 7 + [ok(500)] * 2 + [RequestResult(ok=False, error="boom")]
    assert slo.met_samples(rs, s) == [1.0] * 7 + [0.0] * 3
    assert slo.attainment(rs, s) == 0.7
    assert slo.attainment([], s) is None
    assert slo.goodput_rps(rs, s, wall_s=2.0) == 3.5
    with pytest.raises(ValueError, match="wall_s"):
        slo.goodput_rps(rs, s, wall_s=0)


@given(st.lists(st.tuples(st.booleans(), st.floats(0, 1000)), min_size=1, max_size=50),
       st.floats(1, 1000))
def test_attainment_counts_exactly_the_ok_requests_within_the_bound(reqs, bound):
    s = slo.SLO(ttft_ms=bound)
    rs = [RequestResult(ok=o, ttft_ms=t) for o, t in reqs]
    want = sum(1 for o, t in reqs if o and t <= bound) / len(reqs)
    assert slo.attainment(rs, s) == pytest.approx(want)
