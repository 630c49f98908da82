"""Economics: "short responses (~30 tokens) break even at ~18 req/s, medium (~220) ~3, long (~1,200) < 1".

Seed article A's cost model: a GPU billed per hour against a serverless endpoint billed per
token.  break-even requests/hour = GPU $/h / (input tokens x $/1M in + output tokens x $/1M out) x 1M;
below it serverless is cheaper, above it the GPU.  No server is needed: the inputs are prices,
the response lengths and the input tokens this session measured (or the given ones).
"""

import json

import pytest

from pytest_inference import economics as econ
from pytest_inference.report.figures import lines, with_figures

# the token counts it reads are published by the warm and serverless suites: run after them
pytestmark = [pytest.mark.economics, pytest.mark.inference_reads(*econ.TOKEN_MEASUREMENTS)]

UNIT = "req/s"


def _params(inputs, **extra):
    p = inputs.settings.pricing
    return {"gpu_usd_per_hour": p.gpu_usd_per_hour, "usd_per_m_input": p.usd_per_m_input,
            "usd_per_m_output": p.usd_per_m_output, "input_tokens": round(inputs.input_tokens, 2), **extra}


def _chart(inputs, lengths, title, name):
    """The cost-per-hour vs request-rate chart as data: it travels with the claim; the report draws it."""
    series, marks = econ.chart_data(inputs.settings.pricing, inputs.input_tokens, lengths)
    return lines(series, title, "requests per second", "USD per hour", marks, name=name)


def test_breakeven_rps(length, economics_inputs, claim):
    """economics.breakeven_rps.<length>: the request rate where serverless costs as much as the GPU."""
    metric = f"economics.breakeven_rps.{length}"
    inputs = economics_inputs
    if inputs.error:
        claim.inconclusive(metric, inputs.error, unit=UNIT)
        return
    out = inputs.settings.output_lengths[length]
    row = econ.crossover_row(inputs.settings.pricing, length, inputs.input_tokens, out)
    details = {**inputs.details(), "output_tokens": out, "usd_per_request": row.usd_per_request,
               "breakeven_requests_per_hour": row.breakeven_requests_per_hour,
               "output_tokens_source": inputs.settings.sources["output_lengths"]}
    chart = _chart(inputs, {length: out},
                   f"Cost per hour: GPU vs serverless, {length} ({econ.fmt_tokens(out)} output tokens)",
                   f"cost per hour vs request rate ({length})")
    claim(metric, [row.breakeven_requests_per_second], unit=UNIT, details=with_figures(details, chart),
          parameters=_params(inputs, output_tokens=out))


def test_crossover_table(economics_inputs, claim):
    """The crossover table by response length (JSON) and its chart; the swing from length alone."""
    inputs = economics_inputs
    if inputs.error:
        claim.inconclusive("economics.breakeven_swing", inputs.error, unit="x")
        return
    s = inputs.settings
    rows = econ.crossover_table(s.pricing, inputs.input_tokens, s.output_lengths)
    table = {**inputs.details(), "output_lengths": s.output_lengths, "rows": [r.to_dict() for r in rows],
             "swing": econ.swing(rows), "text": econ.format_table(rows, s.pricing)}
    m = inputs.measurement
    if m is not None and m.output_tokens_mean:
        # the workload this session ran (its output length is what the suite asked for, max_tokens)
        table["session_row"] = econ.crossover_row(s.pricing, "session", m.input_tokens_mean,
                                                  m.output_tokens_mean).to_dict()
    claim.attach("crossover table", json.dumps(table, indent=2), "json")
    chart = _chart(inputs, s.output_lengths, "Cost per hour: GPU vs serverless by response length",
                   "cost per hour vs request rate")
    swing = econ.swing(rows)
    if swing is None:
        pytest.skip("one response length: no swing to report")
    claim("economics.breakeven_swing", [swing], unit="x",
          details=with_figures({**inputs.details(), "rows": [r.to_dict() for r in rows]}, chart),
          parameters=_params(inputs))
