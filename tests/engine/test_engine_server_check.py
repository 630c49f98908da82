"""The server cross-check never passes what it cannot read (issue 10, A4): +Inf, NaN, an HTML
page, counters that went back, nothing observed — each a reason, never a figure or a traceback."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from pytest_inference.engine import RequestSpec, StreamClient
from pytest_inference.engine import prometheus as prom
from pytest_inference.probes.warm import measure_warm

DATA = Path(__file__).parent / "data"
BEFORE = (DATA / "vllm_metrics_before.txt").read_text()
AFTER = (DATA / "vllm_metrics_after.txt").read_text()
TTFT_SUM = "vllm:time_to_first_token_seconds_sum"


def _with_sum(text: str, value: str) -> str:
    return "\n".join((ln.rsplit(" ", 1)[0] + " " + value) if ln.startswith(TTFT_SUM) else ln
                     for ln in text.splitlines()) + "\n"


def test_a_sound_page_gives_the_figures():
    c = prom.cross_check(BEFORE, AFTER)
    assert c.present and c.problem is None
    assert c.ttft_mean_ms == pytest.approx(322.583725, abs=1e-6) and c.tpot_ref_ms == pytest.approx(6.5)


@pytest.mark.parametrize("value, shown", [("+Inf", "inf"), ("NaN", "nan"), ("-Inf", "-inf")])
def test_non_finite_histogram_is_a_problem_not_a_figure(value, shown):
    c = prom.cross_check(BEFORE, _with_sum(AFTER, value))
    assert c.ttft_mean_ms is None and c.present
    assert c.problem == f"{TTFT_SUM} is {shown} (not a finite number)"
    # the old helper returns no figure either (it returned -inf / nan)
    assert prom.server_mean_ttft_ms(BEFORE, _with_sum(AFTER, value)) is None


def test_html_page_at_metrics_is_a_problem():
    html = "<!DOCTYPE html><html><head><title>Login</title></head><body>sign in</body></html>"
    c = prom.cross_check(html, html)
    assert c.present and c.problem == "GET /metrics answered an HTML page, not Prometheus text"


def test_garbage_counters_back_and_nothing_observed():
    assert "not Prometheus text" in prom.cross_check("hello world {", AFTER).problem
    assert "went back" in prom.cross_check(AFTER, BEFORE).problem
    assert "observed none of the run's requests" in prom.cross_check(AFTER, AFTER).problem
    assert "only one of the two scrapes" in prom.cross_check(None, AFTER).problem
    absent = prom.cross_check(None, None)
    assert not absent.present and absent.problem is None
    no_hist = prom.cross_check("up 1\n", "up 1\n")
    assert not no_hist.present and no_hist.problem is None


@pytest.mark.parametrize("mode", ["inf", "nan", "html"])
def test_warm_probe_reports_the_unreadable_histogram(start_fake, mode):
    srv = start_fake(ttft_ms=5, token_ms=1, metrics=mode)
    with StreamClient(srv.base_url, timeout_s=10) as c:
        run = measure_warm(c, "fake-model", requests=4, warmup=1, max_tokens=8)
    assert run.failed == 0 and len(run.ttft_ms) == 4  # the measurement itself is kept
    assert run.ttft_server_gap_ms is None
    assert run.server_gap_problem.startswith("the server's TTFT histogram cannot be read: ")
    if mode == "html":
        assert "an HTML page" in run.server_gap_problem
    else:
        assert "not a finite number" in run.server_gap_problem
        assert run.server_tpot_mean_ms is not None and math.isfinite(run.server_tpot_mean_ms)
