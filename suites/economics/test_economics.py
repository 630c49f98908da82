"""Economics: "short responses (~30 tokens) break even at ~18 req/s, medium (~220) ~3, long (~1,200) < 1" —
and "given what one GPU really carries" when a capacity per GPU is known.

Seed article A's cost model: a GPU billed per hour against a serverless endpoint billed per
token.  break-even requests/hour = GPU $/h / (input tokens x $/1M in + output tokens x $/1M out) x 1M;
below it serverless is cheaper, above it the GPU.  No server is needed: the inputs are prices,
the response lengths and the input tokens this session measured (or the given ones).

With a capacity C per GPU (a published ``capacity.max_rps_at_slo``, else ``--capacity-rps``) the
self-hosted cost at R req/s is ceil(R / C) GPUs x $/h: a step curve against serverless' line, which can
cross it many times; every crossing is in the claims' details.
"""

import json

import pytest

from pytest_inference import economics as econ
from pytest_inference.report.figures import lines, with_figures

# the token counts it reads are published by the warm and serverless suites: run after them
pytestmark = [pytest.mark.economics,
              pytest.mark.inference_reads(*econ.TOKEN_MEASUREMENTS, econ.CAPACITY_MEASUREMENT)]

UNIT = "req/s"
USD_PER_M = "USD/Mtok"


def _params(inputs, **extra):
    p = inputs.settings.pricing
    return {"gpu_usd_per_hour": p.gpu_usd_per_hour, "usd_per_m_input": p.usd_per_m_input,
            "usd_per_m_output": p.usd_per_m_output, "input_tokens": round(inputs.input_tokens, 2),
            **({"capacity_rps": inputs.capacity_rps} if inputs.capacity is not None else {}), **extra}


def _chart(inputs, lengths, title, name):
    """The cost-per-hour vs request-rate chart as data: it travels with the claim; the report draws it.
    With a capacity: the GPUs' step curve against serverless' line(s)."""
    if inputs.capacity is not None:
        series, marks = econ.step_chart_data(inputs.settings.pricing, inputs.input_tokens, lengths, inputs.capacity_rps)
        title += f", capacity {inputs.capacity_rps:g} req/s per GPU ({inputs.capacity.kind})"
    else:
        series, marks = econ.chart_data(inputs.settings.pricing, inputs.input_tokens, lengths)
    return lines(series, title, "requests per second", "USD per hour", marks, name=name)


def _never(inputs, row):
    """The reason there is no break-even at this capacity (serverless never dearer)."""
    c = inputs.capacity
    at_capacity = econ.serverless_usd_per_hour(inputs.settings.pricing, inputs.input_tokens, row.base.output_tokens, c.rps)
    return (f"no break-even at capacity {c.rps:g} req/s per GPU ({c.kind}): serverless is cheaper at every rate "
            f"({row.base.name}: {c.rps:g} req/s cost ${at_capacity:.4g}/h serverless, "
            f"one GPU ${inputs.settings.pricing.gpu_usd_per_hour:g}/h)")


def _length_row(inputs, claim, metric, length, unit=UNIT):
    """(output tokens, capacity row) of one response length; None when the inputs could not be had
    (the claim is then inconclusive with why)."""
    if inputs.error:
        claim.inconclusive(metric, inputs.error, unit=unit)
        return None
    out = inputs.settings.output_lengths[length]
    return out, econ.capacity_row(inputs.settings.pricing, length, inputs.input_tokens, out, inputs.capacity_rps)


def _claim_figure(claim, metric, inputs, out, crow, value, details, unit=UNIT):
    """``value`` of one response length as the claim; None: inconclusive, with why there is none at
    this capacity."""
    if value is None:
        claim.inconclusive(metric, _never(inputs, crow), unit=unit, details=details)
        return
    claim(metric, [value], unit=unit, details=details, parameters=_params(inputs, output_tokens=out))


def test_breakeven_rps(length, economics_inputs, claim):
    """economics.breakeven_rps.<length>: the request rate where serverless costs as much as the GPU."""
    metric = f"economics.breakeven_rps.{length}"
    inputs = economics_inputs
    got = _length_row(inputs, claim, metric, length)
    if got is None:
        return
    out, crow = got
    row = crow.base
    details = {**inputs.details(), "output_tokens": out, "usd_per_request": row.usd_per_request,
               "breakeven_requests_per_hour": row.breakeven_requests_per_hour,
               "output_tokens_source": inputs.settings.sources["output_lengths"], "steps": crow.steps.to_dict()}
    chart = _chart(inputs, {length: out},
                   f"Cost per hour: GPU vs serverless, {length} ({econ.fmt_tokens(out)} output tokens)",
                   f"cost per hour vs request rate ({length})")
    details = with_figures(details, chart)
    # below it serverless is cheaper; with a capacity at or above it, the same rate as one GPU's
    _claim_figure(claim, metric, inputs, out, crow, crow.steps.first_rps, details)


def test_gpu_cheaper_above_rps(length, economics_inputs, claim):
    """economics.gpu_cheaper_above_rps.<length>: above this rate the ceil(R / C) GPUs cost less than serverless
    at every rate (serverless may be cheaper again just past each step below it: every crossing in details)."""
    metric = f"economics.gpu_cheaper_above_rps.{length}"
    inputs = economics_inputs
    got = _length_row(inputs, claim, metric, length)
    if got is None:
        return
    out, crow = got
    details = {**inputs.details(), "output_tokens": out, **crow.to_dict()}
    _claim_figure(claim, metric, inputs, out, crow, crow.steps.gpu_cheaper_above_rps, details)


def test_self_hosted_usd_per_m_output(length, economics_inputs, claim):
    """economics.self_hosted_usd_per_m_output.<length>: USD per 1M output tokens of one GPU serving its
    capacity inside the SLO (no capacity: skipped, since one GPU at any rate has no such cost)."""
    metric = f"economics.self_hosted_usd_per_m_output.{length}"
    inputs = economics_inputs
    got = _length_row(inputs, claim, metric, length, USD_PER_M)
    if got is None:
        return
    out, crow = got
    details = {**inputs.details(), "output_tokens": out, **crow.to_dict()}
    if inputs.capacity is None:  # nothing to report: skipped (as a lone length's swing), never passed
        pytest.skip(econ.NO_CAPACITY)
    _claim_figure(claim, metric, inputs, out, crow, crow.self_hosted_usd_per_m_output, details, USD_PER_M)


def test_crossover_table(economics_inputs, claim):
    """The crossover table by response length (JSON) and its chart; the swing from length alone."""
    inputs = economics_inputs
    if inputs.error:
        claim.inconclusive("economics.breakeven_swing", inputs.error, unit="x")
        return
    s = inputs.settings
    crows = econ.capacity_table(s.pricing, inputs.input_tokens, s.output_lengths, inputs.capacity_rps)
    rows = [r.base for r in crows]
    table = {**inputs.details(), "output_lengths": s.output_lengths, "rows": [r.to_dict() for r in crows],
             "swing": econ.swing(rows), "text": econ.format_capacity_table(crows, s.pricing, inputs.capacity)}
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
