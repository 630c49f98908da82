"""Load and capacity: "p99 TTFT stays under 400 ms at 8 req/s", "this node serves 12 req/s of
220-token answers inside the SLO".

Each test states one claim about a load run (one per ``--load-rate`` / ``--load-concurrency``
point) or about the capacity search; the active target says what the figure must meet and the SLO
(``--slo``, else the target's ``[load] slo``). A run that measured the client instead of the server
(it could not keep the schedule, or the host was too loaded to time) makes every claim of that run
inconclusive with the reason; so does a pass of a run whose latency was still growing (a longer run
may fail) — a fail stays a fail.
"""

from __future__ import annotations

import pytest

from pytest_inference.claims import PASS, Requirement, judge

pytestmark = pytest.mark.load

NO_SLO = "no SLO given: pass --slo ttft_ms:...,tpot_ms:... or set slo in the target's [load] table"
NO_USAGE = "the server reported no token usage (stream_options.include_usage); tokens are not guessed from chunks"


def _params(bench, run) -> dict:
    p = bench.plan
    return {"mode": run.mode, "rate_rps": run.rate_rps, "concurrency": run.concurrency, "arrival": run.arrival,
            "requests": run.requests, "workers": run.workers, "seed": run.seed, "slo": p.slo_text,
            "workload": p.workload_spec, "workload_hash": run.workload.get("content_hash")}


def _why_not(run, *, counts: bool = False) -> str | None:
    """Why no claim of this run can be judged: it measured the client, or its token counts lie."""
    if run.problem:
        return f"the client was measured, not the server: {run.problem}"
    if counts and any(r.ok and r.output_tokens is None for r in run.results):
        return NO_USAGE
    if counts and run.count_problem:
        return run.count_problem
    return None


def _judged(claim, bench, run, metric, samples=(), *, stat, unit, counts=False, needs_slo=False, measured=None,
            figures=None):
    """One claim of a load run: inconclusive when the run cannot support it, and a pass of a drifting
    run is inconclusive too (the same judgement first, unrecorded, tells whether it would pass)."""
    from pytest_inference.probes.load import DRIFT_REASON

    slo = bench.plan.slo
    details = run.details(slo)
    if figures:
        from pytest_inference.report.figures import with_figures

        details = with_figures(details, *figures)
    params = _params(bench, run)
    why = (NO_SLO if needs_slo and slo is None else None) or _why_not(run, counts=counts)
    if why is None and not samples and measured is None:
        why = "no request of the run completed: nothing to judge"
    if why:
        return claim.inconclusive(metric, why, unit=unit, details=details, parameters=params)
    drift = run.drift(slo)
    if drift.drifting:
        target = bench.session.target
        would = judge(metric, samples, stat=stat, unit=unit, measured=measured, target=target.name,
                      requirement=target.requirement(metric), confidence=target.confidence)
        if would.verdict == PASS:
            return claim.inconclusive(metric, f"{DRIFT_REASON} ({drift.reason})", unit=unit, details=details,
                                      parameters=params)
    return claim(metric, samples, stat=stat, unit=unit, measured=measured, details=details, parameters=params)


# --------------------------------------------------------------------------- at each load point


def test_slo_attainment(load_bench, load_point, claim):
    """Share of requests meeting every SLO bound; errors and timeouts are misses; judged on the
    one-sided binomial lower bound at the target's confidence."""
    run = load_bench.run(load_point)
    slo = load_bench.plan.slo
    met = [1.0 if m else 0.0 for m in run.met(slo)] if slo else []
    _judged(claim, load_bench, run, "load.slo_attainment", met, stat="attainment", unit="", needs_slo=True,
            figures=_point_figures(load_bench, run))


def test_goodput(load_bench, load_point, claim):
    """Requests per second that met the SLO."""
    run = load_bench.run(load_point)
    slo = load_bench.plan.slo
    g = run.goodput_rps(slo) if slo else None
    _judged(claim, load_bench, run, "load.goodput_rps", [g] if g is not None else [], stat="value", unit="req/s",
            needs_slo=True)


def test_output_tokens_per_second(load_bench, load_point, claim):
    run = load_bench.run(load_point)
    v = run.output_tok_s
    _judged(claim, load_bench, run, "load.output_tok_s", [v] if v is not None else [], stat="value", unit="tok/s",
            counts=True)


@pytest.mark.parametrize("metric,field,counts", [
    ("load.ttft_p99_ms", "ttft_ms", False),
    ("load.tpot_p99_ms", "tpot_ms", True),
    ("load.e2e_p99_ms", "e2e_ms", False),
], ids=["ttft", "tpot", "e2e"])
def test_latency_p99(load_bench, load_point, claim, metric, field, counts):
    """p99 under load with the quantile rule (too few requests for a p99: inconclusive); open-loop
    latencies run from the scheduled send time."""
    run = load_bench.run(load_point)
    _judged(claim, load_bench, run, metric, getattr(run, field), stat="p99", unit="ms", counts=counts)


def test_steady(load_bench, load_point, claim):
    """First vs last of four time windows: the run drifts when the last window's median TTFT exceeds
    the first's by more than max(5 ms, 25 %) *and* its TTFTs are larger beyond chance (one-sided
    Mann-Whitney p < 0.01). Growth above the allowance that chance explains is inconclusive; a run
    too short to tell is inconclusive."""
    from pytest_inference.probes.load import DRIFT_P

    run = load_bench.run(load_point)
    d = run.drift(load_bench.plan.slo)
    details, params = {"drift": d.to_dict(), "problem": run.problem}, _params(load_bench, run)
    why = _why_not(run) or (None if d.drifting is not None else d.reason)
    if why is None and not d.drifting and d.growth_ms > d.bound_ms:
        why = (f"the median TTFT grew {d.growth_ms:.1f} ms (> {d.bound_ms:.1f} ms allowed) but the last window's "
               f"TTFTs are not larger beyond chance (p = {d.p_value:.2g} >= {DRIFT_P:g}): a longer run would tell")
    if why:
        claim.inconclusive("load.ttft_drift_ms", why, unit="ms", details=details, parameters=params)
        return
    claim("load.ttft_drift_ms", [d.growth_ms], unit="ms", details=details, parameters=params,
          default=Requirement("load.ttft_drift_ms", "<=", round(d.bound_ms, 6), unit="ms"))


def test_output_lengths_match_what_was_asked(load_bench, load_point, claim):
    """With ignore_eos the server returns exactly max_tokens: a shorter answer means it dropped
    ignore_eos (an easier workload than asked), a longer one that it ignored max_tokens."""
    run = load_bench.run(load_point)
    _length_claim(claim, load_bench, run, "load.output_length_mismatches", run.output_length_check(),
                  [a for a, r in zip(run.asked_output_tokens, run.results) if r.ok and a is not None])


def test_prompt_lengths_match_the_workload(load_bench, load_point, claim):
    """The workload's input lengths are server-counted tokens: usage.prompt_tokens minus the chat
    template's constant (calibrated on this server) must equal what the workload built."""
    run = load_bench.run(load_point)
    overhead, why = load_bench.prompt_calibration()
    if why:
        claim.inconclusive("load.prompt_length_mismatches", why, unit="", parameters=_params(load_bench, run))
        return
    _length_claim(claim, load_bench, run, "load.prompt_length_mismatches", run.prompt_length_check(overhead),
                  [a for a, r in zip(run.asked_input_tokens, run.results) if r.ok and a is not None],
                  overhead=overhead)


def _length_claim(claim, bench, run, metric, check, compared, **extra):
    details = {"ok_fraction": check.ok_fraction, "worst_relative": check.worst, "compared": len(compared), **extra}
    if check.ok_fraction is None:
        why = (_why_not(run, counts=True) or "no completed request had an asked length and a server count to compare")
        claim.inconclusive(metric, why, unit="", details=details, parameters=_params(bench, run))
        return
    mismatches = round((1.0 - check.ok_fraction) * len(compared))
    claim(metric, [mismatches], unit="", details=details, parameters=_params(bench, run),
          default=Requirement(metric, "==", 0))


def test_kv_cache_and_preemptions(load_bench, load_point, claim):
    """What the server held during the run: peak KV-cache use and requests it preempted
    (its /metrics, sampled while the load ran)."""
    run = load_bench.run(load_point)
    server, params = dict(run.server), _params(load_bench, run)
    for metric, key, stat in (("load.kv_cache_usage_peak", "kv_usage_max", "max"),
                              ("load.preemptions", "preemptions", "value")):
        value = server.get(key)
        if value is None:
            missing = server.get("missing")
            _not_exposed(claim, load_bench, metric, server.get("problem") or
                         (f"the server's /metrics do not expose {', '.join(missing)}" if missing else
                          f"the server's /metrics have no {key.split('_')[0]} figure"), details=server,
                         parameters=params)
        else:
            claim(metric, [value], stat=stat, unit="", details=server, parameters=params)


def _not_exposed(claim, bench, metric, why, **kw):
    """A figure the server does not expose: inconclusive when the target requires it (a figure
    nobody measured never passes), else a skip saying why (nothing was claimed)."""
    if bench.session.target.requirement(metric) is not None:
        claim.inconclusive(metric, why, **kw)
    else:
        pytest.skip(f"{metric}: {why}")


# --------------------------------------------------------------------------- the server, once


@pytest.mark.parametrize("metric,key,unit,scale", [
    ("load.kv_cache_tokens", "kv_cache_tokens", "tokens", 1.0),
    ("load.max_concurrency", "max_concurrency", "x", 1.0),
    ("load.reserved_memory_GB", "reserved_bytes", "GB", 1e-9),
], ids=["kv_cache_tokens", "max_concurrency", "reserved_memory"])
def test_what_the_server_announces(load_bench, claim, metric, key, unit, scale):
    """What the server says it can hold (vLLM's cache_config_info or its start log), beside what
    it held (test_kv_cache_and_preemptions): KV-cache tokens, the concurrency they allow, and the
    memory reserved for weights + KV cache."""
    announced = load_bench.announced()
    value = announced.get(key)
    details = {"announced": announced}
    if value is None:
        _not_exposed(claim, load_bench, metric, announced.get("problem") or
                     f"the server announces no {key.replace('_', ' ')}", unit=unit, details=details)
        return
    if any(part.strip().startswith(f"{key}: ") for part in (announced.get("problem") or "").split(";")):
        # the server's two statements (its /metrics and its start log) disagree: neither is a measurement
        claim.inconclusive(metric, announced["problem"], unit=unit, details=details)
        return
    claim(metric, [value * scale], unit=unit, details=details)


# --------------------------------------------------------------------------- capacity at the SLO


def test_capacity_at_slo(load_bench, inference_session, claim):
    """The highest rate the server holds its SLO at, as a bracket [highest rate that passed, lowest
    that failed]: double from --search-start-rps until a probe fails, then bisect until tight; an
    inconclusive probe (a saturated client, a drifting pass) is never a bound. Published to the
    session as capacity.max_rps_at_slo for the cost crossover."""
    from pytest_inference.capacity import judge_capacity

    plan, target = load_bench.plan, inference_session.target
    metric = "capacity.max_rps_at_slo"
    if load_bench.shard is not None:
        pytest.skip("a shard (--load-shard) sends one share of one schedule: the capacity search runs unsharded")
    if plan.slo is None:
        claim.inconclusive(metric, NO_SLO, unit="req/s")
        return
    probe_rule = plan.search.probe_rule()
    bracket = load_bench.search(probe_rule)
    c = judge_capacity(bracket, target.requirement(metric), target=target.name)
    c.details.update(probe_rule=f"{probe_rule.op} {probe_rule.threshold:g} at confidence {target.confidence:g}",
                     slo=plan.slo_text, search=plan.search.__dict__.copy())
    from pytest_inference.report.figures import with_figures

    c.details = with_figures(c.details, *load_bench.figures())
    claim.record(c, parameters={"slo": plan.slo_text, "workload": plan.workload_spec})
    if bracket.highest_pass is not None:
        inference_session.publish(metric, {"rps": bracket.highest_pass,
                                           "bracket": [bracket.highest_pass, bracket.lowest_fail],
                                           "slo": plan.slo_text, "stopped_because": bracket.stopped_because},
                                  unit="req/s")


def _point_figures(bench, run) -> list:
    """The run's own dispatch-lag histogram (open loop)."""
    from pytest_inference.report.load import load_figures

    if run.mode != "open" or not run.dispatch_lag_ms:
        return []
    return load_figures([], slo=None, bracket=None, lags_ms=run.dispatch_lag_ms,
                        max_lag_ms=run.max_lag_ms or bench.plan.max_lag_ms)
