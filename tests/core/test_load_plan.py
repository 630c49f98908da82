"""The load suite's plan (pytest_inference/load.py): what the settings ask for, parsed once, and
its one-line refusals."""

from __future__ import annotations

import pytest

from pytest_inference import load
from pytest_inference.settings import RunSettings
from pytest_inference.targets import load_target


@pytest.mark.parametrize("text,want", [("4", [4.0]), (" 2, 4.5 ,8 ", [2.0, 4.5, 8.0]), ("0.25", [0.25])])
def test_rates(text, want):
    assert load.parse_rates(text) == want


@pytest.mark.parametrize("text,says", [
    ("", "load rate is empty"), ("0", "'0' must be > 0"), ("-2", "'-2' must be > 0"), ("4,x", "'x' is not a number"),
    ("nan", "'nan' must be > 0"), ("inf", "'inf' must be > 0"), ("4,4", "'4' is given twice"), ("4,,8", "'' is not"),
])
def test_bad_rates_are_one_line(text, says):
    with pytest.raises(ValueError) as e:
        load.parse_rates(text)
    assert says in str(e.value) and "\n" not in str(e.value)


def test_concurrencies_are_positive_integers():
    assert load.parse_concurrencies("4,16") == [4, 16]
    for bad in ("0", "1.5", "x"):
        with pytest.raises(ValueError, match="load concurrency"):
            load.parse_concurrencies(bad)


@pytest.mark.parametrize("text,want", [("auto", None), ("AUTO ", None), ("1", 1), ("4", 4)])
def test_workers(text, want):
    assert load.parse_workers(text) == want


@pytest.mark.parametrize("text", ["0", "65", "two", ""])
def test_bad_workers(text):
    with pytest.raises(ValueError, match="load workers"):
        load.parse_workers(text)


def _plan(**over):
    base = dict(points=[load.Point(rate_rps=4.0)], requests=60, duration_s=None, warmup=2, arrival="poisson", seed=0,
                slo_text="ttft_ms:100", workload_spec="synthetic:input=8,output=4", workers=None, max_lag_ms=1.0,
                search=load.Search(1, None, 64, 48, 60, 8, 0.1))
    base.update(over)
    return load.Plan(**base)


def test_auto_workers_one_per_400_rps_at_most_the_cpus():
    p = _plan()
    assert p.workers_for(None, cpus=8) == 1  # a closed loop runs in one process
    assert [p.workers_for(r, cpus=8) for r in (4, 400, 401, 1000, 10000)] == [1, 1, 2, 3, 8]
    assert p.workers_for(10000, cpus=2) == 2
    assert _plan(workers=3).workers_for(4, cpus=2) == 3  # a fixed number is the user's
    assert _plan().to_dict()["workers"] == "auto"


def test_a_probe_lasts_at_least_min_s_and_is_judged_on_attainment():
    s = load.Search(4, None, 64, 48, 60, 8, 0.25, attainment=0.95, min_s=5)
    assert [s.requests_at(r) for r in (4, 8, 16, 64)] == [48, 48, 81, 321]  # 5 s of arrivals: rate x 5 + 1
    assert load.Search(4, None, 64, 48, 60, 8, 0.25).requests_at(64) == 48  # min_s 0: the count alone
    rule = s.probe_rule()
    assert (rule.metric, rule.op, rule.threshold, rule.stat) == ("load.slo_attainment", ">=", 0.95, "attainment")


def test_the_plan_from_a_target(pytester):
    pytester.makefile(".toml", t='name = "t"\n[load]\nrate_rps = "3,6"\nconcurrency = "8"\nslo = "ttft_ms:500"\n'
                                 'duration_s = 20\nworkers = "2"\n')
    p = load.plan(RunSettings(pytester.parseconfig(), load_target(str(pytester.path / "t.toml"))))
    assert [x.id for x in p.points] == ["3rps", "6rps", "c8"]
    assert p.length() == {"duration_s": 20.0} and p.requests is None  # a duration wins over the count
    assert p.slo.bounds() == {"ttft_ms": 500.0} and p.workers_for(3) == 2
    assert p.sources["load_rate_rps"] == "target t [load] rate_rps"
    assert [x.describe() for x in p.points][-1] == "concurrency 8 (closed loop)"
