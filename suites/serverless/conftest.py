"""Idle-then-probe and a warm run against the serverless endpoint, measured once per session."""

import pytest

from pytest_inference.economics import token_data
from pytest_inference.probes.serverless import measure_serverless
from pytest_inference.progress import TerminalProgress


@pytest.fixture(scope="session")
def serverless_run(request, inference_session, serverless_endpoint, serverless_client):
    from pytest_inference.engine import EndpointError
    from pytest_inference.engine.options import request_deadline_s

    target, opt = inference_session.target, request.config.getoption
    idle_s = opt("inference_serverless_idle_s")
    if idle_s is None:
        idle_s = float(target.setting("serverless_idle_s", 60))
    max_tokens = opt("inference_max_tokens") or target.setting("max_tokens", 64)
    try:
        run = measure_serverless(
            serverless_client, serverless_endpoint.model, idle_s=idle_s, max_tokens=max_tokens,
            requests=opt("inference_warm_requests") or target.setting("warm_requests", 20),
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
