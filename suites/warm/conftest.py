"""The warm run every test of this suite judges: measured once per session."""

import pytest

from pytest_inference.economics import token_data
from pytest_inference.probes.warm import measure_warm
from pytest_inference.progress import TerminalProgress


@pytest.fixture(scope="session")
def warm_run(request, inference_session, inference_endpoint, inference_client):
    """N streamed requests after uncounted warm-ups (N: --warm-requests, else the target's, else 20)."""
    from pytest_inference.engine import EndpointError

    from pytest_inference.engine.options import request_deadline_s

    settings = inference_session.settings
    max_tokens = settings.max_tokens
    try:
        run = measure_warm(
            inference_client,
            inference_endpoint.model,
            requests=settings.warm_requests,
            warmup=settings.warm_warmup,
            max_tokens=max_tokens,
            progress=TerminalProgress(request.config, "warm"),
            deadline_s=request_deadline_s(request.config, max_tokens),
        )
    except EndpointError as exc:
        pytest.fail(str(exc), pytrace=False)
    # the contamination evidence of the window reaches summary.json's run metadata too
    inference_session.add_metadata(warm_host_load={**run.host_load, "verdict": run.timing_problem or "client could time"})
    # the servers' token counts, for later suites (economics: inference_session.measurements) and summary.json
    tokens = token_data(run.results)
    if tokens:
        inference_session.publish("warm.tokens", tokens, unit="tokens")
    return run
