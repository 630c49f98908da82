"""Idle-then-probe and a warm run against the serverless endpoint, measured once per session."""

import pytest

from pytest_inference.economics import token_data
from pytest_inference.probes.serverless import measure_serverless
from pytest_inference.progress import TerminalProgress


@pytest.fixture(scope="session")
def serverless_run(request, inference_session, serverless_endpoint, serverless_client):
    from pytest_inference.engine import EndpointError
    from pytest_inference.engine.options import request_deadline_s

    settings = inference_session.settings
    idle_s, max_tokens = settings.serverless_idle_s, settings.max_tokens
    try:
        run = measure_serverless(
            serverless_client, serverless_endpoint.model, idle_s=idle_s, max_tokens=max_tokens,
            requests=settings.warm_requests,
            deadline_s=request_deadline_s(request.config, max_tokens),
            idle_progress=TerminalProgress(request.config, "serverless idle", unit="s"),
            warm_progress=TerminalProgress(request.config, "serverless"),
        )
    except EndpointError as exc:
        pytest.fail(str(exc), pytrace=False)
    inference_session.add_metadata(serverless_host_load={**run.warm.host_load,
                                                         "verdict": run.warm.timing_problem or "client could time"})
    # the serverless endpoint's own token counts (it bills by them), for the economics suite and summary.json
    tokens = token_data(run.warm.results)
    if tokens:
        inference_session.publish("serverless.tokens", tokens, unit="tokens")
    return run
