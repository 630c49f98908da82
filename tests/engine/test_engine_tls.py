"""https: the TLS handshake happens before timing; non-blocking reads handle TLS records."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from pytest_inference.engine import EndpointUnreachable, RequestSpec, StreamClient
from pytest_inference.testing.fake_openai import FakeOpenAIServer, fake_headers

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI not installed")


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    with FakeOpenAIServer(tls_cert=str(cert), tls_key=str(key), ttft_ms=10, token_ms=1) as s:
        s.cert = str(cert)
        yield s


def test_https_stream_measures_like_http(tls_server):
    assert tls_server.base_url.startswith("https://")
    with StreamClient(tls_server.base_url, verify=tls_server.cert) as c:
        run = c.run([RequestSpec(model="fake-model", max_tokens=8,
                                 headers=fake_headers(split_events=2, split_pause_ms=0.3))] * 6,
                    concurrency=3, warmup=3)
        assert "vllm:time_to_first_token_seconds" in c.get_text("/metrics")
    truth = tls_server.truth()
    assert all(r.ok for r in run.results), [r.error for r in run.results]
    assert all(r.content_events == 8 and r.output_tokens == 8 for r in run.results)
    assert run.connections_opened == 0  # handshakes happened before the measured phase
    errs = [r.ttft_ms - truth[r.response_id]["ttft_ms"] for r in run.results]
    assert all(e >= 0 for e in errs), errs  # stamped after complete TLS records, never before


def test_https_self_signed_rejected_by_default(tls_server):
    with StreamClient(tls_server.base_url) as c, \
            pytest.raises(EndpointUnreachable, match="certificate verification failed"):
        c.run_one(RequestSpec(model="fake-model"))


def test_https_verify_false(tls_server):
    with StreamClient(tls_server.base_url, verify=False) as c:
        assert c.run_one(RequestSpec(model="fake-model", max_tokens=4)).ok
