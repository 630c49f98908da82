"""The capacity search end to end against the fake server of known capacity.

``FakeOpenAIServer(capacity=K)`` serves at most K streams at once and queues the rest FIFO; a
stream's clock starts when it gets a slot, so its service time is S = ttft_ms + (tokens-1) *
token_ms and the server holds K / S requests/s (here 4 / 0.2 s = 20 req/s). Above that the
queue grows, and request i of a constant-rate run waits floor(i/K) * (S - K/rate)
(:func:`capacity_ttft_ms`).

Each probe is the load probe itself: :func:`~pytest_inference.probes.load.measure_load` (the
engine's open loop, latency from the *scheduled* send time, dispatch lag per request) judged by
:func:`~pytest_inference.probes.load.probe_verdict` (SLO attainment; inconclusive when the client
could not keep the schedule or the host was loaded; a drifting pass is inconclusive), bracketed
by :func:`~pytest_inference.capacity.search`.

Ground truth, per probe, from the D/D/K model: the real run's TTFT of request i is the model's
plus e_i >= 0 (the server can only be slower than the ideal queue, the client only later), and
within the test's allowances (checked against the server's own stamps; a probe outside them is
inconclusive, never a bound) e_i is at most E in the first window. So

* a probe may PASS at rate r only if the ideal queue passes there: its attainment (e = 0) and its
  steadiness with the first window raised by E (the most a real run can hide of the growth);
* a probe may FAIL at r only if the pessimistic queue (S + its allowance, every TTFT + its
  allowance), which no decisive real run is slower than, fails the attainment there.

The bracket's highest pass is therefore at most the ideal model's highest passing rate and its
lowest fail above the pessimistic model's: the true capacity (20 req/s) lies between them.
"""

from __future__ import annotations

import statistics

import pytest

from pytest_inference import capacity, slo, stats, workloads
from pytest_inference.claims import FAIL, INCONCLUSIVE, PASS, Requirement, judge
from pytest_inference.engine import RequestSpec, StreamClient, arrivals
from pytest_inference.probes.load import measure_load, probe_verdict, steadiness
from pytest_inference.testing.fake_openai import FakeOpenAIServer, capacity_ttft_ms

pytestmark = pytest.mark.xdist_group("timing")

K, TTFT_MS, TOKEN_MS, TOKENS = 4, 100.0, 20.0, 6
S_MS = TTFT_MS + (TOKENS - 1) * TOKEN_MS  # 200 ms: capacity K / S = 20 req/s
N = 40  # requests per probe
WINDOWS = 4
SLO = slo.parse("ttft_ms:200")
ATTAINMENT = Requirement("load.slo_attainment", ">=", 0.9, stat="attainment")
CONFIDENCE = 0.95
MAX_LAG_MS = 5.0  # the probe's dispatch-lag bound: a client later than this measured itself
SLACK_MS = 10.0  # allowed per request: the server's first token late, the client's read late
PESSIMISTIC_S_MS = 10.0  # allowed: the server's service time beyond S
PESSIMISTIC_TTFT_MS = MAX_LAG_MS + 2 * SLACK_MS  # the most a decisive probe's host added to a TTFT
#: the most the first window's TTFTs can exceed the ideal queue's: the per-request allowance plus
#: the service-time allowance accumulated over the waves of K the window holds
FIRST_WINDOW_MS = PESSIMISTIC_TTFT_MS + (N // WINDOWS // K + 1) * PESSIMISTIC_S_MS
QUIET_STAT = "cpu  1000 0 1000 100000 0 0 0 0 0 0\n"
QUIET_PSI = "some avg10=0.00 avg60=0.00 avg300=0.00 total=1000\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"


def model_ttfts(rate: float, extra_ttft_ms: float = 0.0, extra_s_ms: float = 0.0) -> list[float]:
    return [t + extra_ttft_ms for t in
            capacity_ttft_ms(rate, N, K, TTFT_MS, TOKEN_MS + extra_s_ms / (TOKENS - 1), TOKENS)]


def judge_ttfts(ttfts: list[float]) -> str:
    """The attainment judgement (claims.judge's rule: stats.rate_evidence), without the
    inconclusive claim's request-count estimate (hundreds of these per test)."""
    met = int(sum(slo.met_samples([{"ok": True, "ttft_ms": t} for t in ttfts], SLO)))
    ev = stats.rate_evidence(met, len(ttfts), ATTAINMENT.op, ATTAINMENT.threshold, CONFIDENCE)
    return {"supported": PASS, "refuted": FAIL}.get(ev, INCONCLUSIVE)


def ideal_may_pass(rate: float) -> bool:
    """Could a real probe at ``rate`` pass? The ideal queue's attainment passes and its steadiness,
    with the first window as late as the allowances let a real run be, does not drift."""
    ttfts = model_ttfts(rate)
    if judge_ttfts(ttfts) != PASS:
        return False
    offs = arrivals.constant(rate, n=N)
    d = steadiness(offs, ttfts, windows=WINDOWS)
    first_window = [i for i, x in enumerate(offs) if x < d.window_s]
    raised = [t + FIRST_WINDOW_MS if i in first_window else t for i, t in enumerate(ttfts)]
    return not steadiness(offs, raised, windows=WINDOWS).drifting


def pessimistic_passes(rate: float) -> bool:
    """Does the slowest server the allowances admit still pass the attainment at ``rate``?
    (Then no decisive real probe there can fail: drift never turns a result into a fail.)"""
    return judge_ttfts(model_ttfts(rate, PESSIMISTIC_TTFT_MS, PESSIMISTIC_S_MS)) == PASS


def highest(pred) -> float:
    """The highest rate on a 0.01 req/s grid in [15, 30) where ``pred`` holds."""
    best = None
    rate = 15.0
    while rate < 30:
        if pred(rate):
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


def test_search_brackets_the_known_capacity(tmp_path, monkeypatch):
    # the probe's own host-load rule is tested elsewhere (tests/load/test_load_probe.py); here the
    # allowances are checked against the server's own stamps instead, so a box busy with other
    # tests reads as quiet to it (the project's PSI / /proc/stat seam)
    (tmp_path / "psi").write_text(QUIET_PSI)
    (tmp_path / "stat").write_text(QUIET_STAT)
    monkeypatch.setenv("PYTEST_INFERENCE_PSI_PATH", str(tmp_path / "psi"))
    monkeypatch.setenv("PYTEST_INFERENCE_STAT_PATH", str(tmp_path / "stat"))
    ideal = highest(ideal_may_pass)
    pessimistic = highest(pessimistic_passes)
    assert pessimistic < 1000 * K / S_MS < ideal  # the sustained capacity, 20 req/s, lies between
    work = workloads.synthetic("8", str(TOKENS), N, seed=1)

    with FakeOpenAIServer(ttft_ms=TTFT_MS, token_ms=TOKEN_MS, tokens=TOKENS, capacity=K) as srv, \
            StreamClient(srv.base_url, timeout_s=10) as client:
        service_ms: list[float] = []

        def probe(rate: float):
            srv.reset()
            run = measure_load(client, work, model="fake-model", rate_rps=rate, arrival="constant", requests=N,
                               windows=WINDOWS, max_lag_ms=MAX_LAG_MS, deadline_s=10)
            truth = srv.truth()
            verdict, details = probe_verdict(run, SLO, ATTAINMENT, confidence=CONFIDENCE)
            service = [(v["end_ns"] - v["recv_ns"]) / 1e6 - v["queue_ms"] for v in truth.values() if v.get("end_ns")]
            service_ms.extend(service)
            # what the host added beyond the model, per request: the server's first token late
            # after its slot, and the client's TTFT from the send beyond the server's own
            server_late = [v["ttft_ms"] - v["queue_ms"] - TTFT_MS for v in truth.values() if v.get("ttft_ms")]
            client_late = [r.ttft_ms - r.dispatch_lag_ms - truth[r.response_id]["ttft_ms"] for r in run.results
                           if r.ok and r.response_id in truth and truth[r.response_id].get("ttft_ms")]
            details.update(max_server_late_ms=max(server_late, default=0),
                           max_client_late_ms=max(client_late, default=0), max_service_ms=max(service, default=0))
            if verdict == INCONCLUSIVE:
                return verdict, details
            # a probe outside the model's allowances measured the host, not the server: never a bound
            if max(service, default=0) > S_MS + PESSIMISTIC_S_MS or max(server_late, default=0) > SLACK_MS:
                return INCONCLUSIVE, {**details, "reason": "the fake server was starved (its own ground truth)"}
            if max(client_late, default=0) > SLACK_MS:
                return INCONCLUSIVE, {**details, "reason": "the client read its streams late"}
            return verdict, details

        b = capacity.search(probe, start_rps=16, max_rps=128, min_rps=2, tight=0.1, max_probes=10,
                            max_seconds=45)

    summary = f"{b.describe()}; ideal {ideal}, pessimistic {pessimistic}; probes " + ", ".join(
        f"{p.rate:g}:{p.verdict}({p.details.get('attainment')}, lag {p.details.get('dispatch_lag_p99_ms') or 0:.1f}, "
        f"drift {(p.details.get('drift') or {}).get('growth_ms')}, "
        f"late {p.details.get('max_server_late_ms', 0):.1f}/{p.details.get('max_client_late_ms', 0):.1f}; "
        f"{p.details.get('reason') if p.verdict == INCONCLUSIVE else ''})"
        for p in b.probes)
    print(summary)
    # the server did what the model says (else the ground truth below would not be the truth)
    assert service_ms and statistics.median(service_ms) == pytest.approx(S_MS, abs=PESSIMISTIC_S_MS), summary
    # decisive probes only bound it; each agrees with the ground truth at its own rate
    for p in b.probes:
        if p.verdict == PASS:
            assert ideal_may_pass(p.rate), summary
        elif p.verdict == FAIL:
            assert not pessimistic_passes(p.rate), summary
        else:  # inconclusive: with its one-line reason, and never a bound
            assert p.details.get("reason") and "\n" not in p.details["reason"], summary
    # the bracket contains the true capacity: at most the ideal, above the pessimistic
    assert b.highest_pass is None or b.highest_pass <= ideal, summary
    assert b.lowest_fail is None or b.lowest_fail > pessimistic, summary
    if b.stopped_because == capacity.TIGHT:
        assert b.is_tight and b.highest_pass is not None and b.lowest_fail is not None
        assert b.highest_pass <= ideal and b.lowest_fail > pessimistic
    else:  # a box too busy to keep the schedule: honest, not a bound
        assert b.stopped_because in (capacity.INCONCLUSIVE_TWICE, capacity.MAX_SECONDS, capacity.MAX_PROBES), summary


def test_the_fast_judgement_is_the_judge():
    for ttfts in ([100.0] * N, [100.0] * 39 + [300.0], [300.0] * 10 + [100.0] * 30):
        c = judge("load.slo_attainment", slo.met_samples([{"ok": True, "ttft_ms": t} for t in ttfts], SLO),
                  requirement=ATTAINMENT, confidence=CONFIDENCE)
        assert judge_ttfts(ttfts) == c.verdict
    assert [judge_ttfts(t) for t in ([100.0] * N, [100.0] * 39 + [300.0], [300.0] * 10 + [100.0] * 30)] == [
        PASS, INCONCLUSIVE, FAIL]
