"""Regression tests for the pitfalls other benchmark clients fell into (prior art)."""

from __future__ import annotations

import socket
import time

import pytest

from pytest_inference.engine import RequestSpec, StreamClient, mark_bursts
from pytest_inference.testing.fake_openai import fake_headers


def spec(**kw) -> RequestSpec:
    kw.setdefault("model", "fake-model")
    kw.setdefault("max_tokens", 8)
    return RequestSpec(**kw)


def one(client: StreamClient, **kw):
    r = client.run_one(spec(**kw))
    assert r.ok, r.error
    return r


def assert_events_match_server(r, truth):
    """Every token event the client stamped is the one the server wrote, never earlier.

    Compared with the server's own write times rather than with the injected delays, so
    a server starved by other load on the box (tokens written late, bunched) does not
    make these semantic checks flaky.
    """
    server = truth["token_ns"]
    assert len(r.token_times_ms) == len(server)
    for k, (ms, w) in enumerate(zip(r.token_times_ms, server)):
        assert r.send_ns + ms * 1e6 >= w, f"token event {k} stamped before the server wrote it"


def test_role_only_first_chunk_is_not_a_token(client):
    # the role chunk is written at once, the first token 30 ms later
    r = one(client, headers=fake_headers(ttft_ms=30, role_chunk=True))
    assert r.ttft_ms >= 30
    assert r.content_events == 8 and r.text.split() == [f"tok{i}" for i in range(8)]
    r2 = one(client, headers=fake_headers(ttft_ms=30, role_chunk=False))
    assert r2.ttft_ms >= 30 and r2.content_events == 8


def test_empty_content_chunks_are_not_tokens(client, fake):
    r = one(client, headers=fake_headers(ttft_ms=10, token_ms=4, empty_chunks=True))
    assert r.content_events == 8 and r.output_tokens == 8
    assert len(r.itl_ms) == 7  # gaps between tokens, not between a token and an empty chunk
    assert_events_match_server(r, fake.truth()[r.response_id])


def test_usage_only_last_chunk_gives_tokens_not_ttft(client, fake):
    r = one(client, max_tokens=12, headers=fake_headers(ttft_ms=25, token_ms=2))
    truth = fake.truth()[r.response_id]
    assert r.usage_reported and r.output_tokens == 12 and r.prompt_tokens == 1
    assert r.ttft_ms == r.token_times_ms[0] and r.ttft_ms <= r.e2e_ms
    assert_events_match_server(r, truth)
    assert r.tpot_ms == pytest.approx((r.e2e_ms - r.ttft_ms) / 11)
    assert r.finish_reason == "length" and r.done_marker


def test_usage_absent_means_unknown_token_count(client):
    r = one(client, headers=fake_headers(usage="never"))
    assert r.output_tokens is None and not r.usage_reported and r.tpot_ms is None
    assert r.content_events == 8  # never guessed from the chunks
    r2 = one(client, include_usage=False)  # not asked: a vLLM-like server sends none
    assert r2.output_tokens is None and not r2.usage_reported


def test_tokens_come_from_usage_not_chunk_count(client):
    r = one(client, max_tokens=16, headers=fake_headers(tokens_per_chunk=4))
    assert r.content_events == 4 and r.output_tokens == 16
    assert r.tpot_ms == pytest.approx((r.e2e_ms - r.ttft_ms) / 15)


def test_sse_events_split_across_network_reads(client, fake):
    r = one(client, headers=fake_headers(split_events=3, split_pause_ms=0.5, ttft_ms=10))
    truth = fake.truth()[r.response_id]
    assert r.content_events == 8 and r.text.split() == [f"tok{i}" for i in range(8)]
    assert r.socket_reads >= 2 * 8  # every event took several reads
    # stamped when the event was complete: never before the server wrote its last piece
    assert_events_match_server(r, truth)


def test_content_length_stream(client):
    r = one(client, headers=fake_headers(content_length=True))
    assert r.content_events == 8 and r.output_tokens == 8


def test_ignored_max_tokens_or_dropped_ignore_eos_is_a_length_mismatch(client):
    assert not one(client, max_tokens=8).length_mismatch
    more = one(client, max_tokens=8, headers=fake_headers(ignore_max_tokens=True, tokens=40))
    assert more.output_tokens == 40 and more.length_mismatch
    fewer = one(client, max_tokens=16, headers=fake_headers(eos_after=3))
    assert fewer.output_tokens == 3 and fewer.finish_reason == "stop" and fewer.length_mismatch
    # without ignore_eos an early stop is legitimate
    assert not one(client, max_tokens=16, ignore_eos=False, headers=fake_headers(eos_after=3)).length_mismatch


def test_reasoning_tokens_ttft_vs_ttft_content(client, fake):
    r = one(client, max_tokens=10, headers=fake_headers(ttft_ms=10, token_ms=5, reasoning_tokens=4))
    assert r.reasoning_events == 4 and r.content_events == 10
    assert r.reasoning_text.split() == ["tok0", "tok1", "tok2", "tok3"]
    assert r.text.split()[0] == "tok4"
    assert r.ttft_ms == r.token_times_ms[0] and r.ttft_content_ms == r.token_times_ms[4]
    assert_events_match_server(r, fake.truth()[r.response_id])
    r2 = one(client, max_tokens=6, headers=fake_headers(reasoning_tokens=2, reasoning_field="reasoning"))
    assert r2.reasoning_events == 2 and r2.ttft_content_ms == r2.token_times_ms[2]


def test_reasoning_only_stream_has_no_content_ttft(client):
    r = one(client, max_tokens=4, headers=fake_headers(reasoning_tokens=10))
    assert r.ttft_ms is not None and r.ttft_content_ms is None


def test_tool_call_text_is_a_token(client, fake):
    r = one(client, max_tokens=5, headers=fake_headers(tool_calls=True))
    assert r.content_events == 5 and r.ttft_ms == r.token_times_ms[0]
    assert r.ttft_content_ms is None and r.text == ""
    assert r.tool_text == "get_weather" + "".join(f" tok{i}" for i in range(5))
    assert r.finish_reason == "tool_calls"
    assert_events_match_server(r, fake.truth()[r.response_id])


def test_completions_api(client, fake):
    r = one(client, api="completions", prompt="once upon a time", max_tokens=6,
            headers=fake_headers(ttft_ms=15))
    assert r.response_id.startswith("cmpl-")
    assert r.text.split() == [f"tok{i}" for i in range(6)] and r.output_tokens == 6 and r.prompt_tokens == 4
    assert_events_match_server(r, fake.truth()[r.response_id])


def test_empty_stream_is_a_failure_not_ttft_zero(client):
    r = client.run_one(spec(headers=fake_headers(eos_after=0)))
    assert not r.ok and r.ttft_ms is None and "empty stream" in r.error
    assert r.output_tokens == 0


def test_keep_alive_one_connection_for_sequential_requests(fake):
    with StreamClient(fake.base_url) as c:
        run1 = c.run([spec()] * 10, concurrency=1, warmup=1)
        run2 = c.run([spec()] * 5, concurrency=1, warmup=0)
    results = run1.results + run2.results
    truth = fake.truth()
    assert len({truth[r.response_id]["conn_id"] for r in results}) == 1  # server side
    assert len({r.connection_id for r in results}) == 1 and all(r.connection_reused for r in results)
    assert run1.connections_opened == 0 and run2.connections_opened == 0


def test_server_closing_connections_reconnects_outside_timing(start_fake):
    for flag in ("close", "close_silently"):
        s = start_fake(ttft_ms=5, token_ms=1, **{flag: True})
        with StreamClient(s.base_url) as c:
            run = c.run([spec()] * 6, concurrency=1, warmup=1)
            truth = s.truth()
        assert all(r.ok for r in run.results), [r.error for r in run.results]
        assert len({truth[r.response_id]["conn_id"] for r in run.results}) == 6
        assert run.connections_opened >= 5
        # each request went out on a fresh connection, after it was up (its setup time
        # was spent in the queue), and the TTFT stays causal
        for r in run.results:
            assert not r.connection_reused and r.connect_ms is not None and r.queue_ms >= r.connect_ms
            assert r.ttft_ms >= truth[r.response_id]["ttft_ms"]


def test_idle_connections_closed_by_server_are_replaced_before_timing(start_fake):
    s = start_fake(ttft_ms=5, token_ms=1, keep_alive_timeout_ms=150)
    with StreamClient(s.base_url) as c:
        first = c.run([spec()] * 4, concurrency=2, warmup=0)
        time.sleep(0.4)  # the server drops both pooled connections meanwhile
        second = c.run([spec()] * 4, concurrency=2, warmup=0)
    assert all(r.ok for r in first.results + second.results)
    assert second.connections_opened == 0  # replaced before the measured phase
    assert not any(r.retried for r in second.results)
    assert {r.connection_id for r in second.results}.isdisjoint({r.connection_id for r in first.results})


def test_queueing_is_not_counted_as_latency(start_fake):
    s = start_fake(ttft_ms=60, token_ms=1)
    with StreamClient(s.base_url) as c:
        run = c.run([spec(max_tokens=4)] * 5, concurrency=1, warmup=0)
        truth = s.truth()
    q = run.queue_ms()
    assert q[0] < 30 and all(b - a > 60 for a, b in zip(q, q[1:])), q
    for r in run.results:
        # each its own server time (~60 ms), not cumulative (120, 180, 240 ms...)
        assert r.ttft_ms >= 60
        assert 0 <= r.ttft_ms - truth[r.response_id]["ttft_ms"] < 55, (r.ttft_ms, r.queue_ms)


def test_tcp_nodelay_and_request_written_in_one_send(client, fake):
    r = one(client, prompt="x " * 2000)  # a 4 KB body
    assert client.connections()
    for sock in client.connections():
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    assert fake.truth()[r.response_id]["request_reads"] == 1  # headers + body arrived in one read


def test_monotonic_clock_immune_to_wall_clock_jumps(client, monkeypatch):
    assert time.get_clock_info("perf_counter").monotonic
    jumps = iter(range(10**6))
    monkeypatch.setattr(time, "time", lambda: 1e9 - 3600.0 * next(jumps))  # the wall clock runs backwards
    before = time.perf_counter_ns()
    r = one(client, headers=fake_headers(ttft_ms=20))
    after = time.perf_counter_ns()
    assert before <= r.send_ns <= after
    assert r.ttft_ms >= 20 and all(b >= a for a, b in zip(r.token_times_ms, r.token_times_ms[1:]))


def test_burst_delivered_samples_are_flagged(client, fake):
    specs = [spec(max_tokens=8, headers=fake_headers(ttft_ms=10, token_ms=3, burst=(i % 4 == 3)))
             for i in range(12)]
    run = client.run(specs, concurrency=1, warmup=0)
    assert all(r.ok for r in run.results)
    truth = fake.truth()
    n = run.mark_bursts()
    for i, r in enumerate(run.results):
        t = truth[r.response_id]
        if i % 4 == 3:
            # a burst sample arrives late and at once; its TTFT is the server's (late) first write
            assert r.burst and r.first_read_token_events == 8
            assert r.ttft_ms > 10 + 7 * 3 and r.ttft_ms >= t["ttft_ms"]
        elif r.burst:
            # a normal sample may only be flagged when it really was bunched: the server
            # wrote it late and at once (starved by other load), or the client was starved
            server_gap = (t["token_ns"][-1] - t["token_ns"][0]) / 1e6
            assert server_gap < 0.25 * 7 * 3 or (r.client_stall_ms or 0) > 1.0, (
                f"sample {i} flagged as a burst without being bunched: {r.token_times_ms}")
    assert n >= 3


def test_burst_rule_against_reference_tpot(client):
    # tokens 1 ms apart in separate reads: fine on their own, a burst against a 20 ms/token server
    run = client.run([spec(max_tokens=8, headers=fake_headers(token_ms=1))] * 3, concurrency=1, warmup=0)
    assert mark_bursts(run.results, reference_tpot_ms=20.0) == 3


def test_burst_rule_unit():
    from pytest_inference.engine import RequestResult

    def res(times, first_read=1, ok=True):
        return RequestResult(ok=ok, token_times_ms=times, content_events=len(times),
                             first_read_token_events=first_read)

    normal = [res([10 + 5 * i for i in range(8)]) for _ in range(5)]
    squeezed = res([100 + 0.2 * i for i in range(8)])  # separate reads, but 0.2 ms apart
    one_read = res([50.0] * 8, first_read=8)
    short = res([60.0] * 3, first_read=3)  # < 4 events: never judged
    failed = res([1.0] * 8, first_read=8, ok=False)
    allr = normal + [squeezed, one_read, short, failed]
    assert mark_bursts(allr) == 2
    assert [r.burst for r in allr] == [False] * 5 + [True, True, False, False]
