"""compare: two runs' claims judged on their stored samples with known differences planted."""

from __future__ import annotations

import json

import pytest
from bundle_helpers import H200, claim, lognormal, write_report

from pytest_inference import cli
from pytest_inference.bundle.compare import (IMPROVED, INCONCLUSIVE, NO_CHANGE, REGRESSED, compare_summaries,
                                             judge_pair, needed_samples)
from pytest_inference.bundle.pack import pack

TTFT = "warm.ttft_median_ms"
TOK = "warm.output_tok_s"


def _ttft(samples, **kw):
    return claim(TTFT, samples, stat="median", op="<", threshold=500, unit="ms", **kw)


def _tok(samples, **kw):
    return claim(TOK, samples, stat="mean", op=">=", threshold=100, unit="tok/s",
                 test="suites/warm/test_warm.py::test_tok", **kw)


def test_ttft_shifted_30_percent_is_regressed():
    old = lognormal(60, 120.0, 0.25, seed=11)
    new = [x * 1.3 for x in lognormal(60, 120.0, 0.25, seed=12)]
    row = judge_pair(_ttft(old), _ttft(new))
    assert row.verdict == REGRESSED, row.reason
    assert row.method == "bootstrap" and row.ci_low > 0 and row.better == "lower"
    assert row.ci_low < row.change < row.ci_high
    assert 20 < row.change_pct < 45


def test_faster_ttft_is_improved():
    old = lognormal(60, 120.0, 0.25, seed=13)
    new = [x * 0.7 for x in lognormal(60, 120.0, 0.25, seed=14)]
    assert judge_pair(_ttft(old), _ttft(new)).verdict == IMPROVED


def test_direction_of_a_greater_equal_claim():
    """Throughput (>= claim): lower is a regression, higher an improvement — the opposite of TTFT."""
    old = lognormal(50, 400.0, 0.1, seed=21)
    lower = [x * 0.8 for x in lognormal(50, 400.0, 0.1, seed=22)]
    higher = [x * 1.2 for x in lognormal(50, 400.0, 0.1, seed=23)]
    down, up = judge_pair(_tok(old), _tok(lower)), judge_pair(_tok(old), _tok(higher))
    assert (down.verdict, down.better, up.verdict) == (REGRESSED, "higher", IMPROVED)
    assert down.ci_high < 0 < up.ci_low


def test_same_distribution_redrawn_is_no_change():
    """The same distribution drawn again: the 95% interval covers 0 in (about) 95% of redraws."""
    rows = [judge_pair(_ttft(lognormal(80, 120.0, 0.25, seed=100 + i)), _ttft(lognormal(80, 120.0, 0.25, seed=200 + i)),
                       resamples=1000)
            for i in range(12)]
    verdicts = [r.verdict for r in rows]
    assert verdicts.count(NO_CHANGE) >= 10, verdicts
    assert all(r.ci_low <= 0 <= r.ci_high for r in rows if r.verdict == NO_CHANGE)


def test_few_samples_are_inconclusive():
    row = judge_pair(_ttft([100.0, 110.0, 120.0]), _ttft([200.0, 210.0, 220.0]))
    assert row.verdict == INCONCLUSIVE
    assert row.reason == "too few samples (3 old, 3 new): comparing a median needs >= 10 on each side at 95%"
    # a p99 from 60 samples is the sample's largest value: no interval of it means anything
    p99 = [claim("load.ttft_p99_ms", lognormal(60, 120, 0.3, seed=s), stat="p99") for s in (1, 2)]
    row = judge_pair(*p99)
    assert row.verdict == INCONCLUSIVE and f">= {needed_samples('p99', 0.95)}" in row.reason
    assert needed_samples("p99", 0.95) == 299 and needed_samples("median", 0.95) == 10


def test_spread_uses_a_permutation_test():
    calm = claim("warm.ttft_spread_ms", [100 + (i % 5) * 0.5 for i in range(30)], stat="spread", op="<", threshold=5)
    wild = claim("warm.ttft_spread_ms", [100 + (i % 5) * 3.0 for i in range(30)], stat="spread", op="<", threshold=5)
    row = judge_pair(calm, wild)
    assert (row.method, row.verdict) == ("permutation", REGRESSED) and row.p_value < 0.05
    same = judge_pair(calm, claim("warm.ttft_spread_ms", [100 + ((i + 2) % 5) * 0.5 for i in range(30)],
                                  stat="spread", op="<", threshold=5))
    assert same.verdict == NO_CHANGE and same.p_value > 0.5


def test_what_cannot_be_tested_says_why():
    value = judge_pair(claim("coldstart.total_s", [41.0], stat="value"), claim("coldstart.total_s", [60.0], stat="value"))
    assert value.verdict == INCONCLUSIVE and "one figure per run" in value.reason
    missing = claim(TTFT, [], stat="median", op="<", threshold=500)
    row = judge_pair(_ttft(lognormal(30, 100, 0.2, seed=1)), missing)
    assert row.verdict == INCONCLUSIVE and row.reason.startswith("not measured in the new run (no usable samples")
    other = claim(TOK, lognormal(30, 400, 0.1, seed=2), stat="mean", measured=999.0)  # tokens/s over wall time
    row = judge_pair(other, claim(TOK, lognormal(30, 400, 0.1, seed=3), stat="mean", measured=1.0))
    assert row.verdict == INCONCLUSIVE and "is not the mean of its stored samples" in row.reason
    nodir = [claim("custom.figure", lognormal(30, 10, 0.1, seed=s), stat="mean") for s in (4, 5)]
    nodir[1]["sample_values"] = [x * 2 for x in nodir[1]["sample_values"]]
    nodir[1]["measured"] *= 2
    row = judge_pair(*nodir)
    assert row.verdict == INCONCLUSIVE and "which way is better" in row.reason


def test_pairs_by_test_and_metric_and_is_reproducible():
    old = {"claims": [_ttft(lognormal(40, 100, 0.2, seed=1)), _tok(lognormal(40, 400, 0.1, seed=2)),
                      claim("gone.metric", [1.0, 2.0], stat="mean")]}
    new = {"claims": [_tok(lognormal(40, 400, 0.1, seed=3)), _ttft(lognormal(40, 100, 0.2, seed=4)),
                      claim("new.metric", [1.0, 2.0], stat="mean"),
                      _ttft(lognormal(40, 100, 0.2, seed=5), test="suites/warm/test_warm.py::test_other")]}
    rows = compare_summaries(old, new)
    assert [(r.metric, r.test.rsplit("::", 1)[-1]) for r in rows] == [
        (TOK, "test_tok"), (TTFT, "test_warm"), ("new.metric", "test_warm"), (TTFT, "test_other"),
        ("gone.metric", "test_warm")]
    assert [r.reason for r in rows[2:]] == ["not in the old run", "not in the old run", "not in the new run"]
    again = compare_summaries(old, new)
    assert [(r.verdict, r.ci_low, r.ci_high) for r in rows] == [(r.verdict, r.ci_low, r.ci_high) for r in again]


# ------------------------------------------------------------------------------------------ the CLI
def _runs(tmp_path, *, old_hw=H200, new_hw=H200, shift=1.3):
    old = write_report(tmp_path / "old", [_ttft(lognormal(60, 120, 0.25, seed=31))], hardware=old_hw)
    new = write_report(tmp_path / "new", [_ttft([x * shift for x in lognormal(60, 120, 0.25, seed=32)])],
                       hardware=new_hw)
    return old, new


def test_cli_exit_status_and_forms(tmp_path, capsys):
    old, new = _runs(tmp_path)
    bundle = pack(old, tmp_path / "old.tar.gz", allure_html=False).path
    assert cli.main(["compare", str(bundle), str(new / "summary.json")]) == 1  # regressed: the gate fails
    out = capsys.readouterr().out
    assert "old: " + str(bundle) + " (bundle, hardware " + H200 + ")" in out and "(summary.json" in out
    assert "regressed" in out and "1 regressed" in out.splitlines()[-1]
    same = write_report(tmp_path / "same", [_ttft(lognormal(60, 120, 0.25, seed=33))])
    assert cli.main(["compare", str(old), str(same), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["confidence"] == 0.95 and [r["verdict"] for r in data["rows"]] == [NO_CHANGE]
    assert data["old"]["kind"] == "report folder"


@pytest.mark.parametrize("old_hw, new_hw, why", [
    (H200, "nvidia NVIDIA H100 80GB HBM3 x8", "different hardware: 'nvidia NVIDIA H200 x1' vs 'nvidia NVIDIA H100 80GB HBM3 x8'"),
    (H200, "unknown", "the new run's hardware is unknown"),
    (None, H200, "the old run's hardware is unknown"),
])
def test_refuses_different_or_unknown_hardware(tmp_path, capsys, old_hw, new_hw, why):
    old, new = _runs(tmp_path, old_hw=old_hw, new_hw=new_hw)
    assert cli.main(["compare", str(old), str(new)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == 1
    assert err.startswith(f"pytest-inference compare: refused: {why}") and "--allow-different-hardware" in err
    assert cli.main(["compare", str(old), str(new), "--allow-different-hardware", "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["hardware_note"].startswith(why.split(":")[0])
    assert [(r["verdict"], r["note"]) for r in data["rows"]] == [(REGRESSED, "different hardware")]


def _exit_code(argv) -> int:
    """cli.main's return value, or the status of the SystemExit a parser error raises."""
    try:
        return cli.main(argv)
    except SystemExit as exc:
        return exc.code


def test_bad_input_is_one_line(tmp_path, capsys):
    old, _ = _runs(tmp_path)
    (tmp_path / "x.json").write_text('{"schema": 2}')
    for argv, says in ((["compare", str(old), str(tmp_path / "nope")], "nope: no such file or folder"),
                       (["compare", str(old), str(old), "--confidence", "2"], "--confidence 2 must lie in 0.5 .. 0.999"),
                       (["compare", str(old)], "the following arguments are required: NEW"),
                       (["compare", str(old), str(tmp_path / "x.json")], "is not a pytest-inference summary.json")):
        code = _exit_code(argv)
        err = capsys.readouterr().err
        assert code == 2 and len(err.splitlines()) == 1 and says in err, err


def test_resamples_shrink_for_large_runs_but_not_below_the_floor():
    from pytest_inference.bundle.compare import MIN_RESAMPLES, RESAMPLES, resamples_for

    assert resamples_for(120) == RESAMPLES and resamples_for(4000) == RESAMPLES // 2
    assert resamples_for(200_000) == MIN_RESAMPLES
    big = [claim("load.ttft_p99_ms", lognormal(1500, 100, 0.3, seed=s), stat="p99") for s in (8, 9)]
    row = judge_pair(*big)
    assert row.resamples == 1333 and row.verdict == NO_CHANGE, row.reason
