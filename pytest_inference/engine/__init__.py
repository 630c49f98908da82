"""The streaming measurement engine: a raw-socket HTTP/1.1 + SSE client that times
OpenAI-compatible streaming requests close to the socket.

    from pytest_inference.engine import StreamClient, RequestSpec
    with StreamClient("http://127.0.0.1:8000/v1") as client:
        run = client.run([RequestSpec(model="m", prompt="hi", max_tokens=64)] * 20,
                         concurrency=4, warmup=2)
        run.ttft_ms()

``client.progress()`` (a :class:`Progress`) may be read from another thread while ``run`` runs.
See :mod:`.results` for the metric definitions, :mod:`.openai_stream` for how a chunk becomes
token events (and the ``[DONE]`` rule), :mod:`.derive` for the figures computed from the
timestamps, :mod:`.burst` for burst detection, :mod:`.prometheus` for server-side cross-checks
and :func:`.http.get` for untimed GETs (``/v1/models``, ``/metrics``, ``/health``).

Open loop: ``client.run_open_loop(specs, arrivals.poisson(8.0, n=200, seed=1))`` sends each request
at its scheduled time and times it from then (:mod:`.openloop`: dispatch lag, ``client_saturated``);
:func:`.workers.run_open_loop_workers` splits one schedule over several processes.
"""

from . import arrivals
from .burst import mark_bursts
from .client import StreamClient
from .errors import (
    EndpointAuthError,
    EndpointError,
    EndpointHTTPError,
    EndpointUnreachable,
    NotOpenAIResponse,
)
from .openloop import OpenLoopRequestResult, OpenLoopResult
from .results import Progress, RequestResult, RequestSpec, RunResult
from .sse import SSEParser

__all__ = [
    "StreamClient",
    "Progress",
    "RequestSpec",
    "RequestResult",
    "RunResult",
    "EndpointError",
    "EndpointUnreachable",
    "EndpointAuthError",
    "NotOpenAIResponse",
    "EndpointHTTPError",
    "SSEParser",
    "mark_bursts",
    "arrivals",
    "OpenLoopResult",
    "OpenLoopRequestResult",
    "run_open_loop_workers",
]


def __getattr__(name: str):
    if name == "run_open_loop_workers":  # subprocess machinery: imported when used
        from .workers import run_open_loop_workers

        return run_open_loop_workers
    raise AttributeError(name)
