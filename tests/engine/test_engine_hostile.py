"""Hostile servers (issue 10): cut streams, lying token counts, endless streams, silent servers,
https to a plain-HTTP port, keys that cannot be headers. The fake server is the test double;
the engine's verdict on each request is what is under test."""

from __future__ import annotations

import time

import pytest

from pytest_inference.engine import EndpointAuthError, EndpointUnreachable, RequestSpec, StreamClient
from pytest_inference.engine.errors import EndpointTimeout
from pytest_inference.engine.http import Origin, build_request
from pytest_inference.engine.results import MAX_TOKENS_PER_EVENT, token_count_problem
from pytest_inference.testing.fake_openai import fake_headers


def spec(max_tokens=32, **fake) -> RequestSpec:
    return RequestSpec(model="fake-model", max_tokens=max_tokens, headers=fake_headers(**fake) if fake else None)


# --- A3: a stream is complete only when the protocol says it ended ------------------------------

def test_close_framed_stream_cut_without_done_is_a_failed_request(client):
    r = client.run_one(spec(framing="close", cut_after=5, usage="never", token_ms=2))
    assert not r.ok
    assert r.error.startswith("stream ended without [DONE]") and "5 token events" in r.error
    assert "closed the connection" in r.error


def test_close_framed_stream_with_done_is_complete(client):
    r = client.run_one(spec(framing="close", token_ms=1))
    assert r.ok, r.error
    assert r.done_marker and r.content_events == 32 and r.output_tokens == 32


def test_chunked_stream_cut_cleanly_is_a_failed_request(client):
    r = client.run_one(spec(cut_after=5))
    assert not r.ok and r.content_events == 5


def test_a_cut_stream_loses_its_ttft_sample(client):
    run = client.run([spec(max_tokens=8), spec(max_tokens=8, framing="close", cut_after=3, usage="never")],
                     warmup=0)
    assert [r.ok for r in run.results] == [True, False]
    assert len(run.ttft_ms()) == 1 and len(run.failed) == 1


# --- A2: usage.completion_tokens vs the stream ------------------------------------------------------

def test_usage_far_above_the_events_is_not_used(client):
    r = client.run_one(spec(usage_tokens=1000, token_ms=1))
    assert r.ok and r.content_events == 32 and r.output_tokens == 1000
    assert r.token_count_problem == f"usage.completion_tokens 1000 > {MAX_TOKENS_PER_EVENT} x 32 token events"
    assert r.tpot_ms is None  # never divided by a count the stream contradicts


def test_usage_below_the_events_is_not_used(client):
    r = client.run_one(spec(usage_tokens=10, token_ms=1))
    assert "10 < 32 token events" in r.token_count_problem and r.tpot_ms is None


def test_run_totals_are_unknown_when_a_count_is_contradicted(client):
    run = client.run([spec(max_tokens=8), spec(max_tokens=8, usage_tokens=500)], warmup=0)
    assert run.total_output_tokens is None and run.output_throughput is None


def test_packed_chunks_are_a_sound_count(client):
    # vLLM may pack several tokens into one chunk (speculative decoding): 64 tokens in 16 events
    r = client.run_one(spec(max_tokens=64, tokens_per_chunk=4))
    assert r.content_events == 16 and r.output_tokens == 64
    assert r.token_count_problem is None and r.tpot_ms is not None


@pytest.mark.parametrize("usage, events, sound", [
    (64, 64, True), (64, 54, True),            # the CPU vLLM here: 54-64 chunks for 64 tokens
    (8 * 32, 32, True), (8 * 32 + 1, 32, False),
    (1000, 32, False), (31, 32, False), (None, 32, True), (5, 0, True),
])
def test_token_count_rule(usage, events, sound):
    assert (token_count_problem(usage, events) is None) is sound


# --- B10: a total per-request deadline and an early stop ---------------------------------------------

@pytest.mark.parametrize("endless", ["pings", "tokens"])
def test_a_stream_that_never_ends_meets_the_deadline(client, endless):
    t = time.monotonic()
    r = client.run_one(spec(endless=endless, token_ms=5), deadline_s=1.0)
    took = time.monotonic() - t
    assert not r.ok and r.timed_out and "request deadline of 1 s exceeded" in r.error
    assert took < 5, took
    # the connection was dropped: the next request works
    assert client.run_one(spec(max_tokens=4)).ok


def test_the_client_default_deadline_is_used(client):
    client.request_deadline_s = 0.5
    r = client.run_one(spec(endless="pings"))
    assert not r.ok and "request deadline of 0.5 s exceeded" in r.error


def test_a_server_that_never_answers_stops_the_run_early(start_fake):
    srv = start_fake(hang=True)
    with StreamClient(srv.base_url, timeout_s=0.5) as c:
        t = time.monotonic()
        with pytest.raises(EndpointTimeout) as ei:
            c.run([spec()] * 20, warmup=0)
        took = time.monotonic() - t
    msg = str(ei.value)
    assert msg.startswith("stopped the run: the first 2 requests in a row timed out") and "\n" not in msg
    assert "no data for 0.5 s" in msg
    assert took < 3, took  # 2 timeouts, not 20
    partial = ei.value.partial_results
    assert sum(r.timed_out for r in partial) == 2


def test_endless_streams_stop_the_run_early_too(start_fake):
    srv = start_fake(endless="tokens", token_ms=5)
    with StreamClient(srv.base_url, timeout_s=5) as c, pytest.raises(EndpointTimeout, match="request deadline"):
        c.run([spec()] * 20, warmup=0, deadline_s=0.5)


def test_deadline_must_be_positive(client):
    with pytest.raises(ValueError, match="deadline_s must be > 0"):
        client.run([spec()], deadline_s=0)


# --- B14: https:// to a plain-HTTP server -------------------------------------------------------------

def test_https_to_a_plain_http_server_is_one_quick_line(fake):
    url = fake.base_url.replace("http://", "https://")
    for how in ("run", "request"):
        with StreamClient(url, timeout_s=30) as c:
            t = time.monotonic()
            with pytest.raises(EndpointUnreachable) as ei:
                if how == "run":
                    c.run_one(spec())
                else:
                    c.request("GET", "/models")
            took = time.monotonic() - t
        assert "answers plain HTTP: use http:// instead of https://" in str(ei.value), how
        assert took < 8, (how, took)  # not the 30 s timeout


# --- B9: a key that cannot be a header never reaches an error text -----------------------------------

@pytest.mark.parametrize("key", ["sk-abc\r\nX-Evil: 1", "sk-line\nbreak-0123456789", "sk-caf\u00e9-\u20ac-0123456789"])
def test_a_key_that_cannot_be_a_header_is_one_line_without_the_key(fake, key):
    for how in ("run", "request"):
        with StreamClient(fake.base_url, api_key=key) as c:
            with pytest.raises(EndpointAuthError) as ei:
                c.run_one(spec()) if how == "run" else c.request("GET", "/models")
            text = str(ei.value) + repr(ei.value) + repr(c)
        assert "the API key contains" in str(ei.value) and "\n" not in str(ei.value)
        for piece in (key, key[:8], key[-8:]):
            assert piece not in text
        assert ei.value.__cause__ is None and (ei.value.__context__ is None or ei.value.__suppress_context__)


def test_build_request_never_quotes_a_header_value():
    o = Origin("http", "127.0.0.1", 80, "/v1")
    secret = "sk-\u20ac-very-secret"
    with pytest.raises(ValueError) as ei:
        build_request("POST", o, "/v1/x", b"{}", {"Authorization": f"Bearer {secret}"})
    assert "Authorization" in str(ei.value) and secret not in str(ei.value) and "sk-" not in str(ei.value)


def test_the_warm_probe_counts_contradicted_counts_among_the_samples_it_uses(start_fake):
    from pytest_inference.probes.warm import measure_warm

    srv = start_fake(ttft_ms=5, token_ms=2, usage_tokens=1000)
    with StreamClient(srv.base_url, timeout_s=10) as c:
        run = measure_warm(c, "fake-model", requests=4, warmup=0, max_tokens=32)
    assert run.count_mismatches == 4 and not run.tpot_ms and not run.tok_s
    assert run.count_problem.startswith("the server's usage.completion_tokens disagrees with the stream in 4 of 4")
    # a burst-delivered (starved) stream is excluded with its count: coalesced chunks are not a lie
    srv2 = start_fake(ttft_ms=5, token_ms=2, usage_tokens=1000, burst=True)
    with StreamClient(srv2.base_url, timeout_s=10) as c:
        run2 = measure_warm(c, "fake-model", requests=4, warmup=0, max_tokens=32)
    assert run2.contaminated == 4 and run2.count_mismatches == 0 and run2.count_problem is None

