"""engine.http.get / get_text: the one helper for untimed GETs (/v1/models, /metrics, /health),
against the fake OpenAI server: answers, one-line errors, no key in any message, no leaked fd."""

from __future__ import annotations

import json
import os
import socket

import pytest

from pytest_inference.engine import EndpointAuthError, EndpointHTTPError, EndpointUnreachable
from pytest_inference.engine import http

KEY = "sk-test-0123456789abcdef"


def test_models_metrics_health(fake):
    status, headers, body = http.get(fake.base_url + "/models")
    assert status == 200 and headers["content-type"].startswith("application/json")
    assert [m["id"] for m in json.loads(body)["data"]] == ["fake-model"]
    text = http.get_text(fake.url + "/metrics")
    assert "vllm:num_requests_running" in text
    assert http.get(fake.url + "/health")[0] == 200
    assert http.get(fake.url + "/health?verbose=1")[0] == 200  # a query string travels


def test_a_non_2xx_status_is_returned_by_get_and_one_line_from_get_text(fake):
    assert http.get(fake.url + "/nothing")[0] == 404
    with pytest.raises(EndpointHTTPError) as ei:
        http.get_text(fake.url + "/nothing")
    assert str(ei.value) == f"HTTP 404 from {fake.url}/nothing: Not Found" and ei.value.status == 404


def test_the_key_is_sent_and_never_shown(start_fake):
    s = start_fake(api_key=KEY)
    assert http.get(s.base_url + "/models", api_key=KEY)[0] == 200
    with pytest.raises(EndpointAuthError) as ei:
        http.get(s.base_url + "/models", api_key="sk-wrong-key-0000000000")
    assert "sk-wrong" not in str(ei.value) and str(ei.value) == "endpoint rejected the API key (HTTP 401)"
    # a server echoing the key in an error body (here: the key in the path of a 404)
    with pytest.raises(EndpointHTTPError) as ei2:
        http.get_text(f"{s.base_url}/x-{KEY}", api_key=KEY)
    msg = str(ei2.value)
    assert msg.startswith("HTTP 404 from ") and KEY not in msg and KEY[:12] not in msg and "\n" not in msg


def test_nothing_listening_is_one_line():
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(EndpointUnreachable) as ei:
        http.get(f"http://127.0.0.1:{port}/metrics", timeout_s=2)
    assert str(ei.value) == f"cannot connect to http://127.0.0.1:{port}/metrics: connection refused"


def test_not_an_http_url():
    with pytest.raises(ValueError, match="unsupported URL scheme 'ftp'"):
        http.get("ftp://example.invalid/metrics")


def test_a_server_that_never_answers_times_out_in_one_line():
    with socket.socket() as lsock:  # the kernel accepts the connection; nobody ever answers
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(4)
        port = lsock.getsockname()[1]
        with pytest.raises(EndpointHTTPError) as ei:
            http.get(f"http://127.0.0.1:{port}/metrics", timeout_s=0.5)
    assert str(ei.value) == f"http://127.0.0.1:{port}/metrics: timed out after 0.5 s waiting for the response"


def test_no_descriptor_is_left_open(fake):
    http.get(fake.url + "/health")
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(20):
        http.get(fake.url + "/health")
    assert len(os.listdir("/proc/self/fd")) <= before
