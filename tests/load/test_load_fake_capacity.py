"""The capacity search end to end against the fake server of known capacity.

``FakeOpenAIServer(capacity=K)`` serves at most K streams at once and queues the rest FIFO; a
stream's clock starts when it gets a slot, so its service time is S = ttft_ms + (tokens-1) *
token_ms and the server holds K / S requests/s (here 4 / 0.2 s = 20 req/s). Above that the
queue grows, and request i of a constant-rate run waits floor(i/K) * (S - K/rate)
(:func:`capacity_ttft_ms`). The true capacity *at a TTFT SLO over a run of N requests* is the
highest rate at which that ideal server's TTFTs pass the same judgement the probe makes; the
real one (a loaded box, a client that sends a little late) can only be slower, so the bracket's
highest pass is at most the ideal figure and its lowest fail above what a pessimistic server
(TTFT + the lag allowance, S + 10 ms) still passes.

The sender is a paced open loop written here (the engine's own open loop is built elsewhere):
one pre-connected StreamClient per request, each sent at its scheduled time; latency counts
from the *scheduled* time (no coordinated omission), and a probe whose sender ran late (the
client, not the server) is inconclusive — never a bound.
"""

from __future__ import annotations

import statistics
import threading
import time

import pytest

from pytest_inference import capacity, slo, stats
from pytest_inference.claims import FAIL, INCONCLUSIVE, PASS, Requirement, judge
from pytest_inference.engine import RequestSpec, StreamClient
from pytest_inference.testing.fake_openai import FakeOpenAIServer, capacity_ttft_ms

K, TTFT_MS, TOKEN_MS, TOKENS = 4, 100.0, 20.0, 6
S_MS = TTFT_MS + (TOKENS - 1) * TOKEN_MS  # 200 ms: capacity K / S = 20 req/s
N = 40  # requests per probe
SLO = slo.parse("ttft_ms:200")
ATTAINMENT = Requirement("load.slo_attainment", ">=", 0.9, stat="attainment")
CONFIDENCE = 0.95
MAX_LAG_MS = 30.0  # a sender later than this measured the client: the probe is inconclusive
SLACK_MS = 10.0  # allowed per request: the server's first token late, the client's read late
PESSIMISTIC_TTFT_MS = MAX_LAG_MS + 2 * SLACK_MS  # the most a decisive probe's host added to a TTFT
PESSIMISTIC_S_MS = 10.0


def paced(base_url: str, rate: float, n: int) -> list[tuple[object, float]]:
    """Send ``n`` streams at ``rate`` req/s (open loop); per request (result, dispatch lag ms)."""
    spec = RequestSpec(model="fake-model", prompt="hi", max_tokens=TOKENS)
    clients = [StreamClient(base_url, timeout_s=10, pause_gc=False) for _ in range(n)]
    out: list = [None] * n
    try:
        for c in clients:
            c.open_connections(1)
        t0 = time.perf_counter_ns() + 100_000_000

        def one(i: int) -> None:
            sched = t0 + int(i * 1e9 / rate)
            while (d := (sched - time.perf_counter_ns()) / 1e9) > 0:
                time.sleep(d)
            r = clients[i].run_one(spec)
            out[i] = (r, (r.send_ns - sched) / 1e6 if r.send_ns else (time.perf_counter_ns() - sched) / 1e6)

        threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    finally:
        for c in clients:
            c.close()
    return out


def from_schedule(result, lag_ms: float) -> dict:
    """The request as the SLO sees it: latency from the scheduled send time."""
    return {"ok": result.ok, "timed_out": result.timed_out, "error": result.error,
            "ttft_ms": None if result.ttft_ms is None else result.ttft_ms + max(0.0, lag_ms)}


def judge_ttfts(ttfts: list[float]) -> str:
    """The probe's judgement (claims.judge's attainment rule: stats.rate_evidence), without the
    inconclusive claim's request-count estimate (thousands of these per test)."""
    met = int(sum(slo.met_samples([{"ok": True, "ttft_ms": t} for t in ttfts], SLO)))
    ev = stats.rate_evidence(met, len(ttfts), ATTAINMENT.op, ATTAINMENT.threshold, CONFIDENCE)
    return {"supported": PASS, "refuted": FAIL}.get(ev, INCONCLUSIVE)


def highest_passing_rate(extra_ttft_ms: float, extra_s_ms: float) -> float:
    """Highest rate (0.01 req/s grid) at which a server of capacity K with these service times
    passes the probe's judgement: the ground truth from the D/D/K model."""
    rate, best = 15.0, None
    while rate < 30:
        ttfts = [t + extra_ttft_ms for t in
                 capacity_ttft_ms(rate, N, K, TTFT_MS, TOKEN_MS + extra_s_ms / (TOKENS - 1), TOKENS)]
        if judge_ttfts(ttfts) == PASS:
            best = rate
        rate = round(rate + 0.01, 2)
    assert best is not None
    return best


def test_capacity_ttft_model_is_the_dd_k_queue():
    # at or below K/S nobody waits
    assert capacity_ttft_ms(20, 100, K, TTFT_MS, TOKEN_MS, TOKENS) == [TTFT_MS] * 100
    # above: request i waits floor(i/K) * (S - K/rate)
    got = capacity_ttft_ms(25, 12, K, TTFT_MS, TOKEN_MS, TOKENS)
    assert got == pytest.approx([TTFT_MS + (i // K) * (S_MS - 1000 * K / 25) for i in range(12)])
    # all at once: waves of K
    assert capacity_ttft_ms(1, 6, 2, 100, 20, 6, offsets_s=[0] * 6) == [100, 100, 300, 300, 500, 500]
    with pytest.raises(ValueError, match="rate_rps must be > 0"):
        capacity_ttft_ms(0, 3, K, TTFT_MS, TOKEN_MS, TOKENS)


def test_capacity_mode_serves_k_at_once_and_queues_fifo():
    with FakeOpenAIServer(ttft_ms=100, token_ms=20, tokens=6, capacity=2) as srv:
        with StreamClient(srv.base_url, timeout_s=10) as c:
            run = c.run([RequestSpec(model="fake-model", prompt="hi", max_tokens=6)] * 6, concurrency=6, warmup=0)
        assert all(r.ok for r in run.results)
        truth = sorted(srv.truth().values(), key=lambda v: v["recv_ns"])
        queue = [v["queue_ms"] for v in truth]
        ttft = [v["ttft_ms"] for v in truth]
        # the server's own clock: waves of 2, each 200 ms (100 + 5 x 20) after the last
        want = capacity_ttft_ms(1, 6, 2, 100, 20, 6, offsets_s=[(v["recv_ns"] - truth[0]["recv_ns"]) / 1e9
                                                                 for v in truth])
        assert ttft == pytest.approx(want, abs=30)  # waves are 200 ms apart
        assert queue[0] < 5 and queue[1] < 5 and all(q > 150 for q in queue[2:])
        # FIFO: served in arrival order
        starts = [v["recv_ns"] + v["queue_ms"] * 1e6 for v in truth]
        assert starts == sorted(starts)
        assert "vllm:num_requests_waiting" in srv.metrics()


def test_bad_capacity_is_one_line():
    with pytest.raises(RuntimeError, match="--capacity must be >= 1"):
        FakeOpenAIServer(capacity=0).start()


def test_search_brackets_the_known_capacity():
    ideal = highest_passing_rate(0.0, 0.0)
    pessimistic = highest_passing_rate(PESSIMISTIC_TTFT_MS, PESSIMISTIC_S_MS)
    assert pessimistic < 1000 * K / S_MS < ideal  # the sustained capacity, 20 req/s, lies between

    with FakeOpenAIServer(ttft_ms=TTFT_MS, token_ms=TOKEN_MS, tokens=TOKENS, capacity=K) as srv:
        service_ms: list[float] = []

        def probe(rate: float):
            srv.reset()
            sent = paced(srv.base_url, rate, N)
            truth = srv.truth()
            lags = [lag for _, lag in sent]
            service = [(v["end_ns"] - v["recv_ns"]) / 1e6 - v["queue_ms"] for v in truth.values() if v.get("end_ns")]
            service_ms.extend(service)
            # what the host added beyond the model, per request: the server's first token late
            # after its slot, and the client's TTFT beyond the server's own
            server_late = [v["ttft_ms"] - v["queue_ms"] - TTFT_MS for v in truth.values() if v.get("ttft_ms")]
            client_late = [r.ttft_ms - truth[r.response_id]["ttft_ms"] for r, _ in sent
                           if r.ok and r.response_id in truth and truth[r.response_id].get("ttft_ms")]
            claim = judge("load.slo_attainment", slo.met_samples([from_schedule(r, lag) for r, lag in sent], SLO),
                          requirement=ATTAINMENT, confidence=CONFIDENCE)
            details = {"attainment": claim.measured, "max_lag_ms": max(lags),
                       "median_lag_ms": statistics.median(lags), "max_server_late_ms": max(server_late, default=0),
                       "max_client_late_ms": max(client_late, default=0)}
            # a probe outside the pessimistic model's allowances measured the host, not the
            # server's capacity: inconclusive, never a bound
            if max(lags) > MAX_LAG_MS:  # the client could not keep the schedule
                return INCONCLUSIVE, {**details, "reason": f"dispatch lag {max(lags):.1f} ms > {MAX_LAG_MS} ms"}
            if max(service, default=0) > S_MS + PESSIMISTIC_S_MS or max(server_late, default=0) > SLACK_MS:
                return INCONCLUSIVE, {**details, "reason": "the fake server was starved (its own ground truth)"}
            if max(client_late, default=0) > SLACK_MS:
                return INCONCLUSIVE, {**details, "reason": "the client read its streams late"}
            return claim.verdict, {**details, "reason": claim.reason}

        b = capacity.search(probe, start_rps=16, max_rps=128, min_rps=2, tight=0.1, max_probes=10,
                            max_seconds=45)

    summary = f"{b.describe()}; ideal {ideal}, pessimistic {pessimistic}; probes " + ", ".join(
        f"{p.rate:g}:{p.verdict}({p.details.get('attainment')}, lag {p.details.get('max_lag_ms', 0):.0f}, "
        f"late {p.details.get('max_server_late_ms', 0):.1f}/{p.details.get('max_client_late_ms', 0):.1f})"
        for p in b.probes)
    print(summary)
    # the server did what the model says (else the ground truth below would not be the truth)
    assert service_ms and statistics.median(service_ms) == pytest.approx(S_MS, abs=PESSIMISTIC_S_MS), summary
    # decisive probes only bound it; both sides agree with the ground truth
    assert b.highest_pass is None or b.highest_pass <= ideal, summary
    assert b.lowest_fail is None or b.lowest_fail > pessimistic, summary
    for p in b.probes:
        if p.verdict == PASS:
            assert p.rate <= ideal, summary
        elif p.verdict == FAIL:
            assert p.rate > pessimistic, summary
    if b.stopped_because == capacity.TIGHT:
        assert b.is_tight and b.highest_pass is not None and b.lowest_fail is not None
    else:  # a box too busy to keep the schedule: honest, not a bound
        assert b.stopped_because in (capacity.INCONCLUSIVE_TWICE, capacity.MAX_SECONDS, capacity.MAX_PROBES), summary


def test_the_fast_judgement_is_the_judge():
    for ttfts in ([100.0] * N, [100.0] * 39 + [300.0], [300.0] * 10 + [100.0] * 30):
        c = judge("load.slo_attainment", slo.met_samples([{"ok": True, "ttft_ms": t} for t in ttfts], SLO),
                  requirement=ATTAINMENT, confidence=CONFIDENCE)
        assert judge_ttfts(ttfts) == c.verdict
    assert [judge_ttfts(t) for t in ([100.0] * N, [100.0] * 39 + [300.0], [300.0] * 10 + [100.0] * 30)] == [
        PASS, INCONCLUSIVE, FAIL]
