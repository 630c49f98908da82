"""Idle-then-probe and a warm run against the serverless endpoint, measured once per session."""

import time
from dataclasses import dataclass, field

import pytest

from pytest_inference.probes.serving import WarmRun, measure_warm, prompts
from pytest_inference.progress import TerminalProgress


@dataclass
class ServerlessRun:
    idle_s: float
    probe: object  # the engine's RequestResult of the first request after the idle time
    warm: WarmRun
    probe_host_load: dict = field(default_factory=dict)  # hostload.evidence() of the probe's window
    probe_timing_problem: str | None = None  # the client could not time the probe (a loaded host)


@pytest.fixture(scope="session")
def serverless_run(request, inference_session, serverless_endpoint, serverless_client):
    from pytest_inference.engine import EndpointError, RequestSpec
    from pytest_inference.engine.hostload import evidence, judge_client_timing
    from pytest_inference.engine.options import request_deadline_s

    target, opt = inference_session.target, request.config.getoption
    idle_s = opt("inference_serverless_idle_s")
    if idle_s is None:
        idle_s = float(target.setting("serverless_idle_s", 60))
    max_tokens = opt("inference_max_tokens") or target.setting("max_tokens", 64)
    deadline_s = request_deadline_s(request.config, max_tokens)
    progress = TerminalProgress(request.config, "serverless idle", unit="s")
    try:
        serverless_client.open_connections(1)
        deadline = time.monotonic() + idle_s
        while (left := deadline - time.monotonic()) > 0:  # leave the endpoint alone
            time.sleep(min(2.0, left))
            if left > 2.0:
                progress(round(idle_s - left + 2.0), round(idle_s))
        probe_run = serverless_client.run([RequestSpec(model=serverless_endpoint.model, prompt=prompts(1, "Say hello.")[0],
                                                       max_tokens=max_tokens, ignore_eos=True)],
                                          warmup=0, deadline_s=deadline_s)
        probe = probe_run.results[0]
        probe_load = evidence(probe_run.client_runq_ms, 1, probe_run.cpu_pressure,
                              [probe.ttft_stall_ms] if probe.ok else [])
        warm = measure_warm(
            serverless_client,
            serverless_endpoint.model,
            requests=opt("inference_warm_requests") or target.setting("warm_requests", 20),
            warmup=0,  # the probe was the warm-up; serverless users see every request
            max_tokens=max_tokens,
            progress=TerminalProgress(request.config, "serverless"),
            deadline_s=deadline_s,
        )
    except EndpointError as exc:
        pytest.fail(str(exc), pytrace=False)
    inference_session.add_metadata(serverless_host_load={**warm.host_load,
                                                         "verdict": warm.timing_problem or "client could time"})
    return ServerlessRun(idle_s=idle_s, probe=probe, warm=warm, probe_host_load=probe_load,
                         probe_timing_problem=judge_client_timing(probe_load))
