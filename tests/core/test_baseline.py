import json

import pytest

from pytest_inference.baseline import Baseline, BaselineError, parse_tolerance
from pytest_inference.claims import Requirement, judge


def _summary(tmp_path, claims):
    p = tmp_path / "base.json"
    p.write_text(json.dumps({"schema": 1, "claims": claims}))
    return str(p)


def test_direction_aware(tmp_path):
    path = _summary(tmp_path, [
        {"metric": "warm.ttft_median_ms", "measured": 100.0, "unit": "ms", "op": "<=", "test": "t"},
        {"metric": "warm.output_tok_s", "measured": 150.0, "unit": "tok/s", "op": ">=", "test": "t"},
        {"metric": "coldstart.total_s", "measured": 60.0, "unit": "s", "op": None, "test": "t"},
    ])
    b = Baseline.load(path, "10%")
    slow = judge("warm.ttft_median_ms", [115.0], unit="ms", requirement=Requirement("x", "<=", 350))
    fast = judge("warm.ttft_median_ms", [50.0], unit="ms", requirement=Requirement("x", "<=", 350))
    assert b.compare(slow)["regression"] is True and b.compare(fast)["regression"] is False
    drop = judge("warm.output_tok_s", [120.0], unit="tok/s")  # no requirement: direction from unit
    rise = judge("warm.output_tok_s", [200.0], unit="tok/s")
    assert b.compare(drop)["regression"] is True and b.compare(rise)["regression"] is False
    within = judge("coldstart.total_s", [65.0], unit="s")
    assert b.compare(within)["regression"] is False and b.compare(within)["change_pct"] == pytest.approx(8.33, abs=0.01)
    assert b.compare(judge("unknown.metric", [1.0])) is None
    slow.baseline = b.compare(slow)
    assert "regressed +15.0%" in b.describe(slow) and "lower is better" in b.describe(slow)


@pytest.mark.parametrize("body,msg", [("{", "is not JSON"), ('{"schema": 2, "claims": []}', "not a pytest-inference summary.json"), ('{"schema": 1, "claims": [5]}', "malformed claim")])
def test_bad_baselines(tmp_path, body, msg):
    p = tmp_path / "b.json"
    p.write_text(body)
    with pytest.raises(BaselineError, match=msg):
        Baseline.load(str(p))


def test_missing_baseline():
    with pytest.raises(BaselineError, match="not found"):
        Baseline.load("/nonexistent.json")


def test_tolerance_parsing():
    assert parse_tolerance("10%") == pytest.approx(0.10) and parse_tolerance("0.05") == 0.05 and parse_tolerance(None) == 0.10
    with pytest.raises(BaselineError):
        parse_tolerance("ten")
