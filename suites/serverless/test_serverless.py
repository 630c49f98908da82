"""Serverless: "no cold start seen after idling; median TTFT ~546 ms, range 446 ms - 1.3 s over 20 runs".

The same engine and claims as the warm suite, against a managed endpoint. When the session
also measured a self-hosted server, the report carries the seed's side-by-side table. The same
guards too: a loaded measuring host makes every client-timed claim inconclusive, a token count
the stream contradicts makes tokens/s inconclusive.
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
    details = {"idle_s": serverless_run.idle_s, "e2e_ms": probe.e2e_ms, "connection_reused": probe.connection_reused,
               "host_load": serverless_run.probe_host_load}
    if serverless_run.probe_timing_problem:
        claim.inconclusive("serverless.cold_probe_ms", serverless_run.probe_timing_problem, unit="ms",
                           details=details, parameters=_params(serverless_run))
        return
    claim("serverless.cold_probe_ms", [probe.ttft_ms], unit="ms", parameters=_params(serverless_run), details=details)


def test_ttft_median(serverless_run, claim):
    w = serverless_run.warm
    if w.timing_problem:
        claim.inconclusive("serverless.ttft_median_ms", w.timing_problem, unit="ms", details=w.details(),
                           parameters=_params(serverless_run))
        return
    claim("serverless.ttft_median_ms", w.ttft_ms, stat="median", unit="ms", contaminated=w.contaminated,
          details=w.details(), parameters=_params(serverless_run))


def test_ttft_spread(serverless_run, claim):
    w = serverless_run.warm
    if w.timing_problem:
        claim.inconclusive("serverless.ttft_spread_ms", w.timing_problem, unit="ms", details=w.details(),
                           parameters=_params(serverless_run))
        return
    claim("serverless.ttft_spread_ms", w.ttft_ms, stat="spread", unit="ms", min_samples=w.requests,
          contaminated=w.contaminated, details=w.details(), parameters=_params(serverless_run))


def test_output_tokens_per_second(serverless_run, claim):
    w = serverless_run.warm
    why = NO_USAGE if not w.usage_reported else (w.count_problem or w.timing_problem)
    if why:
        claim.inconclusive("serverless.output_tok_s", why, unit="tok/s", details=w.details(),
                           parameters=_params(serverless_run))
        return
    claim("serverless.output_tok_s", w.tok_s, measured=w.output_tok_s, stat="mean", unit="tok/s",
          contaminated=w.contaminated, details=w.details(), parameters=_params(serverless_run))
