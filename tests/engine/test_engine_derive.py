"""engine.derive: per-request figures from the timed loop's nanosecond stamps (pure)."""

from __future__ import annotations

import pytest

from pytest_inference.engine.derive import fill_stream_figures, fill_timings, length_mismatch, tpot_ms
from pytest_inference.engine.results import RequestResult

MS = 1_000_000
SEND = 5_000 * MS  # perf_counter_ns values are arbitrary: only differences count


def test_times_from_stamps():
    r = RequestResult()
    toks = [SEND + 20 * MS, SEND + 30 * MS, SEND + 30 * MS, SEND + 45 * MS]  # two events in one read
    fill_timings(r, SEND, toks, content_ns=SEND + 30 * MS, end_ns=SEND + 50 * MS)
    assert r.ttft_ms == 20.0 and r.ttft_content_ms == 30.0 and r.e2e_ms == 50.0
    assert r.itl_ms == [10.0, 0.0, 15.0] and r.token_times_ms == [20.0, 30.0, 30.0, 45.0]
    assert r.content_events == 4


def test_no_token_and_no_end_leave_figures_unknown():
    r = RequestResult()
    fill_timings(r, SEND, [], content_ns=0, end_ns=0)
    assert r.ttft_ms is None and r.ttft_content_ms is None and r.e2e_ms is None
    assert r.itl_ms == [] and r.content_events == 0


def test_tpot():
    assert tpot_ms(50.0, 20.0, 4) == pytest.approx(10.0)
    assert tpot_ms(50.0, 20.0, 1) is None  # one token: no per-token time
    assert tpot_ms(50.0, 20.0, None) is None  # usage absent: never from the chunk count
    assert tpot_ms(None, 20.0, 4) is None and tpot_ms(50.0, None, 4) is None


@pytest.mark.parametrize("n, max_tokens, ignore_eos, expected", [
    (64, 64, True, False), (65, 64, False, True), (57, 64, True, True), (58, 64, True, False),
    (10, 64, False, False), (None, 64, True, False), (10, None, True, False),
])
def test_length_mismatch(n, max_tokens, ignore_eos, expected):
    assert length_mismatch(n, max_tokens, ignore_eos) is expected


def test_stream_figures_use_only_a_sound_count():
    r = RequestResult(output_tokens=4, requested_max_tokens=4, ignore_eos=True)
    fill_timings(r, SEND, [SEND + 20 * MS, SEND + 30 * MS, SEND + 40 * MS, SEND + 50 * MS], end_ns=SEND + 50 * MS)
    fill_stream_figures(r)
    assert r.token_count_problem is None and r.tpot_ms == pytest.approx(10.0) and not r.length_mismatch
    bad = RequestResult(output_tokens=1000, requested_max_tokens=1000)
    fill_timings(bad, SEND, [SEND + 20 * MS, SEND + 30 * MS], end_ns=SEND + 40 * MS)
    fill_stream_figures(bad)
    assert "1000 > 8 x 2 token events" in bad.token_count_problem and bad.tpot_ms is None
