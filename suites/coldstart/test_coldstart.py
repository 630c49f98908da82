"""Cold start: "a cold vLLM server answers its first token in under 65 s on an MI300X".

Launch → first streamed token, over --cold-runs starts, with the phases from the server log.
"""

import pytest

pytestmark = pytest.mark.coldstart


def _params(series):
    return {"cold_runs": len(series.runs), "cache_state": series.cache_state}


def test_cold_start_to_first_token(cold_starts, claim):
    from pytest_inference.probes.coldstart import timeline_json
    from pytest_inference.report.figures import timeline, with_figures

    # each start's timeline travels with the claim as data; the report side draws it
    charts = [timeline(run.timeline_rows(), f"cold start {i}: {run.total_s:.1f} s to first token"
                       if run.total_s is not None else f"cold start {i}: no first token",
                       name=f"cold start {i} timeline chart")
              for i, run in enumerate(cold_starts.runs, 1)]
    c = claim("coldstart.total_s", cold_starts.totals, stat="max", unit="s",
              details=with_figures(cold_starts.details(), *charts), parameters=_params(cold_starts))
    for i, run in enumerate(cold_starts.runs, 1):
        claim.attach(f"cold start {i} timeline", timeline_json(run), "json")
    assert c.count == len(cold_starts.runs)


def test_health(cold_starts, claim):
    claim("coldstart.health_s", cold_starts.health, stat="max", unit="s", parameters=_params(cold_starts))


def test_spread_between_starts(cold_starts, claim):
    if len(cold_starts.totals) < 2:
        claim.inconclusive("coldstart.spread_s", f"a spread needs at least 2 cold starts; ran {len(cold_starts.totals)} "
                           "(--cold-runs)", unit="s")
        return
    claim("coldstart.spread_s", cold_starts.totals, stat="spread", unit="s", parameters=_params(cold_starts))


def test_phase_budgets(cold_starts, claim, inference_target):
    """Every phase the log showed, as coldstart.phase.<name>_s; judged where the target sets a budget."""
    durations = cold_starts.phase_durations()
    budgeted = {m[len("coldstart.phase."):-len("_s")] for m in inference_target.requirements
                if m.startswith("coldstart.phase.") and m.endswith("_s")}
    if not durations and not budgeted:
        pytest.skip("the server log showed no vLLM startup phase (a server other than vLLM? see --server-cmd)")
    for name in sorted(budgeted - set(durations)):
        claim.inconclusive(f"coldstart.phase.{name}_s", "the server log never showed this phase", unit="s")
    for name, values in sorted(durations.items()):
        claim(f"coldstart.phase.{name}_s", values, stat="max", unit="s", parameters=_params(cold_starts))


def test_distance_from_the_io_floor(cold_starts, claim):
    """Weight bytes ÷ the model path's read bandwidth (page cache excluded) is the floor;
    cold start ÷ floor says how far startup is from I/O-bound."""
    if not cold_starts.floor_s:
        pytest.skip(f"read bandwidth of the model path not measured: {cold_starts.read}")
    claim("coldstart.floor_s", [cold_starts.floor_s], unit="s", details={"read": cold_starts.read,
                                                                          "weight_bytes": cold_starts.weight_bytes})
    claim("coldstart.floor_ratio", cold_starts.floor_ratios(), stat="max", unit="x")
