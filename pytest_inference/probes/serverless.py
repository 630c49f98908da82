"""The serverless probe: leave the endpoint alone for ``idle_s``, time the first request after it
(what a user meets after a scale-to-zero), then a warm run with no warm-up (serverless users see
every request). Observations only; the serverless suite judges them."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

from .warm import WarmRun, measure_warm, prompts


@dataclass
class ServerlessRun:
    idle_s: float
    probe: Any  # the engine's RequestResult of the first request after the idle time
    warm: WarmRun
    probe_host_load: dict = field(default_factory=dict)  # hostload.evidence() of the probe's window
    probe_timing_problem: str | None = None  # the client could not time the probe (a loaded host)


def measure_serverless(client: Any, model: str, *, idle_s: float, requests: int, max_tokens: int,
                       deadline_s: float | None = None,
                       idle_progress: Callable[[int, int], Any] | None = None,
                       warm_progress: Any = None) -> ServerlessRun:
    """Idle, then probe once, then ``requests`` warm requests (raises the engine's EndpointError)."""
    from ..engine import RequestSpec
    from ..engine.hostload import evidence, judge_client_timing

    client.open_connections(1)
    deadline = time.monotonic() + idle_s
    while (left := deadline - time.monotonic()) > 0:  # leave the endpoint alone
        time.sleep(min(2.0, left))
        if left > 2.0 and idle_progress is not None:
            idle_progress(round(idle_s - left + 2.0), round(idle_s))
    probe_run = client.run([RequestSpec(model=model, prompt=prompts(1, "Say hello.")[0],
                                        max_tokens=max_tokens, ignore_eos=True)],
                           warmup=0, deadline_s=deadline_s)
    probe = probe_run.results[0]
    probe_load = evidence(probe_run.client_runq_ms, 1, probe_run.cpu_pressure,
                          [probe.ttft_stall_ms] if probe.ok else [])
    warm = measure_warm(client, model, requests=requests, warmup=0, max_tokens=max_tokens,
                        progress=warm_progress, deadline_s=deadline_s)
    return ServerlessRun(idle_s=idle_s, probe=probe, warm=warm, probe_host_load=probe_load,
                         probe_timing_problem=judge_client_timing(probe_load))
