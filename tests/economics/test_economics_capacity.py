"""Cost from capacity (issue 12 item 5): ⌈R / C⌉ GPUs, every crossing with serverless' line, the table,
the chart data, and ``pytest-inference crossover --capacity-rps`` (bad input: one line, exit 2)."""

import json
import math

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from pytest_inference import economics as econ
from pytest_inference.cli import main
from pytest_inference.economics import Capacity, EconomicsError, Pricing
from pytest_inference.report.figures import check, lines

SEED = Pricing(gpu_usd_per_hour=1.88, usd_per_m_input=0.10, usd_per_m_output=0.70)
SEED_ARGS = ["crossover", "--gpu-hourly", "1.88", "--price-in", "0.10", "--price-out", "0.70", "--input-tokens", "80"]

rate = st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False)
capacity = st.floats(min_value=1e-3, max_value=1e4, allow_nan=False, allow_infinity=False)
price = st.floats(min_value=1e-2, max_value=1e2, allow_nan=False, allow_infinity=False)
tokens = st.integers(min_value=1, max_value=20_000)
pricing = st.builds(Pricing, price, price, price)


# --- the step arithmetic -----------------------------------------------------------------------------
@settings(max_examples=300, deadline=None)
@given(rate, capacity)
def test_gpus_is_the_least_count_that_carries_the_rate(r, c):
    n = econ.gpus_needed(r, c)
    assert isinstance(n, int) and n >= 1
    assert n * c >= r  # enough GPUs ...
    assert n == 1 or (n - 1) * c < r  # ... and not one more than needed: ⌈R / C⌉ (at least one)
    q = r / c  # the quotient's ceiling, but where the float quotient rounded across an integer
    assert n == max(1, math.ceil(q)) or abs(q - round(q)) <= 1e-9 * max(1.0, q)


@settings(max_examples=300, deadline=None)
@given(pricing, rate, rate, st.one_of(st.none(), capacity))
def test_self_hosted_cost_never_falls_as_the_rate_rises(p, r1, r2, c):
    lo, hi = sorted((r1, r2))
    a, b = econ.self_hosted_usd_per_hour(p, lo, c), econ.self_hosted_usd_per_hour(p, hi, c)
    assert a <= b
    assert a == econ.gpus_needed(lo, c) * p.gpu_usd_per_hour
    if c is None:  # today's model: one GPU at any rate
        assert a == b == p.gpu_usd_per_hour


def test_exact_multiples_need_exactly_that_many_gpus():
    assert [econ.gpus_needed(r, 4) for r in (0, 0.5, 4, 4.0000001, 8, 12, 12.5)] == [1, 1, 1, 2, 2, 3, 4]
    assert econ.gpus_needed(0.3, 0.1) == 3  # 0.3 / 0.1 = 2.9999999999999996 in floats
    assert econ.gpus_needed(0.7, 0.1) == 7  # 0.7 / 0.1 = 6.999999999999999
    assert econ.gpus_needed(1e6, None) == 1


# --- crossings -------------------------------------------------------------------------------------------
def test_seed_medium_at_four_rps_per_gpu_crosses_nine_times():
    """$1.88/h vs $0.10/$0.70, 80 in / 220 out: break-even 3.22 req/s; at 4 req/s per GPU serverless is
    cheaper again just past 4, 8, 12 and 16 req/s; from 5 × 3.22 = 16.12 req/s on the GPUs stay cheaper."""
    s = econ.step_breakeven(SEED, 80, 220, 4)
    be = 1.88 / 3600 / 0.000162
    assert s.breakeven_rps == pytest.approx(be) and s.first_rps == pytest.approx(be)
    got = [(round(c.rps, 4), c.cheaper, c.gpus) for c in s.crossings]
    want = []
    for k in range(1, 6):
        if k > 1:
            want.append((round(4.0 * (k - 1), 4), "serverless", k))
        want.append((round(k * be, 4), "gpu", k))
    assert got == want and s.crossings_total == 9
    assert s.gpu_cheaper_above_rps == pytest.approx(5 * be) and s.gpus_at_gpu_cheaper == 5


def test_capacity_above_the_breakeven_changes_nothing_below_it():
    s = econ.step_breakeven(SEED, 80, 1200, 20)  # long: 0.62 req/s, far below 20
    assert [c.cheaper for c in s.crossings] == ["gpu"] and s.first_rps == s.gpu_cheaper_above_rps == s.breakeven_rps
    # and no capacity: today's single crossing
    t = econ.step_breakeven(SEED, 80, 1200, None)
    assert t.crossings_total == 1 and t.first_rps == s.first_rps and t.capacity_rps is None


def test_capacity_at_or_below_the_breakeven_never_crosses():
    be = econ.breakeven_requests_per_second(SEED, 80, 30)  # 18.01
    for c in (1.0, 18.0, be):
        s = econ.step_breakeven(SEED, 80, 30, c)
        assert s.first_rps is None and s.gpu_cheaper_above_rps is None and s.crossings == [] and s.crossings_total == 0


def _expected(crossings, r):
    cheaper = "serverless"
    for c in crossings:
        if r > c.rps:
            cheaper = c.cheaper
    return cheaper


@settings(max_examples=200, deadline=None)
@given(pricing, tokens, tokens, capacity, st.lists(st.floats(min_value=0, max_value=1), min_size=1, max_size=30))
def test_crossings_agree_with_the_costs_at_every_rate(p, i, o, c, fractions):
    """Between crossings the option each crossing names is the cheaper one (brute force at sampled rates)."""
    s = econ.step_breakeven(p, i, o, c)
    assume(s.crossings_total == len(s.crossings))  # all listed
    top = 3 * max([c, *(x.rps for x in s.crossings)])
    points = {x.rps for x in s.crossings} | {k * c for k in range(1, int(top / c) + 2)}
    for f in fractions:
        r = f * top
        if r == 0 or any(abs(r - q) <= 1e-9 * max(q, 1e-12) for q in points):
            continue  # on a crossing or a step edge: equal within rounding
        got = econ.cheaper_at(p, i, o, r, c)
        assert got in (_expected(s.crossings, r), "same"), (r, s.to_dict())
    # crossings alternate and rise; past the last the GPUs win at every step end and start
    assert [x.rps for x in s.crossings] == sorted(x.rps for x in s.crossings)
    assert all(a.cheaper != b.cheaper for a, b in zip(s.crossings, s.crossings[1:]))
    if s.gpu_cheaper_above_rps is not None:
        last = s.gpu_cheaper_above_rps
        n = econ.gpus_needed(last, c)
        for k in range(n, n + 5):  # just past each following step the GPUs are still cheaper
            r = k * c * (1 + 1e-7)
            if r > last * (1 + 1e-9):
                assert econ.cheaper_at(p, i, o, r, c) in ("gpu", "same")


def test_many_crossings_are_counted_and_capped():
    be = econ.breakeven_requests_per_second(SEED, 80, 220)
    s = econ.step_breakeven(SEED, 80, 220, be * 1.0001)  # k_max ~ 10,000 steps
    assert s.crossings_total > econ.MAX_LISTED_CROSSINGS == len(s.crossings)
    assert s.gpu_cheaper_above_rps == pytest.approx((s.crossings_total + 1) / 2 * be)


# --- cost per 1M output tokens, the table --------------------------------------------------------------
def test_cost_per_million_output_tokens_at_capacity():
    # one GPU at 4 req/s x 220 tokens = 3.168M tokens/h for $1.88
    assert econ.self_hosted_usd_per_m_output(SEED, 4, 220) == pytest.approx(1.88 / (4 * 3600 * 220) * 1e6)
    assert econ.self_hosted_usd_per_m_output(SEED, 4, 220) == pytest.approx(0.59343, abs=1e-5)
    assert econ.serverless_usd_per_m_output(SEED, 80, 220) == pytest.approx(0.000162 / 220 * 1e6)


def test_capacity_table_text_and_rows():
    cap = Capacity(4, "given", "option --capacity-rps")
    rows = econ.capacity_table(SEED, 80, None, cap.rps)
    text = econ.format_capacity_table(rows, SEED, cap)
    lines_ = text.splitlines()
    assert lines_[1].startswith("capacity given: 4 req/s per GPU (option --capacity-rps)")
    assert "GPUs needed" in lines_[2] and "self-hosted $/1M out at SLO" in lines_[2]
    assert lines_[4].split() == ["short", "80", "30", "0.000029", "never", "never", "-", "0", "4.3519", "0.9667"]
    assert lines_[5].split() == ["medium", "80", "220", "0.000162", "3.22", "16.12", "5", "9", "0.5934", "0.7364"]
    assert lines_[6].split() == ["long", "80", "1200", "0.000848", "0.62", "0.62", "1", "1", "0.1088", "0.7067"]
    assert "medium crossings (rate, cheaper above): 3.22 gpu, 4.00 serverless, 6.45 gpu" in text
    d = rows[1].to_dict()
    assert d["gpus_needed"] == 5 and d["crossings_total"] == 9 and d["capacity_rps"] == 4
    no = econ.format_capacity_table(econ.capacity_table(SEED, 80, None, None), SEED, None)
    assert no.splitlines()[-1] == econ.NO_CAPACITY and "18.01" in no


def test_step_chart_is_a_lines_figure_of_the_step_curve_and_the_line():
    series, marks = econ.step_chart_data(SEED, 80, {"medium": 220}, 4)
    fig = check(lines(series, "t", "req/s", "USD/h", marks))
    steps, line = fig["series"]
    assert steps["label"].startswith("self-hosted: ceil(R / 4 req/s) GPUs")
    for x, y in zip(steps["x"], steps["y"]):  # each point is k GPUs' price, k = ⌈x / 4⌉ or the next at a jump
        assert y / 1.88 == pytest.approx(round(y / 1.88))
        assert round(y / 1.88) in (econ.gpus_needed(x, 4), econ.gpus_needed(x, 4) + 1)
    assert steps["x"] == sorted(steps["x"]) and steps["x"][-1] == line["x"][-1] == pytest.approx(2 * 5 * 3.2236, rel=1e-3)
    assert len(marks) == 9  # every crossing, on serverless' line
    for _, x, y in marks:
        assert y == pytest.approx(econ.serverless_usd_per_hour(SEED, 80, 220, x))


# --- capacity from the session or an option -------------------------------------------------------------
def test_published_capacity_is_measured_and_wins_over_a_given_one():
    data = {"rps": 12.0, "bracket": [12, 14], "slo": {"ttft_ms": 400}}
    cap, notes = econ.choose_capacity([("capacity.max_rps_at_slo from t1", data)], 3.0)
    assert (cap.rps, cap.kind, cap.bracket, cap.slo) == (12.0, "measured", (12.0, 14.0), {"ttft_ms": 400})
    assert cap.describe() == "measured: 12 req/s per GPU (capacity.max_rps_at_slo from t1), bracket [12, 14] req/s"
    assert notes == ["given 3 req/s (option --capacity-rps) not used: a measured capacity wins"]
    open_above = econ.capacity_from_data({"rps": 16, "bracket": [16, None]}, "m")  # every probed rate held
    assert open_above.bracket == (16.0, None) and "bracket [16, no rate probed failed]" in open_above.describe()
    given, notes = econ.choose_capacity([], 3.0)
    assert (given.rps, given.kind, notes) == (3.0, "given", [])
    assert econ.choose_capacity([], None) == (None, [])


@pytest.mark.parametrize("data, needle", [
    ({"rps": None, "bracket": None}, "no rps (the search found no rate that held the SLO)"),
    ({"rps": -2}, "rps must be greater than 0"),
    ({"rps": float("nan")}, "rps must be a finite number"),
    ({"rps": 5, "bracket": [6, 8]}, "rps 5 lies outside its bracket [6, 8]"),
    ({"rps": 5, "bracket": [4]}, "bracket must be [highest rate that passed, lowest that failed]"),
    ({"rps": 5, "bracket": [None, 8]}, "bracket must be [highest rate that passed, lowest that failed]"),
    ({"rps": 5, "bracket": [6, None]}, "rps 5 lies outside its bracket [6, open]"),
    ([12], "data must be a table with rps"),
])
def test_unusable_published_capacity_is_a_note_not_a_capacity(data, needle):
    with pytest.raises(EconomicsError) as exc:
        econ.capacity_from_data(data, "m")
    assert needle in str(exc.value) and "\n" not in str(exc.value)
    cap, notes = econ.choose_capacity([("m", data)], None)
    assert cap is None and len(notes) == 1 and needle in notes[0] and notes[0].startswith("not used: m: ")
    # an earlier usable one still counts; a given one is the fallback
    cap, _ = econ.choose_capacity([("old", {"rps": 7}), ("m", data)], 2.0)
    assert (cap.rps, cap.kind) == (7, "measured")


@pytest.mark.parametrize("value", [0, -1, math.nan, math.inf, "4", True])
def test_bad_capacity_is_one_line(value):
    with pytest.raises(EconomicsError) as exc:
        Capacity(value, "given", "x")
    assert "capacity_rps" in str(exc.value) and "\n" not in str(exc.value)
    with pytest.raises(EconomicsError):
        econ.gpus_needed(1, value)


# --- pytest-inference crossover --capacity-rps ---------------------------------------------------------
def run(capsys, *argv):
    try:
        rc = main(list(argv))
    except SystemExit as exc:
        rc = exc.code
    out, err = capsys.readouterr()
    return rc, out, err


def test_crossover_with_capacity(capsys):
    rc, out, err = run(capsys, *SEED_ARGS, "--capacity-rps", "4")
    assert rc == 0 and err == ""
    assert "capacity given: 4 req/s per GPU (option --capacity-rps)" in out
    assert out.splitlines()[5].split()[4:8] == ["3.22", "16.12", "5", "9"]
    rc, out, err = run(capsys, *SEED_ARGS, "--capacity-rps", "4", "--json")
    data = json.loads(out)
    assert data["capacity"]["kind"] == "given" and data["capacity_note"] is None
    medium = data["rows"][1]
    assert medium["gpus_needed"] == 5 and medium["crossings_total"] == len(medium["crossings"]) == 9
    assert medium["self_hosted_usd_per_m_output_at_slo"] == pytest.approx(0.59343, abs=1e-5)


def test_crossover_without_capacity_says_so(capsys):
    rc, out, err = run(capsys, *SEED_ARGS, "--json")
    data = json.loads(out)
    assert rc == 0 and data["capacity"] is None and data["capacity_note"] == econ.NO_CAPACITY
    assert data["rows"][0]["gpus_needed"] == 1 and data["rows"][0]["self_hosted_usd_per_m_output_at_slo"] is None


@pytest.mark.parametrize("value, needle", [
    ("0", "must be greater than 0"), ("-3", "must be greater than 0"), ("nan", "must be a finite number"),
    ("inf", "must be a finite number"), ("lots", "must be a number"),
])
def test_bad_capacity_option_is_one_line_exit_2(capsys, value, needle):
    rc, out, err = run(capsys, *SEED_ARGS, "--capacity-rps", value)
    assert rc == 2 and out == ""
    assert err.splitlines() == [f"pytest-inference crossover: argument --capacity-rps: {needle} "
                                f"(requests/s one GPU serves within the SLO); got '{value}'"]


def test_capacity_from_a_pricing_file_or_the_target_the_option_wins(capsys, tmp_path):
    f = tmp_path / "prices.toml"
    f.write_text("capacity_rps = 4\n")
    rc, out, err = run(capsys, *SEED_ARGS, "--pricing", str(f), "--json")
    data = json.loads(out)
    assert rc == 0 and data["capacity"]["rps"] == 4 and data["capacity"]["source"] == f"pricing file {f}"
    rc, out, err = run(capsys, *SEED_ARGS, "--pricing", str(f), "--capacity-rps", "8", "--json")
    data = json.loads(out)
    assert data["capacity"]["rps"] == 8 and data["capacity"]["source"] == "option --capacity-rps"
    s = econ.resolve_settings({}, None, {"gpu_usd_per_hour": 1.88, "usd_per_m_input": 0.1, "usd_per_m_output": 0.7,
                                         "input_tokens": 80, "capacity_rps": 12}, "h200")
    assert s.capacity_rps == 12 and s.sources["capacity_rps"] == "target h200"
    f.write_text("capacity_rps = 0\n")
    rc, out, err = run(capsys, *SEED_ARGS, "--pricing", str(f))
    assert rc == 2 and err.splitlines() == [f"pytest-inference crossover: argument --pricing: pricing file {f}: capacity_rps "
                                            "must be greater than 0 (requests/s one GPU serves within the SLO); got 0"]
