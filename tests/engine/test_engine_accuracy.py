"""Measurement truth: the engine's TTFT against the fake server's own timestamps.

The server runs in its own process and stamps, with the same CLOCK_MONOTONIC, when a
request's last byte was read and right before the first token event was written. The
client's TTFT can only be larger (it starts before the server reads, and ends after the
server writes), so ``error = measured − true`` must be positive and small.
"""

from __future__ import annotations

import statistics

import pytest

from pytest_inference.engine import RequestSpec, StreamClient
from pytest_inference.testing.fake_openai import FakeOpenAIServer

pytestmark = pytest.mark.xdist_group("timing")


def spec(**kw) -> RequestSpec:
    kw.setdefault("model", "fake-model")
    kw.setdefault("max_tokens", 8)
    return RequestSpec(**kw)


def errors(run, truth) -> list[float]:
    assert all(r.ok for r in run.results), [r.error for r in run.results if not r.ok]
    return [r.ttft_ms - truth[r.response_id]["ttft_ms"] for r in run.results]


@pytest.mark.parametrize("concurrency,n,bound_ms", [(1, 20, 0.5), (16, 64, 1.0)])
def test_ttft_error_against_ground_truth(concurrency, n, bound_ms):
    with FakeOpenAIServer(ttft_range="20:60", token_ms=1, seed=concurrency) as s, \
            StreamClient(s.base_url) as c:
        run = c.run([spec()] * n, concurrency=concurrency, warmup=concurrency)
        errs = errors(run, s.truth())
    med = statistics.median(errs)
    assert min(errs) >= 0, f"measured TTFT below the server's true TTFT: {min(errs):.3f} ms (clock/stamp bug)"
    assert med <= bound_ms, f"median TTFT error {med:.3f} ms > {bound_ms} ms (errors: {sorted(errs)})"


def test_spread_is_not_inflated():
    """20 requests with injected TTFT 20..58 ms: measured spread (max − min) matches the true one."""
    delays = [20 + 2 * i for i in range(20)]
    with FakeOpenAIServer(ttft_schedule=delays, token_ms=1) as s, StreamClient(s.base_url) as c:
        c.run([spec()] * 2, concurrency=1, warmup=0)  # warm-up consumes two schedule slots
        s.reset()
        run = c.run([spec()] * 20, concurrency=1, warmup=0)
        truth = s.truth()
    errors(run, truth)
    measured = run.ttft_ms()
    true = [truth[r.response_id]["ttft_ms"] for r in run.results]
    inflation = (max(measured) - min(measured)) - (max(true) - min(true))
    assert abs(inflation) <= 1.0, f"spread inflated by {inflation:.3f} ms"
    assert max(true) - min(true) > 30  # the delays really varied


def test_concurrent_results_keep_submission_order_and_identity():
    with FakeOpenAIServer(ttft_schedule=[30, 5, 20, 10], token_ms=1) as s, StreamClient(s.base_url) as c:
        specs = [spec(prompt=f"p{i} " * (i + 1)) for i in range(12)]
        run = c.run(specs, concurrency=4, warmup=0)
    assert [r.index for r in run.results] == list(range(12))
    assert [r.prompt_tokens for r in run.results] == [i + 1 for i in range(12)]  # fake counts words
    assert len({r.response_id for r in run.results}) == 12
