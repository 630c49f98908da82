"""The load probe (probes/load.py) against the fake server and its own ground truth.

The fake server stamps, on the same CLOCK_MONOTONIC as the client, when it read each request and
wrote its first token (``srv.truth()``): an open-loop TTFT from the *scheduled* time must hold
the server's true TTFT plus the dispatch lag. Hostile servers and clients: a server whose usage
lies, a client that cannot keep the schedule, a server past its capacity whose queue grows — none
of them may pass a probe.

Tests of other behaviour than the host-load rule read an unchanging host (the project's
``PYTEST_INFERENCE_PSI_PATH`` / ``_STAT_PATH`` seam, as the warm-suite tests do): a box busy with
other tests must not turn them inconclusive. The client's own run-queue wait is still read for
real; where it flags the run, the assertion that needs a clean run accepts the run's one-line
``problem`` instead (never a pass).
"""

from __future__ import annotations

import json
import socket
import statistics

import pytest

from pytest_inference import slo, workloads
from pytest_inference.claims import FAIL, INCONCLUSIVE, PASS, Requirement
from pytest_inference.engine import EndpointUnreachable, StreamClient, arrivals
from pytest_inference.engine.openloop import OpenLoopRequestResult, OpenLoopResult
from pytest_inference.probes import load
from pytest_inference.probes.load import DRIFT_REASON, measure_load, probe_verdict, steadiness
from pytest_inference.testing.fake_openai import FakeOpenAIServer, capacity_ttft_ms

pytestmark = pytest.mark.xdist_group("timing")

QUIET_STAT = "cpu  1000 0 1000 100000 0 0 0 0 0 0\n"
QUIET_PSI = "some avg10=0.00 avg60=0.00 avg300=0.00 total=1000\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
ATTAIN = Requirement("load.slo_attainment", ">=", 0.9, stat="attainment")
MODEL = "fake-model"


@pytest.fixture
def quiet_host(tmp_path, monkeypatch):
    (tmp_path / "psi").write_text(QUIET_PSI)
    (tmp_path / "stat").write_text(QUIET_STAT)
    monkeypatch.setenv("PYTEST_INFERENCE_PSI_PATH", str(tmp_path / "psi"))
    monkeypatch.setenv("PYTEST_INFERENCE_STAT_PATH", str(tmp_path / "stat"))


def wl(n: int = 20, output: str = "4", input: str = "uniform(5,20)", seed: int = 1) -> workloads.Workload:
    return workloads.synthetic(input, output, n, seed=seed)


def one_line(text: str | None) -> bool:
    return bool(text) and "\n" not in text


def lists_in(obj, path="") -> list[str]:
    """Paths of every list longer than 8 inside ``obj`` (details must hold no per-request list)."""
    out = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += lists_in(v, f"{path}.{k}")
    elif isinstance(obj, list):
        if len(obj) > 8:
            out.append(path)
        for i, v in enumerate(obj):
            out += lists_in(v, f"{path}[{i}]")
    return out


# ------------------------------------------------------------------------------- open loop


def test_open_loop_ttft_from_schedule_is_the_servers_plus_lag(quiet_host):
    n, rate, seed = 60, 40, 3
    work = wl(30)
    with FakeOpenAIServer(ttft_ms=15, token_ms=1) as srv, StreamClient(srv.base_url) as c:
        run = measure_load(c, work, model=MODEL, rate_rps=rate, requests=n, seed=seed, warmup=2)
        truth = srv.truth()
    assert run.mode == "open" and run.workers == 1 and run.requests == n and len(run.results) == n
    assert all(r.ok for r in run.results), run.errors
    assert len(truth) == n + 2  # the two warm-ups reached the server, unmeasured
    # the schedule is the seeded Poisson one, at the offsets the run reports
    assert run.offsets_s == pytest.approx(arrivals.schedule("poisson", rate, n=n, seed=seed, exact_rate=True), abs=1e-9)
    assert run.seed == seed and run.arrival == "poisson" and run.rate_rps == rate
    errs = []
    for r in run.results:
        t = truth[r.response_id]["ttft_ms"]
        # causality: from the schedule, the TTFT holds the dispatch lag and the server's own TTFT
        assert r.ttft_ms >= r.dispatch_lag_ms + t - 1e-6
        errs.append(r.ttft_ms - r.dispatch_lag_ms - t)
    assert run.ttft_ms == [r.ttft_ms for r in run.results]
    assert run.dispatch_lag_ms == [r.dispatch_lag_ms for r in run.results]
    if run.problem is None:  # a clean run: the client's own error is below a millisecond
        assert statistics.median(errs) <= 1.0, errs
        assert run.dispatch_lag_p99_ms <= 1.0 and run.achieved_rps >= 0.98 * run.offered_rps
    else:
        assert one_line(run.problem) and "client" in run.problem
    # the workload was cycled (30 requests for 60 sends), and says so
    assert run.cycled and "30 requests were cycled to fill 60" in run.cycled
    assert run.asked_input_tokens == [work.requests[i % 30].input_tokens for i in range(n)]
    # lengths: the fake counts prompt words, and sends max_tokens tokens (ignore_eos)
    assert [r.prompt_tokens for r in run.results] == run.asked_input_tokens
    assert run.prompt_length_check() == (1.0, 0.0)
    assert run.output_length_check() == (1.0, 0.0)
    assert run.output_tokens == [4] * n and run.count_problem is None
    assert run.output_tok_s == pytest.approx(4 * n / run.span_s)
    # per-request records and small details
    recs = run.records()
    assert len(recs) == n and json.loads(json.dumps(recs)) == recs
    assert recs[5]["scheduled_s"] == pytest.approx(run.offsets_s[5]) and recs[5]["met"] is None
    assert recs[5]["dispatch_lag_ms"] == run.results[5].dispatch_lag_ms and recs[5]["asked_output_tokens"] == 4
    s = slo.parse("ttft_ms:1000")
    assert all(r["met"] for r in run.records(s))
    d = run.details(s)
    assert json.loads(json.dumps(d)) == d and lists_in(d) == []
    assert d["workload"]["content_hash"] == work.content_hash and d["workload"]["seed"] == 1
    assert d["seed"] == seed and d["requests"] == n and d["attainment"] == 1.0
    assert d["drift"]["drifting"] is False  # a steady server well below its capacity


def test_attainment_and_goodput_on_a_server_straddling_the_slo(quiet_host):
    """Half the requests take 10 ms to the first token, half 200 ms (the server's schedule, cycled in
    arrival order); SLO 100 ms. The 200-ms ones can never meet it (the TTFT from the schedule
    holds the server's); the 10-ms ones meet it unless the run says the client was measured."""
    n = 40
    s = slo.parse("ttft_ms:100")
    with FakeOpenAIServer(ttft_schedule="10,200", token_ms=1) as srv, StreamClient(srv.base_url) as c:
        run = measure_load(c, wl(n, output="2"), model=MODEL, rate_rps=20, arrival="constant", requests=n)
        truth = srv.truth()
    assert all(r.ok for r in run.results), run.errors
    met = run.met(s)
    injected = [truth[r.response_id]["injected_ttft_ms"] for r in run.results]
    assert sorted(set(injected)) == [10.0, 200.0] and injected.count(10.0) == n // 2
    for r, m, inj in zip(run.results, met, injected):
        assert m == (r.ttft_ms <= 100)
        if inj == 200.0:
            assert not m  # sound whatever the host did: latency only grows
        elif run.problem is None:
            assert m, (r.ttft_ms, r.dispatch_lag_ms)
    assert run.attainment(s) == sum(met) / n
    assert run.goodput_rps(s) == pytest.approx(sum(met) / run.span_s)
    # the span runs from the first scheduled send to the last response's end
    assert run.span_s >= run.offsets_s[-1] + max(r.e2e_ms for r in run.results[-2:]) / 1000 - 1e-3
    if run.problem is None:
        assert run.attainment(s) == 0.5 and run.goodput_rps(s) == pytest.approx((n / 2) / run.span_s)
    # 20 of 40 met: refutes >= 0.9, supports >= 0.25 (one-sided 95 % bounds 0.36 .. 0.64)
    v_hi, d_hi = probe_verdict(run, s, ATTAIN, confidence=0.95)
    v_lo, d_lo = probe_verdict(run, s, Requirement("load.slo_attainment", ">=", 0.25, stat="attainment"),
                               confidence=0.95)
    if run.problem is None:
        assert (v_hi, v_lo) == (FAIL, PASS), (d_hi, d_lo)
        assert d_hi["n"] == n and d_hi["met"] == n // 2 and d_hi["attainment"] == 0.5
    else:
        assert v_hi == v_lo == INCONCLUSIVE and d_hi["problem"] == run.problem
    assert d_hi["rate"] == 20 and d_hi["achieved_rps"] == run.achieved_rps
    assert d_hi["dispatch_lag_p99_ms"] == run.dispatch_lag_p99_ms and "drift" in d_hi


def test_closed_loop(quiet_host):
    n = 20
    with FakeOpenAIServer(ttft_ms=20, token_ms=2) as srv, StreamClient(srv.base_url) as c:
        # max_lag_ms is an open-loop setting a suite passes for every point: a closed loop ignores it
        run = measure_load(c, wl(n, output="3"), model=MODEL, concurrency=4, requests=n, warmup=1, max_lag_ms=1.0)
        truth = srv.truth()
    assert run.mode == "closed" and run.concurrency == 4 and run.rate_rps is None and run.arrival is None
    assert all(r.ok for r in run.results) and len(run.results) == n
    assert run.dispatch_lag_ms == [] and run.dispatch_lag_p99_ms is None and run.client_saturated is None
    assert run.offsets_s[0] == 0.0 and all(x >= 0 for x in run.offsets_s)
    errs = [r.ttft_ms - truth[r.response_id]["ttft_ms"] for r in run.results]
    assert min(errs) >= -1e-6  # from the send, the TTFT holds the server's
    if run.problem is None:
        assert statistics.median(errs) <= 1.0
    assert run.achieved_rps == pytest.approx(n / run.wall_s)
    # the server saw at most 4 streams at once, and more than one (a closed loop of 4)
    spans = sorted((v["recv_ns"], v["end_ns"]) for v in truth.values())
    overlap = max(sum(1 for a, b in spans if a <= t < b) for t, _ in spans)
    assert 2 <= overlap <= 4, spans
    assert run.records()[0]["dispatch_lag_ms"] is None
    assert run.details()["mode"] == "closed"


def test_a_run_by_duration_sends_the_schedule_of_that_length(quiet_host):
    want = arrivals.gamma(60, 2.0, duration_s=0.5, seed=7)
    with FakeOpenAIServer(ttft_ms=2, token_ms=0) as srv, StreamClient(srv.base_url) as c:
        run = measure_load(c, wl(5, output="1"), model=MODEL, rate_rps=60, arrival="gamma:2", seed=7,
                           duration_s=0.5)
    assert run.requests == len(want) == len(run.results) and run.arrival == "gamma:2"
    assert run.offsets_s == pytest.approx(want, abs=1e-9)
    assert all(r.ok for r in run.results) and run.details()["requests"] == len(want)


def test_two_workers_merge(quiet_host):
    n = 40
    work = wl(n, output="uniform(1,6)", seed=5)
    with FakeOpenAIServer(ttft_ms=10, token_ms=1) as srv, StreamClient(srv.base_url) as c:
        run = measure_load(c, work, model=MODEL, rate_rps=50, requests=n, workers=2, base_url=srv.base_url)
        truth = srv.truth()
    assert run.workers == 2
    assert all(r.ok for r in run.results), run.errors
    assert [r.index for r in run.results] == list(range(n))
    assert [r.worker for r in run.results] == [i % 2 for i in range(n)]
    assert [rec["worker"] for rec in run.records()] == [i % 2 for i in range(n)]
    assert len({r.response_id for r in run.results}) == n
    # every answer is back at its own index: its own asked lengths
    assert [r.output_tokens for r in run.results] == work.output_tokens
    assert [r.prompt_tokens for r in run.results] == work.input_tokens
    assert run.output_length_check().ok_fraction == 1.0
    assert run.offsets_s == pytest.approx(arrivals.schedule("poisson", 50, n=n, seed=0, exact_rate=True), abs=1e-9)
    for r in run.results:
        assert r.ttft_ms >= r.dispatch_lag_ms + truth[r.response_id]["ttft_ms"] - 1e-6


# ------------------------------------------------------------------------------- hostile


def test_usage_that_lies_is_a_count_problem(quiet_host):
    with FakeOpenAIServer(ttft_ms=5, token_ms=1, usage_tokens=1000) as srv, StreamClient(srv.base_url) as c:
        run = measure_load(c, wl(10, output="4"), model=MODEL, rate_rps=40, requests=10)
    assert all(r.ok for r in run.results)
    assert run.count_mismatches == 10
    assert one_line(run.count_problem) and "usage.completion_tokens 1000 > 8 x 4" in run.count_problem
    assert run.output_tok_s is None and run.output_tokens == [] and run.tpot_ms == []
    assert run.output_length_check() == (None, None)  # a contradicted count is unknown, never a pass
    assert run.details()["count_problem"] == run.count_problem


def test_a_saturated_client_is_never_a_pass(quiet_host):
    """One connection at most, 30 ms per response, 100 requests/s asked: the client cannot keep
    the schedule. Whatever the SLO says, the probe measured the client: inconclusive."""
    n = 20
    with FakeOpenAIServer(ttft_ms=30, token_ms=0, tokens=1) as srv, StreamClient(srv.base_url) as c:
        run = measure_load(c, wl(n, output="1"), model=MODEL, rate_rps=100, arrival="constant", requests=n,
                           max_connections=1)
    assert all(r.ok for r in run.results)
    assert one_line(run.problem) and "could not keep the schedule" in run.problem
    assert run.client_saturated in run.problem and run.dispatch_lag_p99_ms > 100
    # the wait is inside the latency: request i waited for i responses of >= 30 ms
    assert run.results[-1].ttft_ms >= 19 * 20
    # 20 of 20 met supports >= 0.8 (95 % lower bound 0.86); 0 of 20 refutes it
    req = Requirement("load.slo_attainment", ">=", 0.8, stat="attainment")
    for s, would in ((slo.parse("ttft_ms:100000"), PASS), (slo.parse("ttft_ms:50"), FAIL)):
        v, d = probe_verdict(run, s, req, confidence=0.95)
        assert v == INCONCLUSIVE and d["verdict_if_judged"] == would
        assert d["reason"].startswith("the client was measured, not the server") and d["problem"] == run.problem


def test_a_drifting_run_fails_or_is_inconclusive_never_passes(quiet_host):
    """capacity=1, 20 ms per request (50 req/s), 62.5 req/s asked: the queue grows 4 ms a request
    (the D/D/1 ground truth, capacity_ttft_ms). With a loose SLO every request meets it, but the
    run drifts: inconclusive. With a tight one it fails, and a fail stays a fail."""
    n, rate = 60, 62.5
    model_ttft = capacity_ttft_ms(rate, n, 1, 20, 0, 1)
    with FakeOpenAIServer(ttft_ms=20, token_ms=0, tokens=1, capacity=1) as srv, StreamClient(srv.base_url) as c:
        run = measure_load(c, wl(n, output="1"), model=MODEL, rate_rps=rate, arrival="constant", requests=n)
    assert all(r.ok for r in run.results), run.errors
    for r, m in zip(run.results, model_ttft):
        assert r.ttft_ms >= m - 2.0  # the real server is no faster than the ideal queue (timer slop 2 ms)
    ideal = steadiness(arrivals.constant(rate, n=n), model_ttft)
    assert ideal.drifting and ideal.growth_ms == pytest.approx(4 * 45, abs=5)
    drift = run.drift()
    assert drift.drifting is True and one_line(drift.reason) and drift.growth_ms > 100, drift
    loose, tight = slo.parse("ttft_ms:5000"), slo.parse("ttft_ms:100")
    v, d = probe_verdict(run, loose, ATTAIN, confidence=0.95)
    assert v == INCONCLUSIVE
    if run.problem is None:
        assert d["verdict_if_judged"] == PASS and d["reason"].startswith(DRIFT_REASON)
        assert d["attainment"] == 1.0 and d["drift"]["drifting"] is True
    v, d = probe_verdict(run, tight, ATTAIN, confidence=0.95)
    assert v == (FAIL if run.problem is None else INCONCLUSIVE), d
    assert run.drift(tight).attainment[-1] == 0.0  # the last window missed it entirely


def test_timeouts_under_load_are_misses_not_an_abort(quiet_host):
    """Requests past their deadline, several in a row after successes: the engine's early stop would
    end the run (a dead endpoint); under load they are measured misses."""
    n = 8
    s = slo.parse("ttft_ms:1000")
    with FakeOpenAIServer(ttft_schedule="5,5,5,3000,3000,3000,3000,5", token_ms=0, tokens=1) as srv, \
            StreamClient(srv.base_url) as c:
        assert c.stop_early
        run = measure_load(c, wl(n, output="1"), model=MODEL, rate_rps=40, arrival="constant", requests=n,
                           deadline_s=0.3)
        assert c.stop_early  # restored
    assert [r.timed_out for r in run.results] == [False] * 3 + [True] * 4 + [False]
    assert run.met(s) == [True] * 3 + [False] * 4 + [True]
    assert run.failed == 4 and one_line(run.errors[0]) and "deadline of 0.3 s" in run.errors[0]
    assert [rec["timed_out"] for rec in run.records(s)] == [r.timed_out for r in run.results]


# ------------------------------------------------------------------------------- pure parts


def fake_run(ttfts, offsets, *, ok=None, saturated=None, windows=4) -> load.LoadRun:
    """A LoadRun from hand-made open-loop results (no server)."""
    t0 = 10**12
    ok = ok or [True] * len(ttfts)
    res = [OpenLoopRequestResult(index=i, ok=k, ttft_ms=t if k else None, e2e_ms=t, scheduled_ns=t0 + round(o * 1e9),
                                 send_ns=t0 + round(o * 1e9), dispatch_lag_ms=0.0, output_tokens=1,
                                 error=None if k else "HTTP 500")
           for i, (t, o, k) in enumerate(zip(ttfts, offsets, ok))]
    eng = OpenLoopResult(results=res, warmup_results=[], wall_s=offsets[-1] + 0.1, concurrency=4,
                         start_ns=t0, offered_rps=10.0, achieved_rps=10.0, dispatch_lag_p99_ms=0.0,
                         client_saturated=saturated)
    return load.from_engine(eng, mode="open", rate_rps=10.0, arrival="constant", concurrency=None, seed=0,
                            workload={"kind": "synthetic"}, specs=[type("S", (), {"max_tokens": 1})()] * len(res),
                            asked_input_tokens=[None] * len(res), windows=windows)


def test_steadiness_rule():
    offs = [i / 10 for i in range(40)]
    steady = steadiness(offs, [100.0 + (i % 3) for i in range(40)])
    assert steady.drifting is False and steady.reason is None and steady.counts == [10, 10, 10, 10]
    assert steady.bound_ms == pytest.approx(25.25)  # 25 % of the first window's median
    growing = steadiness(offs, [100.0 + 2 * i for i in range(40)])
    assert growing.drifting is True and growing.growth_ms == pytest.approx(60.0) and "still growing" in growing.reason
    # small TTFTs: the absolute allowance (5 ms) keeps jitter from counting as drift
    assert steadiness(offs, [2.0 + (i % 2) * 3 for i in range(40)]).drifting is False
    # a steady bimodal server (hits and misses of a cache) whose window medians flip by chance: the
    # medians grew 190 ms, but the last window is not larger beyond chance (p 0.20)
    bimodal = steadiness(offs, [10.0] * 6 + [200.0] * 4 + [10.0, 200.0] * 10 + [10.0] * 4 + [200.0] * 6)
    assert bimodal.growth_ms == 190.0 and bimodal.p_value == pytest.approx(0.2038, abs=1e-4)
    assert bimodal.drifting is False
    # per-window attainment with met flags
    d = steadiness(offs, [100.0] * 40, [i < 30 for i in range(40)])
    assert d.attainment == [1.0, 1.0, 1.0, 0.0] and d.drifting is False
    # cannot tell: too few completed in a window, all at once, nothing sent
    few = steadiness(offs[:8], [1.0] * 8)
    assert few.drifting is None and "too few completed requests" in few.reason
    assert steadiness([0.0] * 5, [1.0] * 5).drifting is None
    assert steadiness([None, None], [None, None]).drifting is None
    with pytest.raises(ValueError, match="windows must be an integer >= 2"):
        steadiness(offs, [1.0] * 40, windows=1)


def test_mann_whitney_matches_the_reference():
    # values from scipy.stats.mannwhitneyu(ys, xs, alternative="greater", method="asymptotic")
    assert load.mann_whitney_greater([1] * 5, [2] * 5) == pytest.approx(0.0019884, rel=1e-4)
    assert load.mann_whitney_greater([1, 2, 3, 4, 5], [1, 2, 3, 4, 5]) == pytest.approx(0.5422350, rel=1e-6)
    assert load.mann_whitney_greater([10] * 6 + [200] * 4, [10] * 4 + [200] * 6) == pytest.approx(0.2037812,
                                                                                                rel=1e-6)
    assert load.mann_whitney_greater([3.0] * 5, [3.0] * 7) == 1.0  # all tied: no evidence
    assert load.mann_whitney_greater([2] * 5, [1] * 5) > 0.99
    with pytest.raises(ValueError, match="samples on both sides"):
        load.mann_whitney_greater([], [1.0])


def test_probe_verdict_rules():
    offs = [i / 10 for i in range(40)]
    s = slo.parse("ttft_ms:1000")
    steady = fake_run([100.0] * 40, offs)
    assert probe_verdict(steady, s, ATTAIN, confidence=0.95)[0] == PASS
    # drifting, every request met: pass -> inconclusive
    drifting = fake_run([100.0 + 5 * i for i in range(40)], offs)
    v, d = probe_verdict(drifting, s, ATTAIN, confidence=0.95)
    assert v == INCONCLUSIVE and d["verdict_if_judged"] == PASS and d["reason"].startswith(DRIFT_REASON)
    # drifting and failing: a fail stays a fail
    failing = fake_run([100.0 + 50 * i for i in range(40)], offs)
    v, d = probe_verdict(failing, s, ATTAIN, confidence=0.95)
    assert v == FAIL and "verdict_if_judged" not in d
    # errors are misses
    errs = fake_run([100.0] * 40, offs, ok=[i % 2 == 0 for i in range(40)])
    assert errs.attainment(s) == 0.5 and errs.failed == 20 and errs.errors == ["HTTP 500"]
    assert probe_verdict(errs, s, ATTAIN, confidence=0.95)[0] == FAIL
    # the client was measured: neither a pass nor a fail
    for ttfts in ([100.0] * 40, [5000.0] * 40):
        sat = fake_run(ttfts, offs, saturated="the client could not keep the schedule: p99 dispatch lag 3 ms > 1 ms")
        v, d = probe_verdict(sat, s, ATTAIN, confidence=0.95)
        assert v == INCONCLUSIVE and "could not keep the schedule" in d["reason"]
    # nothing measured is never a pass
    assert probe_verdict(fake_run([100.0] * 3, [0, 0.1, 0.2]), s, ATTAIN, confidence=0.95)[0] == INCONCLUSIVE
    with pytest.raises(ValueError, match="needs the attainment requirement"):
        probe_verdict(steady, s, None, confidence=0.95)


# ------------------------------------------------------------------------------- plumbing


class Watch:
    def __init__(self, client=None):
        self.events = []
        self.client = client

    def start(self):
        self.events.append("start")

    def stop(self):
        self.events.append("stop")
        return {"kv_cache_usage_max": 0.5}


def test_watch_brackets_the_measured_run(quiet_host):
    class Spy(StreamClient):
        def run_open_loop(self, *a, **kw):
            watch.events.append("run")
            return super().run_open_loop(*a, **kw)

        def run(self, *a, **kw):
            watch.events.append("warmup" if "warmup" not in watch.events else "closed")
            return super().run(*a, **kw)

    watch = Watch()
    with FakeOpenAIServer(ttft_ms=2, token_ms=0) as srv, Spy(srv.base_url) as c:
        run = measure_load(c, wl(4, output="2"), model=MODEL, rate_rps=50, requests=4, warmup=1, watch=watch)
    assert watch.events == ["warmup", "start", "run", "stop"]
    assert run.server == {"kv_cache_usage_max": 0.5} and run.details()["server"] == run.server


def test_watch_is_stopped_when_the_run_raises():
    with socket.socket() as sk:
        sk.bind(("127.0.0.1", 0))
        port = sk.getsockname()[1]
    watch = Watch()
    with StreamClient(f"http://127.0.0.1:{port}/v1", timeout_s=2) as c, pytest.raises(EndpointUnreachable):
        measure_load(c, wl(2), model=MODEL, rate_rps=10, requests=2, watch=watch)
    assert watch.events == ["start", "stop"]


@pytest.mark.parametrize("kw,fragment", [
    ({}, "exactly one of rate_rps"),
    ({"rate_rps": 1, "concurrency": 2}, "exactly one of rate_rps"),
    ({"rate_rps": 1, "requests": None}, "exactly one of requests or duration_s"),
    ({"rate_rps": 1, "duration_s": 2.0}, "exactly one of requests or duration_s"),
    ({"rate_rps": 0}, "rate_rps must be a number > 0"),
    ({"rate_rps": -3}, "rate_rps must be a number > 0"),
    ({"rate_rps": float("nan")}, "rate_rps must be a number > 0"),
    ({"rate_rps": 1, "requests": 0}, "requests must be an integer >= 1"),
    ({"rate_rps": 1, "arrival": "uniform"}, "--arrival"),
    ({"rate_rps": 1, "arrival": "gamma"}, "gamma needs its coefficient"),
    ({"concurrency": 0}, "concurrency must be an integer >= 1"),
    ({"concurrency": 2, "requests": None, "duration_s": 5.0}, "closed loop (concurrency) runs a request count"),
    ({"concurrency": 2, "workers": 2}, "workers > 1 splits an open-loop schedule"),
    ({"rate_rps": 1, "workers": 0}, "workers must be an integer >= 1"),
    ({"rate_rps": 1, "windows": 1}, "windows must be an integer >= 2"),
    ({"rate_rps": 1, "warmup": -1}, "warmup must be an integer >= 0"),
    ({"rate_rps": 1, "deadline_s": 0}, "deadline_s must be a number > 0"),
    ({"rate_rps": 1, "max_lag_ms": 0}, "max_lag_ms must be a number > 0"),
    ({"concurrency": 2, "max_connections": 1}, "max_connections caps an open loop's pool"),
    ({"rate_rps": 1, "api": "embeddings"}, "api must be 'chat' or 'completions'"),
])
def test_bad_input_is_one_line(kw, fragment):
    kw = {"requests": 3, **kw}
    with StreamClient("http://127.0.0.1:9/v1") as c, pytest.raises(ValueError) as e:
        measure_load(c, wl(3), model=MODEL, **kw)
    assert fragment in str(e.value) and "\n" not in str(e.value)


def test_bad_workload_is_one_line():
    with StreamClient("http://127.0.0.1:9/v1") as c, pytest.raises(ValueError) as e:
        measure_load(c, ["hello"], model=MODEL, rate_rps=1, requests=1)
    assert "workload must be a pytest_inference.workloads.Workload" in str(e.value)
