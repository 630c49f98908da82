"""Serverless: "no cold start seen after idling; median TTFT ~546 ms, range 446 ms - 1.3 s over 20 runs".

The same engine and claims as the warm suite, against a managed endpoint. When the session
also measured a self-hosted server, the report carries the seed's side-by-side table.
"""

import pytest

pytestmark = pytest.mark.serverless

NO_USAGE = "the endpoint reported no token usage (stream_options.include_usage); tokens are not guessed from chunks"


def _params(run):
    return {"idle_s": run.idle_s, "requests": run.warm.requests, "max_tokens": run.warm.max_tokens}


def test_first_request_after_idling(serverless_run, claim):
    probe = serverless_run.probe
    if not probe.ok:
        pytest.fail(f"the first request after {serverless_run.idle_s:g} s idle failed: {probe.error}", pytrace=False)
    claim("serverless.cold_probe_ms", [probe.ttft_ms], unit="ms", parameters=_params(serverless_run),
          details={"idle_s": serverless_run.idle_s, "e2e_ms": probe.e2e_ms, "connection_reused": probe.connection_reused})


def test_ttft_median(serverless_run, claim):
    w = serverless_run.warm
    claim("serverless.ttft_median_ms", w.ttft_ms, stat="median", unit="ms", contaminated=w.contaminated,
          details=w.details(), parameters=_params(serverless_run))


def test_ttft_spread(serverless_run, claim):
    w = serverless_run.warm
    claim("serverless.ttft_spread_ms", w.ttft_ms, stat="spread", unit="ms", min_samples=w.requests,
          contaminated=w.contaminated, parameters=_params(serverless_run))


def test_output_tokens_per_second(serverless_run, claim):
    w = serverless_run.warm
    if not w.usage_reported:
        claim.inconclusive("serverless.output_tok_s", NO_USAGE, unit="tok/s")
        return
    claim("serverless.output_tok_s", w.tok_s, measured=w.output_tok_s, stat="mean", unit="tok/s",
          contaminated=w.contaminated, parameters=_params(serverless_run))
