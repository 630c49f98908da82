import json

import pytest
from hypothesis import given, strategies as st

from pytest_inference.claims import FAIL, INCONCLUSIVE, MEASURED, PASS, Claim, Requirement, direction, fmt, judge

SPREAD_5 = Requirement("warm.ttft_spread_ms", "<", 5, unit="ms", stat="spread", min_samples=20)


def test_failure_message_reads_like_the_issue():
    samples = [320.0 + (7.9 if i == 3 else 0.0) for i in range(20)]
    c = judge("warm.ttft_spread_ms", samples, requirement=SPREAD_5, target="mi300x")
    assert c.verdict == FAIL
    assert c.message() == "warm.ttft_spread_ms = 7.9 ms over 20 samples; target mi300x requires < 5 ms"


def test_spread_pass_with_margin():
    c = judge("warm.ttft_spread_ms", [322.0, 323.0, 324.0] * 7, requirement=SPREAD_5, target="mi300x")
    assert c.verdict == PASS and c.measured == 2 and c.margin == 3 and c.margin_pct == 60


def test_spread_over_too_few_samples_is_inconclusive_not_pass():
    c = judge("warm.ttft_spread_ms", [322.0] * 12, requirement=SPREAD_5, target="mi300x")
    assert c.verdict == INCONCLUSIVE
    assert "only 12 usable samples; the claim is stated over 20" in c.message()


def test_p99_from_20_samples_is_inconclusive():
    req = Requirement("warm.ttft_p99_ms", "<=", 2000, unit="ms", stat="p99")
    c = judge("warm.ttft_p99_ms", [300.0] * 20, requirement=req, target="h100")
    assert c.verdict == INCONCLUSIVE
    assert "needs >= 459" in c.reason


def test_p99_with_many_misses_fails_even_from_20():
    req = Requirement("warm.ttft_p99_ms", "<=", 2000, unit="ms", stat="p99")
    c = judge("warm.ttft_p99_ms", [3000.0] * 5 + [300.0] * 15, requirement=req)
    assert c.verdict == FAIL


def test_p99_from_enough_samples_passes():
    req = Requirement("warm.ttft_p99_ms", "<=", 2000, unit="ms", stat="p99")
    assert judge("m", [300.0] * 500, requirement=req).verdict == PASS


def test_median_judged_on_evidence_not_point_estimate():
    req = Requirement("warm.ttft_median_ms", "<=", 350, unit="ms", stat="median")
    assert judge("m", [322.0] * 20, requirement=req).verdict == PASS
    # 11 under, 9 over: the point median is under, but 20 samples cannot tell at 99 %
    close = [340.0] * 11 + [360.0] * 9
    assert judge("m", close, requirement=req).verdict == INCONCLUSIVE
    assert judge("m", [400.0] * 20, requirement=req).verdict == FAIL


def test_higher_is_better_quantile():
    req = Requirement("tput", ">=", 150, unit="tok/s", stat="median")
    assert judge("m", [155.0] * 20, requirement=req).verdict == PASS
    assert judge("m", [100.0] * 20, requirement=req).verdict == FAIL


def test_no_requirement_is_measured_only():
    c = judge("warm.tpot_median_ms", [5.0, 6.0, 7.0], stat="median", unit="ms", target="mi300x")
    assert c.verdict == MEASURED and c.measured == 6
    assert "sets no requirement" in c.message()


def test_equality_requirement():
    req = Requirement("node.stale_nfs_connections", "==", 0)
    assert judge("node.stale_nfs_connections", [0], requirement=req).verdict == PASS
    assert judge("node.stale_nfs_connections", [2], requirement=req).verdict == FAIL


def test_explicit_measured_value():
    req = Requirement("warm.output_tok_s", ">=", 150, unit="tok/s")
    c = judge("warm.output_tok_s", [140.0, 160.0], measured=154.2, requirement=req)
    assert c.verdict == PASS and c.measured == 154.2


def test_bad_requirements_rejected():
    with pytest.raises(ValueError):
        Requirement("m", "<<", 5)
    with pytest.raises(ValueError):
        Requirement("m", "<", "5")
    with pytest.raises(ValueError):
        Requirement("m", "<", 5, stat="p77")


def test_round_trip_through_json():
    c = judge("warm.ttft_median_ms", [1.0, 2.0, 3.0], stat="median", unit="ms", details={"x": 1})
    back = Claim.from_dict(json.loads(json.dumps(c.to_dict())))
    assert back == c


def test_direction():
    assert direction("<") == "lower" and direction(">=") == "higher"
    # no comparison: the metric catalog's direction (time lower, throughput higher, neither, unknown)
    assert direction(None, "warm.ttft_median_ms") == "lower" and direction(None, "storage.nfs_read_MBps") == "higher"
    assert direction(None, "coldstart.floor_s") is None and direction(None, "unknown.metric") is None
    assert direction("==", "k8s.pvc_defects") == "lower"  # a count that must be 0: fewer is better
    assert direction(">=", "warm.ttft_median_ms") == "higher"  # the requirement's comparison wins
    assert direction(judge("coldstart.phase.weights_load_s", [3.0])) == "lower"  # a family member


def test_unit_defaults_from_the_catalog():
    assert judge("storage.nfs_read_MBps", [900.0]).unit == "MB/s"
    assert judge("coldstart.phase.engine_init_s", [9.0]).unit == "s"
    assert judge("warm.ttft_median_ms", [1.0], unit="us").unit == "us"  # a caller's unit is kept
    assert judge("my.own_metric", [1.0]).unit is None and judge("node.stale_nfs_connections", [0]).unit is None


@pytest.mark.parametrize("x,text", [(7.9, "7.9"), (322.41, "322.4"), (16777216, "16777216"), (0.0005, "0.0005"), (2.0, "2")])
def test_fmt(x, text):
    assert fmt(x) == text


@given(
    st.lists(st.floats(min_value=0, max_value=1e4, allow_nan=False), min_size=1, max_size=40),
    st.sampled_from(["<", "<=", ">", ">="]),
    st.floats(min_value=0, max_value=1e4, allow_nan=False),
    st.sampled_from(["median", "p90", "p99", "spread", "max", "mean"]),
)
def test_verdict_is_never_pass_when_the_point_value_breaks_the_requirement(xs, op, thr, stat):
    req = Requirement("m", op, thr, stat=stat)
    c = judge("m", xs, requirement=req)
    assert c.verdict in (PASS, FAIL, INCONCLUSIVE)
    if c.verdict == PASS:
        assert req.holds(c.measured)


def test_no_usable_samples_is_inconclusive():
    c = judge("warm.ttft_median_ms", [], stat="median", requirement=Requirement("m", "<=", 350), contaminated=20)
    assert c.verdict == INCONCLUSIVE and "all 20 were contaminated" in c.message()
