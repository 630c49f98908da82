"""The cost model (pytest_inference.economics): the seed's table, its properties, and one line per bad input."""

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_inference.economics import (
    DEFAULT_OUTPUT_LENGTHS,
    EconomicsError,
    Pricing,
    PricingFile,
    breakeven_requests_per_hour,
    breakeven_requests_per_second,
    chart_data,
    choose_measurement,
    cost_per_hour_curves,
    cost_per_request,
    crossover_table,
    format_table,
    load_pricing_file,
    measurement_from_results,
    parse_output_lengths,
    parse_positive,
    resolve_settings,
    serverless_usd_per_hour,
    swing,
)

SEED = Pricing(gpu_usd_per_hour=1.88, usd_per_m_input=0.10, usd_per_m_output=0.70)


# --- the seed's table ------------------------------------------------------------------------------
def test_seed_table_reproduced():
    """Article A: ~30 / ~220 / ~1,200 output tokens -> ~18 / ~3 / < 1 req/s at ~80 input tokens."""
    rows = {r.name: r for r in crossover_table(SEED, 80)}
    assert list(rows) == ["short", "medium", "long"]
    short, medium, long_ = rows["short"], rows["medium"], rows["long"]
    # $ per request: 80 x 0.10/1M + out x 0.70/1M
    assert short.usd_per_request == pytest.approx(0.000029, rel=1e-12)
    assert medium.usd_per_request == pytest.approx(0.000162, rel=1e-12)
    assert long_.usd_per_request == pytest.approx(0.000848, rel=1e-12)
    # break-even requests per hour = 1.88 / $ per request
    assert short.breakeven_requests_per_hour == pytest.approx(64827.586, rel=1e-7)
    assert medium.breakeven_requests_per_hour == pytest.approx(11604.938, rel=1e-7)
    assert long_.breakeven_requests_per_hour == pytest.approx(2216.981, rel=1e-7)
    # ... and per second: the seed's ~18, ~3, < 1
    assert short.breakeven_requests_per_second == pytest.approx(18.008, abs=5e-4)
    assert medium.breakeven_requests_per_second == pytest.approx(3.224, abs=5e-4)
    assert long_.breakeven_requests_per_second == pytest.approx(0.616, abs=5e-4)
    assert round(short.breakeven_requests_per_second) == 18
    assert round(medium.breakeven_requests_per_second) == 3
    assert long_.breakeven_requests_per_second < 1
    # the seed calls the swing "~25x"; from its own inputs it is 29.2x (18.01 / 0.616)
    assert swing(rows.values()) == pytest.approx(29.241, abs=1e-3)


def test_seed_figures_pin_the_input_tokens_near_80():
    """"Consistent with roughly 80 input tokens": ~18 / ~3 / < 1 hold for 73-88 input tokens only."""
    def seed_holds(tokens):
        r = {x.name: x.breakeven_requests_per_second for x in crossover_table(SEED, tokens)}
        return round(r["short"]) == 18 and round(r["medium"]) == 3 and r["long"] < 1

    assert [t for t in range(1, 400) if seed_holds(t)] == list(range(73, 89))


def test_default_lengths_are_the_seeds():
    assert DEFAULT_OUTPUT_LENGTHS == {"short": 30, "medium": 220, "long": 1200}
    assert [r.output_tokens for r in crossover_table(SEED, 80, {"a": 5, "b": 7})] == [5, 7]


def test_format_table_is_aligned():
    text = format_table(crossover_table(SEED, 80), SEED)
    lines = text.splitlines()
    assert lines[0] == "GPU $1.88/h vs serverless $0.10 / $0.70 per 1M input / output tokens"
    assert lines[1].split() == ["length", "input", "tok", "output", "tok", "$/request", "break-even", "req/h",
                                "break-even", "req/s"]
    assert lines[3].split() == ["short", "80", "30", "0.000029", "64,828", "18.01"]
    assert lines[4].split() == ["medium", "80", "220", "0.000162", "11,605", "3.22"]
    assert lines[5].split() == ["long", "80", "1200", "0.000848", "2,217", "0.62"]
    assert len({len(line) for line in lines[1:6]}) == 1  # every row as wide as the header
    assert "swing short / long: 29.2x" in text


# --- properties --------------------------------------------------------------------------------------
price = st.floats(min_value=1e-3, max_value=1e3, allow_nan=False, allow_infinity=False)
tokens = st.integers(min_value=1, max_value=200_000)
factor = st.floats(min_value=1e-3, max_value=1e3, allow_nan=False, allow_infinity=False)
pricing = st.builds(Pricing, price, price, price)


@settings(max_examples=200, deadline=None)
@given(pricing, tokens, tokens, tokens)
def test_breakeven_falls_as_output_tokens_grow(p, i, o1, o2):
    lo, hi = sorted((o1, o2))
    a, b = breakeven_requests_per_second(p, i, lo), breakeven_requests_per_second(p, i, hi)
    assert a > b if lo < hi else a == b


@settings(max_examples=200, deadline=None)
@given(pricing, tokens, tokens, tokens)
def test_breakeven_falls_as_input_tokens_grow(p, i1, i2, o):
    lo, hi = sorted((i1, i2))
    a, b = breakeven_requests_per_hour(p, lo, o), breakeven_requests_per_hour(p, hi, o)
    assert a > b if lo < hi else a == b


@settings(max_examples=200, deadline=None)
@given(pricing, tokens, tokens, factor)
def test_breakeven_scales_linearly_with_the_gpu_price(p, i, o, k):
    scaled = Pricing(p.gpu_usd_per_hour * k, p.usd_per_m_input, p.usd_per_m_output)
    assert breakeven_requests_per_hour(scaled, i, o) == pytest.approx(k * breakeven_requests_per_hour(p, i, o), rel=1e-12)


@settings(max_examples=200, deadline=None)
@given(pricing, tokens, tokens, factor)
def test_breakeven_scales_inversely_with_the_token_prices(p, i, o, k):
    scaled = Pricing(p.gpu_usd_per_hour, p.usd_per_m_input * k, p.usd_per_m_output * k)
    assert breakeven_requests_per_hour(scaled, i, o) == pytest.approx(breakeven_requests_per_hour(p, i, o) / k, rel=1e-12)


@settings(max_examples=200, deadline=None)
@given(pricing, tokens, tokens, st.one_of(st.none(), st.floats(min_value=1e-3, max_value=1e6)))
def test_cost_curves_cross_exactly_at_the_breakeven(p, i, o, rps_max):
    be = breakeven_requests_per_second(p, i, o)
    c = cost_per_hour_curves(p, i, o, rps_max)
    assert c.breakeven_requests_per_second == be and c.crossover_usd_per_hour == p.gpu_usd_per_hour
    assert c.requests_per_second == sorted(c.requests_per_second) and c.requests_per_second[0] == 0
    assert set(c.gpu_usd_per_hour) == {p.gpu_usd_per_hour}
    if be <= c.requests_per_second[-1]:
        at = c.requests_per_second.index(be)  # the break-even is a point of the grid ...
        assert c.serverless_usd_per_hour[at] == c.gpu_usd_per_hour[at]  # ... where both cost the same
    # serverless is cheaper below the break-even, dearer above it
    for x, s, g in zip(c.requests_per_second, c.serverless_usd_per_hour, c.gpu_usd_per_hour):
        if x < be * (1 - 1e-9):
            assert s < g
        elif x > be * (1 + 1e-9):
            assert s > g
    # and the continuous curve meets the GPU price there
    assert serverless_usd_per_hour(p, i, o, be) == pytest.approx(p.gpu_usd_per_hour, rel=1e-12)


@settings(max_examples=100, deadline=None)
@given(pricing, tokens, tokens)
def test_cost_per_request_is_the_token_bill(p, i, o):
    assert cost_per_request(p, i, o) == pytest.approx((i * p.usd_per_m_input + o * p.usd_per_m_output) / 1e6, rel=1e-12)
    assert breakeven_requests_per_second(p, i, o) * 3600 == pytest.approx(breakeven_requests_per_hour(p, i, o), rel=1e-12)


def test_chart_data_marks_every_crossover():
    series, marks = chart_data(SEED, 80, DEFAULT_OUTPUT_LENGTHS)
    assert len(series) == 4 and next(iter(series)).startswith("GPU, flat $1.88/h")
    assert [round(m[1], 2) for m in marks] == [18.01, 3.22, 0.62]
    assert all(m[2] == 1.88 for m in marks)
    for (xs, ys), mark in zip(list(series.values())[1:], marks):
        assert ys[xs.index(mark[1])] == 1.88


# --- bad input: one line naming the field ------------------------------------------------------------
def one_line(exc_info, *needles):
    text = str(exc_info.value)
    assert "\n" not in text, text
    for needle in needles:
        assert needle in text, text
    return text


@pytest.mark.parametrize("kwargs, needles", [
    ({"gpu_usd_per_hour": -1.88, "usd_per_m_input": 0.1, "usd_per_m_output": 0.7}, ["gpu_usd_per_hour", "greater than 0", "-1.88"]),
    ({"gpu_usd_per_hour": 0, "usd_per_m_input": 0.1, "usd_per_m_output": 0.7}, ["gpu_usd_per_hour", "greater than 0"]),
    ({"gpu_usd_per_hour": 1.88, "usd_per_m_input": 0.0, "usd_per_m_output": 0.7}, ["usd_per_m_input", "greater than 0"]),
    ({"gpu_usd_per_hour": 1.88, "usd_per_m_input": 0.1, "usd_per_m_output": -0.7}, ["usd_per_m_output", "greater than 0"]),
    ({"gpu_usd_per_hour": math.nan, "usd_per_m_input": 0.1, "usd_per_m_output": 0.7}, ["gpu_usd_per_hour", "finite"]),
    ({"gpu_usd_per_hour": 1.88, "usd_per_m_input": math.inf, "usd_per_m_output": 0.7}, ["usd_per_m_input", "finite"]),
    ({"usd_per_m_input": 0.1, "usd_per_m_output": 0.7}, ["gpu_usd_per_hour is missing"]),
    ({"gpu_usd_per_hour": 1.88, "usd_per_m_input": 0.1}, ["usd_per_m_output is missing"]),
    ({"gpu_usd_per_hour": "1.88", "usd_per_m_input": 0.1, "usd_per_m_output": 0.7}, ["gpu_usd_per_hour", "must be a number"]),
    ({"gpu_usd_per_hour": True, "usd_per_m_input": 0.1, "usd_per_m_output": 0.7}, ["gpu_usd_per_hour", "must be a number"]),
])
def test_bad_pricing_is_one_line(kwargs, needles):
    with pytest.raises(EconomicsError) as exc:
        Pricing(**kwargs)
    one_line(exc, *needles)


@pytest.mark.parametrize("call, needles", [
    (lambda: cost_per_request(SEED, 0, 30), ["input_tokens", "greater than 0"]),
    (lambda: cost_per_request(SEED, 80, 0), ["output_tokens", "greater than 0"]),
    (lambda: breakeven_requests_per_hour(SEED, -5, 30), ["input_tokens"]),
    (lambda: breakeven_requests_per_second(SEED, 80, math.nan), ["output_tokens", "finite"]),
    (lambda: breakeven_requests_per_second(SEED, None, 30), ["input_tokens is missing"]),
    (lambda: crossover_table(SEED, 80, {"short": 0}), ["output_lengths.short", "greater than 0"]),
    (lambda: crossover_table(SEED, 80, {}), ["output_lengths is empty"]),
    (lambda: crossover_table(SEED, 80, {"bad name": 30}), ["'bad name'", "not a usable name"]),
    (lambda: crossover_table(SEED, 0, {"short": 30}), ["input_tokens"]),
    (lambda: cost_per_hour_curves(SEED, 80, 30, rps_max=0), ["rps_max"]),
    (lambda: cost_per_hour_curves(SEED, 80, 30, points=1), ["points"]),
    (lambda: breakeven_requests_per_hour(Pricing(1e308, 1e308, 1e308), 1e300, 1e300), ["out of range"]),
    (lambda: Pricing.from_mapping({"gpu_usd_per_hour": 1.88, "usd_per_m_input": 0.1}, "prices.toml: "),
     ["prices.toml: usd_per_m_output is missing"]),
])
def test_bad_model_input_is_one_line(call, needles):
    with pytest.raises(EconomicsError) as exc:
        call()
    one_line(exc, *needles)


@pytest.mark.parametrize("text, needles", [
    ("-1", ["--price-in", "greater than 0", "'-1'"]),
    ("0", ["--price-in", "greater than 0"]),
    ("abc", ["--price-in", "must be a number"]),
    ("nan", ["--price-in", "finite"]),
])
def test_bad_option_number_is_one_line(text, needles):
    with pytest.raises(EconomicsError) as exc:
        parse_positive("usd_per_m_input", text)
    one_line(exc, *needles)


def test_output_lengths_option():
    assert parse_output_lengths("30,220,1200") == {"short": 30, "medium": 220, "long": 1200}
    assert parse_output_lengths("short=30, huge=8000") == {"short": 30, "huge": 8000}
    assert parse_output_lengths("50,500") == {"out50": 50, "out500": 500}
    for text, needle in [("", "empty"), ("30,0,5", "greater than 0"), ("short=30,40", "name every length or none"),
                         ("a=1,a=2", "given twice"), ("9x=5", "not a usable name"), ("30,,x", "must be a number")]:
        with pytest.raises(EconomicsError) as exc:
            parse_output_lengths(text)
        one_line(exc, "--output-lengths", needle)


# --- settings: target, pricing file, options ----------------------------------------------------------
MI300X = {"gpu_usd_per_hour": 1.88, "usd_per_m_input": 0.10, "usd_per_m_output": 0.70, "input_tokens": 80,
          "output_lengths": {"short": 30, "medium": 220, "long": 1200}}


def test_precedence_options_over_file_over_target(tmp_path):
    f = tmp_path / "prices.toml"
    f.write_text('gpu_usd_per_hour = 3.76\nusd_per_m_input = 0.2\n')
    s = resolve_settings({"usd_per_m_input": 0.15, "gpu_usd_per_hour": None}, load_pricing_file(f), MI300X, "mi300x")
    assert s.pricing == Pricing(3.76, 0.15, 0.70)
    assert s.sources == {"gpu_usd_per_hour": f"pricing file {f}", "usd_per_m_input": "option --price-in",
                         "usd_per_m_output": "target mi300x", "input_tokens": "target mi300x",
                         "output_lengths": "target mi300x"}
    assert s.input_tokens == 80 and s.output_lengths == {"short": 30, "medium": 220, "long": 1200}


def test_target_alone_and_default_lengths():
    s = resolve_settings(None, None, {k: v for k, v in MI300X.items() if k != "output_lengths"}, "mi300x")
    assert s.output_lengths == DEFAULT_OUTPUT_LENGTHS and s.sources["output_lengths"].startswith("default")


def test_pricing_file_formats(tmp_path):
    j = tmp_path / "p.json"
    j.write_text(json.dumps(MI300X))
    t = tmp_path / "p.toml"
    t.write_text('[economics]\ngpu_usd_per_hour = 1.88\nusd_per_m_input = 0.1\nusd_per_m_output = 0.7\n'
                 'output_lengths = { short = 30 }\n')
    other = tmp_path / "prices"
    other.write_text(json.dumps({"usd_per_m_output": 0.7}))
    assert load_pricing_file(j).values == {**MI300X, "output_lengths": {"short": 30, "medium": 220, "long": 1200}}
    assert load_pricing_file(t).values["output_lengths"] == {"short": 30}
    assert load_pricing_file(other) == PricingFile(str(other), {"usd_per_m_output": 0.7})


@pytest.mark.parametrize("name, body, needles", [
    ("p.toml", "gpu_hourly = 1.88\n", ["unknown key(s) gpu_hourly", "allowed: gpu_usd_per_hour"]),
    ("p.toml", "gpu_usd_per_hour = -1\n", ["gpu_usd_per_hour must be greater than 0"]),
    ("p.toml", 'usd_per_m_input = "cheap"\n', ["usd_per_m_input must be a number"]),
    ("p.toml", "gpu_usd_per_hour = \n", ["malformed TOML"]),
    ("p.json", "{not json", ["malformed JSON"]),
    ("p.json", "[1, 2]", ["must be a table"]),
    ("p.txt", "{{ neither", ["neither TOML nor JSON"]),
    ("p.toml", "input_tokens = 0\n", ["input_tokens must be greater than 0"]),
    ("p.toml", "output_lengths = 30\n", ["output_lengths must be a table"]),
])
def test_bad_pricing_file_is_one_line(tmp_path, name, body, needles):
    f = tmp_path / name
    f.write_text(body)
    with pytest.raises(EconomicsError) as exc:
        load_pricing_file(f)
    one_line(exc, f"pricing file {f}", *needles)


def test_missing_pricing_file_is_one_line(tmp_path):
    with pytest.raises(EconomicsError) as exc:
        load_pricing_file(tmp_path / "nope.toml")
    one_line(exc, "pricing file", "nope.toml not found")


@pytest.mark.parametrize("options, target, needles", [
    ({}, None, ["no GPU price in USD per hour", "--gpu-hourly USD", "--pricing file"]),
    ({"gpu_usd_per_hour": 1.88, "usd_per_m_input": 0.1, "usd_per_m_output": 0.7}, None,
     ["no input tokens per request", "--input-tokens N"]),
    ({}, {"gpu_usd_per_hour": 1.88}, ["no serverless price in USD per 1M input tokens", "--price-in",
                                      "target cpu-local's [economics] table"]),
    ({"usd_per_m_output": -2}, None, ["--price-out: usd_per_m_output must be greater than 0"]),
    ({}, {"gpu_usd_per_hour": 0}, ["target cpu-local [economics]: gpu_usd_per_hour must be greater than 0"]),
    ({}, {"gpu_usd_per_hour": 1, "colour": "red"}, ["target cpu-local [economics]: unknown key(s) colour"]),
])
def test_unresolvable_settings_are_one_line(options, target, needles):
    with pytest.raises(EconomicsError) as exc:
        resolve_settings(options, None, target, "cpu-local" if target is not None else None)
    text = one_line(exc, *needles)
    if target is None:
        assert "target" not in text  # the CLI has no target: do not mention one


def test_measured_tokens_prefer_the_serverless_count():
    class R:  # the engine's RequestResult, as far as the ledger reads it
        def __init__(self, prompt, out, ok=True):
            self.prompt_tokens, self.output_tokens, self.ok, self.warmup = prompt, out, ok, False

    warm = measurement_from_results("warm_run", [R(10, 32), R(14, 32), R(99, 5, ok=False), R(None, 32)])
    assert warm.requests == 2 and warm.input_tokens_mean == 12 and warm.output_tokens_mean == 32
    assert measurement_from_results("warm_run", [R(None, None)]) is None
    serverless = measurement_from_results("serverless_run", [R(20, 8)])
    assert choose_measurement([warm, serverless]) is serverless
    assert choose_measurement([warm]) is warm and choose_measurement([]) is None


def test_an_output_count_the_stream_contradicts_is_not_a_measurement():
    """A2's sibling: a server whose usage says 1000 tokens for 32 token events must not set the
    crossover's output length (the engine marks such requests with token_count_problem)."""
    from pytest_inference.engine.results import RequestResult

    def result(out, problem=None):
        return RequestResult(index=0, ok=True, prompt_tokens=12, output_tokens=out, token_count_problem=problem)

    m = measurement_from_results("warm_run", [
        result(1000, "usage.completion_tokens 1000 > 8 x 32 token events"), result(32), result(32)])
    assert m.output_tokens_mean == 32 and len(m.output_tokens) == 2


def test_published_token_counts_round_trip():
    """What the warm/serverless suites publish (token_data) is what the economics suite reads back
    (measurement_from_data); a figure of another shape under the same name is not guessed at."""
    from pytest_inference.economics import TOKEN_MEASUREMENTS, measurement_from_data, token_data
    from pytest_inference.engine.results import RequestResult

    results = [RequestResult(index=i, ok=True, prompt_tokens=10 + i, output_tokens=32) for i in range(3)]
    results.append(RequestResult(index=3, ok=False, prompt_tokens=99, output_tokens=1))
    data = token_data(results)
    assert data == {"requests": 3, "prompt_tokens": [10, 11, 12], "output_tokens": [32, 32, 32]}
    m = measurement_from_data("warm.tokens", data)
    assert (m.source, m.requests, m.input_tokens_mean, m.output_tokens_mean) == ("warm.tokens", 3, 11, 32)
    assert token_data([RequestResult(index=0, ok=True)]) is None
    assert TOKEN_MEASUREMENTS == ("warm.tokens", "serverless.tokens")
    for bad in (None, 12, [1, 2], {"prompt_tokens": []}, {"prompt_tokens": [1, "2"], "output_tokens": []},
                {"prompt_tokens": [1, True], "output_tokens": []}, {"prompt_tokens": [1], "output_tokens": [0]},
                {"prompt_tokens": [1]}):
        assert measurement_from_data("warm.tokens", bad) is None, bad
    assert measurement_from_data("x", {"prompt_tokens": [5], "output_tokens": []}).output_tokens_mean is None
