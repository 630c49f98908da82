"""Failures are one readable line, fatal ones raise, and the API key never leaks."""

from __future__ import annotations

import socket

import pytest

from pytest_inference.engine import (
    EndpointAuthError,
    EndpointError,
    EndpointHTTPError,
    EndpointUnreachable,
    NotOpenAIResponse,
    RequestSpec,
    StreamClient,
)
from pytest_inference.testing.fake_openai import fake_headers

KEY = "sk-test-7f3c9a1be2d54c0aa1b2c3d4e5f60718"


def spec(**kw) -> RequestSpec:
    kw.setdefault("model", "fake-model")
    kw.setdefault("max_tokens", 8)
    return RequestSpec(**kw)


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def assert_no_key(*things):
    for t in things:
        assert KEY not in t and KEY[:12] not in t and KEY[-8:] not in t, t


def test_wrong_key_is_an_auth_error_without_the_key(start_fake):
    s = start_fake(api_key="the-right-key-000")
    with StreamClient(s.base_url, api_key=KEY) as c:
        with pytest.raises(EndpointAuthError) as ei:
            c.run([spec()], warmup=0)
        # the plain request path too (the server echoes the key it got in its 401 body)
        with pytest.raises(EndpointAuthError) as ei2:
            c.request("GET", "/models")
        assert_no_key(repr(c), str(c))
    e = ei.value
    assert str(e) == "endpoint rejected the API key (HTTP 401)"
    assert isinstance(e, EndpointError) and e.status == 401
    assert_no_key(str(e), repr(e), str(ei2.value), repr(ei2.value),
                  repr(getattr(e, "partial_results", "")))
    assert "Traceback" not in str(e)


def test_missing_key_says_so(start_fake):
    s = start_fake(api_key="the-right-key-000")
    with StreamClient(s.base_url) as c, pytest.raises(EndpointAuthError, match="no API key was given"):
        c.run_one(spec())


def test_right_key_works_and_key_not_in_results(start_fake):
    s = start_fake(api_key=KEY)
    with StreamClient(s.base_url, api_key=KEY) as c:
        run = c.run([spec()] * 2, warmup=1)
        status, _, body = c.request("GET", "/models")
    assert status == 200 and b"fake-model" in body
    assert all(r.ok for r in run.results)
    assert_no_key(repr(run), str([r.to_dict() for r in run.results]))


def test_http_error_body_echoing_the_key_is_scrubbed(start_fake):
    s = start_fake(api_key=KEY)
    with StreamClient(s.base_url, api_key=KEY) as c:
        r = c.run_one(spec(headers=fake_headers(status=400)))
    assert not r.ok and r.status == 400 and "fake failure with status 400 for key ***" in r.error
    assert_no_key(r.error, repr(r), str(r.to_dict()))


def test_scrub_masks_partial_echoes():
    from pytest_inference.engine.errors import scrub

    assert scrub(f"bad key {KEY[:10]}...{KEY[-6:]}", KEY).count("***") >= 1
    assert KEY[:10] not in scrub(f"bad key {KEY[:10]}", KEY)
    assert scrub("nothing to hide", KEY) == "nothing to hide"


def test_unreachable_port():
    port = free_port()
    with StreamClient(f"http://127.0.0.1:{port}/v1", api_key=KEY) as c:
        with pytest.raises(EndpointUnreachable) as ei:
            c.run([spec()])
        with pytest.raises(EndpointUnreachable):
            c.get_text("/metrics")
    assert str(ei.value) == f"cannot connect to http://127.0.0.1:{port}/v1: connection refused"
    assert_no_key(str(ei.value), repr(ei.value))


def test_unresolvable_host():
    with StreamClient("http://no-such-host.invalid:8000/v1") as c, \
            pytest.raises(EndpointUnreachable, match="cannot resolve host"):
        c.run_one(spec())


@pytest.mark.parametrize("reply,match", [
    ("html", "HTML page .*Welcome to nginx"),
    ("json", "JSON of another shape"),
    ("nonstream", "ignored stream=true"),
    ("sse_other", "not an OpenAI chunk"),
])
def test_not_openai_replies(client, reply, match):
    with pytest.raises(NotOpenAIResponse, match=match) as ei:
        client.run([spec(headers=fake_headers(reply=reply))], warmup=0)
    assert "\n" not in str(ei.value)
    # the client is still usable afterwards
    assert client.run_one(spec()).ok


def test_html_server_wide(start_fake):
    s = start_fake(reply="html")
    with StreamClient(s.base_url) as c, pytest.raises(NotOpenAIResponse, match="HTTP 200"):
        c.run([spec()] * 3, concurrency=3)


def test_other_http_errors_are_recorded_per_request(client):
    specs = [spec(headers=fake_headers(status=500 if i == 1 else None) if i == 1 else None)
             for i in range(3)]
    run = client.run(specs, concurrency=1, warmup=0)
    ok = [r.ok for r in run.results]
    assert ok == [True, False, True]
    bad = run.results[1]
    assert bad.status == 500 and bad.ttft_ms is None
    assert bad.error.startswith("HTTP 500 from http://127.0.0.1:") and "fake failure with status 500" in bad.error
    assert len(run.failed) == 1 and len(run.ttft_ms()) == 2


def test_http_error_class_from_get_text(client):
    with pytest.raises(EndpointHTTPError) as ei:
        client.get_text("/no/such/path")
    assert ei.value.status == 404 and "HTTP 404" in str(ei.value)


def test_connection_dropped_mid_stream_is_recorded(client):
    run = client.run([spec(headers=fake_headers(drop_after=3)), spec()], concurrency=1, warmup=0)
    bad, good = run.results
    assert not bad.ok and "connection lost mid-response" in bad.error
    assert bad.content_events == 3  # what did arrive is kept
    assert good.ok


def test_read_timeout_is_recorded(start_fake):
    s = start_fake(ttft_ms=3000)
    with StreamClient(s.base_url, timeout_s=0.3) as c:
        r = c.run_one(spec())
    assert not r.ok and r.error.startswith("timed out: no data for 0.3 s")


def test_get_text_metrics_health_and_models(client):
    assert client.root_url + "/v1" == client.base_url
    assert "vllm:time_to_first_token_seconds_count" in client.get_text("/metrics")
    assert client.get_text("/health") == ""
    status, headers, body = client.request("GET", "/models")
    assert status == 200 and headers["content-type"] == "application/json" and b'"fake-model"' in body
