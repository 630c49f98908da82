"""Open-loop load (StreamClient.run_open_loop, engine/openloop.py) against the fake server.

Latency runs from the *scheduled* send time. The fake server stamps, on the same CLOCK_MONOTONIC,
when it read each request and when it wrote the first token, so ``ttft_ms - dispatch_lag_ms`` (TTFT
from the send) can be checked against the server's true TTFT, and a client held back (a connection
cap) must show its wait as dispatch lag, inside every latency, and as ``client_saturated``.
"""

from __future__ import annotations

import statistics

import pytest

from pytest_inference.engine import EndpointUnreachable, RequestSpec, StreamClient, arrivals
from pytest_inference.engine.openloop import OpenLoopRequestResult, p99, saturation, summarize
from pytest_inference.testing.fake_openai import FakeOpenAIServer

pytestmark = pytest.mark.xdist_group("timing")

STALL_MS = 0.3


def spec(**kw) -> RequestSpec:
    kw.setdefault("model", "fake-model")
    kw.setdefault("max_tokens", 4)
    return RequestSpec(**kw)


# ---------------------------------------------------------------------------------- pure parts


def test_saturation_reasons():
    assert saturation(10.0, 9.9, 0.5, n=100, sent=100) is None
    why = saturation(10.0, 9.0, 0.5, n=100, sent=100)
    assert why.startswith("the client could not keep the schedule") and "0.98 x offered" in why
    assert "p99 dispatch lag 2.500 ms > 1 ms" in saturation(10.0, 10.0, 2.5, n=10, sent=10)
    assert saturation(10.0, 10.0, 2.5, n=10, sent=10, max_lag_ms=5) is None
    assert "3 of 10 requests were never sent" in saturation(10.0, 10.0, 0.1, n=10, sent=7)
    assert "\n" not in saturation(10.0, 1.0, 9.0, n=10, sent=7)


def test_p99_nearest_rank():
    assert p99([]) is None
    assert p99([3.0]) == 3.0
    assert p99(list(range(1, 101))) == 99
    assert p99(list(range(1, 201))) == 198


def test_summarize_from_stamps():
    t0 = 10**12
    rs = [OpenLoopRequestResult(index=i, scheduled_ns=t0 + i * 100_000_000, send_ns=t0 + i * 100_000_000 + 50_000,
                                dispatch_lag_ms=0.05) for i in range(11)]
    f = summarize(rs)
    assert f["offered_rps"] == pytest.approx(10.0)
    assert f["achieved_rps"] == pytest.approx(10 / 1.00005)
    assert f["dispatch_lag_p99_ms"] == 0.05 and f["client_saturated"] is None
    rs[-1].dispatch_lag_ms = None  # never sent
    assert "1 of 11 requests were never sent" in summarize(rs)["client_saturated"]


# ---------------------------------------------------------------------------- against the server


def contaminated(run, truth) -> list[str]:
    out = []
    for r in run.results:
        t = truth[r.response_id]
        worst = max(r.client_stall_ms or 0.0, t["recv_stall_ms"] or 0.0, t["write_stall_ms"] or 0.0)
        if worst > STALL_MS:
            out.append(f"#{r.index} {worst:.2f} ms")
    return out


def test_below_capacity_ttft_is_the_servers_from_the_scheduled_time():
    """A Poisson run well below what the server takes: every request is sent on time, and the
    TTFT measured from the schedule is the server's own TTFT plus the (small) dispatch lag."""
    n = 60
    offs = arrivals.poisson(40, n=n, seed=5)
    with FakeOpenAIServer(ttft_ms=15, token_ms=1) as s, StreamClient(s.base_url) as c:
        notes = []
        for attempt in range(3):
            s.reset()
            run = c.run_open_loop([spec()] * n, offs, connections=8)
            truth = s.truth()
            assert all(r.ok for r in run.results), [r.error for r in run.results if not r.ok]
            assert [r.index for r in run.results] == list(range(n))
            for r, off in zip(run.results, offs):
                assert r.scheduled_ns == run.start_ns + round(off * 1e9)
                assert r.dispatch_lag_ms >= 0 and r.queue_ms == r.dispatch_lag_ms
                assert r.send_ns == r.scheduled_ns + round(r.dispatch_lag_ms * 1e6)
                from_send = r.ttft_ms - r.dispatch_lag_ms
                # causality: the client's TTFT from the send contains the server's true TTFT
                assert from_send >= truth[r.response_id]["ttft_ms"] - 1e-6
                assert r.e2e_ms >= r.ttft_ms
            assert run.offered_rps == pytest.approx(arrivals.offered_rate(offs))
            assert run.workers == 1 and run.concurrency >= 8
            errs = [r.ttft_ms - truth[r.response_id]["ttft_ms"] for r in run.results]
            med = statistics.median(errs)
            if med <= 1.0 and run.client_saturated is None:
                assert run.achieved_rps >= 0.98 * run.offered_rps
                assert run.dispatch_lag_p99_ms <= 1.0
                return
            why = contaminated(run, truth)
            if not why and run.client_runq_ms is not None and run.client_runq_ms < 1.0:
                pytest.fail(f"median TTFT error from the schedule {med:.3f} ms, saturation "
                            f"{run.client_saturated!r}, with no measured CPU starvation")
            notes.append(f"median error {med:.3f} ms, {run.client_saturated}; starved: {why[:3]}, "
                         f"client run-queue {run.client_runq_ms} ms")
        pytest.skip(f"inconclusive, the machine was loaded in every attempt: {' | '.join(notes)}")


def test_held_back_client_records_lag_and_says_saturated():
    """One connection at most, 30 ms per request, 100 requests/s asked: the client cannot keep the
    schedule. The wait is dispatch lag, it is inside the latency (no coordinated omission), and
    the run says why it measured the client."""
    n = 20
    offs = arrivals.constant(100, n=n)
    with FakeOpenAIServer(ttft_ms=30, token_ms=0, tokens=1) as s, StreamClient(s.base_url) as c:
        run = c.run_open_loop([spec(max_tokens=1)] * n, offs, max_connections=1)
        truth = s.truth()
    assert all(r.ok for r in run.results)
    assert run.concurrency == 1
    lags = [r.dispatch_lag_ms for r in run.results]
    # request i cannot start before i responses of >= 30 ms ended: lag >= i*30 - i*10 ms
    for i, lag in enumerate(lags):
        assert lag >= i * 20 - 1, (i, lag)
    for r in run.results:
        assert r.ttft_ms >= r.dispatch_lag_ms + truth[r.response_id]["ttft_ms"] - 1e-6
    assert run.results[-1].ttft_ms > 300  # the last request waited ~ 19 x 20 ms for its turn
    assert run.dispatch_lag_p99_ms > 100
    assert run.achieved_rps < 0.98 * run.offered_rps
    why = run.client_saturated
    assert why and "p99 dispatch lag" in why and "x offered" in why and "\n" not in why
    assert run.summary()["client_saturated"] == why


def test_busy_pool_opens_a_connection_and_the_wait_is_lag():
    """Two connections opened up front, 6 requests at once: 4 more connections are opened at the
    start; their requests' connect time is their dispatch lag."""
    with FakeOpenAIServer(ttft_ms=40, token_ms=0, tokens=1) as s, StreamClient(s.base_url) as c:
        run = c.run_open_loop([spec(max_tokens=1)] * 6, [0.0] * 6, connections=2)
    assert all(r.ok for r in run.results)
    assert run.connections_opened == 4 and run.concurrency == 6
    waited = sorted(r.dispatch_lag_ms for r in run.results)[2:]
    assert all(x > 0 for x in waited)
    assert run.offered_rps is None and run.achieved_rps is None  # no span: no rate


def test_server_closed_keepalive_is_resent_and_counted_as_lag():
    """The server drops idle connections after 50 ms; a request scheduled 300 ms in finds its
    pooled connection closed, is resent on a new one, and the reconnect is in its lag."""
    with FakeOpenAIServer(ttft_ms=5, token_ms=0, tokens=1, keep_alive_timeout_ms=50) as s, \
            StreamClient(s.base_url) as c:
        run = c.run_open_loop([spec(max_tokens=1)] * 2, [0.0, 0.3], connections=1)
    assert all(r.ok for r in run.results), [r.error for r in run.results]
    assert run.results[1].dispatch_lag_ms >= 0
    assert run.results[1].ttft_ms >= 5


def test_scheduled_results_serialise():
    with FakeOpenAIServer(ttft_ms=2, token_ms=0, tokens=2) as s, StreamClient(s.base_url) as c:
        run = c.run_open_loop([spec(max_tokens=2)] * 3, arrivals.constant(50, n=3), warmup=2)
    d = run.results[0].to_dict()
    assert {"scheduled_ns", "dispatch_lag_ms", "worker", "ttft_ms"} <= set(d)
    assert len(run.warmup_results) == 2 and all(r.warmup for r in run.warmup_results)
    assert run.summary()["offered_rps"] == pytest.approx(50.0)
    assert run.wall_s >= 0.04


@pytest.mark.parametrize("kw,offs,fragment", [
    ({}, [0.0, 1.0], "one offset per request"),
    ({}, [0.0, -1.0, 2.0], "non-decreasing"),
    ({}, [0.5, 0.1, 2.0], "non-decreasing"),
    ({}, [0.0, float("nan"), 2.0], "finite"),
    ({"max_lag_ms": 0}, [0.0, 0.1, 0.2], "max_lag_ms"),
    ({"deadline_s": -1}, [0.0, 0.1, 0.2], "deadline_s"),
    ({"max_connections": 0}, [0.0, 0.1, 0.2], "max_connections"),
])
def test_bad_input_is_one_line(kw, offs, fragment):
    c = StreamClient("http://127.0.0.1:9/v1")
    with pytest.raises(ValueError) as e:
        c.run_open_loop([spec()] * 3, offs, **kw)
    assert fragment in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(ValueError, match="at least one request"):
        c.run_open_loop([], [])


def test_unreachable_endpoint_raises():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with StreamClient(f"http://127.0.0.1:{port}/v1", timeout_s=2) as c, pytest.raises(EndpointUnreachable):
        c.run_open_loop([spec()] * 2, [0.0, 0.01])


def test_saturation_names_the_contention_evidence():
    from pytest_inference.engine.openloop import with_contention
    assert with_contention(None, 500.0, {"foreign_cores": 1.9}) is None
    line = with_contention("the client could not keep the schedule: x", 61.4, {"foreign_cores": 1.89})
    assert line.endswith("(the client waited 61.4 ms for a CPU, other processes used 1.89 cores)")
    assert with_contention("why", 0.2, {"foreign_cores": 0.01}) == "why"
    assert with_contention("why", None, None) == "why"
