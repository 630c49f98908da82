"""The server side of a graceful shutdown: the Kubernetes ``preStop`` drain and the queue depth it
polls.

The claim (article B): a ``preStop`` hook "drains in-flight requests: polls vLLM's metrics endpoint
until the queue is empty, then lets the pod stop (a plain SIGTERM would drop batched requests)".

* :func:`queue_depth` — ``(running, waiting)`` from Prometheus ``/metrics``
  (``vllm:num_requests_running`` and ``vllm:num_requests_waiting``, each summed over its label
  sets: several engines or models add up);
* :func:`drain_then_stop` — what the hook does, then what the kubelet does after it: poll
  running + waiting until both are 0 for ``zero_polls`` consecutive polls, *then* send SIGTERM
  (:func:`pytest_inference.supervise.signal_and_wait`) and wait for every process to exit;
  :data:`PRESTOP_HOOK` is the same drain as the shell one-liner a pod spec runs (``prestop_hook()``
  builds it for another port).

What a shutdown does to the streams in flight is measured by :mod:`pytest_inference.probes.drain`.

Seen on vLLM 0.32 (CPU build, 32 streams of 768 tokens, tests/server/test_drain.py): SIGTERM
with the default ``--shutdown-timeout 0`` ends every stream at once with ``finish_reason=abort``;
the drain helper and ``--shutdown-timeout 20`` lose none. But ``--shutdown-timeout`` only holds
when the signal reaches the API server alone (the kubelet signals the container's PID 1): SIGTERM
to the whole process group (``kill -- -PGID``, systemd's ``KillMode=control-group``) also
reaches the Worker, which exits; the draining EngineCore dies with it and every stream ends with
an error event. :func:`~pytest_inference.supervise.signal_and_wait` does either (``group``,
``wait_pgid``).

Linux only (process groups and ``/proc``). Every URL here is the server's own; nothing is sent
anywhere else.
"""

from __future__ import annotations

import math
import shlex
import signal as _signal
import subprocess
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from ..engine import EndpointError, EndpointUnreachable, StreamClient
from ..engine import prometheus
from ..supervise import resolve_group, kill_group, signal_and_wait

__all__ = [
    "RUNNING_METRIC",
    "WAITING_METRIC",
    "PRESTOP_HOOK",
    "prestop_hook",
    "prestop_exec",
    "run_prestop_hook",
    "parse_queue_depth",
    "queue_depth",
    "MetricsMissing",
    "DrainResult",
    "drain_then_stop",
]

RUNNING_METRIC = "vllm:num_requests_running"
WAITING_METRIC = "vllm:num_requests_waiting"


# --------------------------------------------------------------------------- the preStop hook


def prestop_hook(port: int = 8000, *, host: str = "127.0.0.1", poll_s: float = 1.0, zero_polls: int = 2,
                 scheme: str = "http") -> str:
    """The preStop drain as one POSIX ``sh`` line (needs ``curl`` and ``awk``, both in the
    vLLM images): poll ``/metrics`` every ``poll_s`` until running + waiting is 0 on
    ``zero_polls`` consecutive polls, then exit 0 so the kubelet sends SIGTERM. Only a refused
    connection (curl exit 7: nothing listens, the server is gone) or a page without either
    gauge ends it at once. A ``/metrics`` that does not answer in time or answers with an
    error (a busy server) is *not* taken as drained: it counts as busy and the hook polls on —
    the seed's hook defaulted both gauges to 0 there and let the pod stop mid-request. The
    kubelet bounds it by the pod's ``terminationGracePeriodSeconds``, which must exceed the
    longest request plus the exit."""
    url = f"{scheme}://{host}:{int(port)}/metrics"
    # the value is the first field after the label set (or after the name when there is none);
    # vllm:num_requests_waiting_by_reason is a different gauge and must not be summed in
    awk = ("/^vllm:num_requests_(running|waiting)[{ ]/{v=$0; if (index(v, \"}\")) sub(/^.*}/, \"\", v); "
           "else sub(/^[^ ]+/, \"\", v); split(v, a, \" \"); s += a[1]; f = 1} "
           "END{if (f) print s + 0; else print \"gone\"}")
    return (f"z=0; while [ $z -lt {int(zero_polls)} ]; do "
            f"m=$(curl -fsS -m 2 {shlex.quote(url)} 2>/dev/null); c=$?; "
            f"[ $c = 7 ] && break; "
            f"if [ $c = 0 ]; then q=$(printf '%s\\n' \"$m\" | awk {shlex.quote(awk)}); else q=busy; fi; "
            f"[ \"$q\" = gone ] && break; "
            f"if [ \"$q\" = 0 ]; then z=$((z+1)); else z=0; fi; "
            f"sleep {poll_s:g}; done")


#: The hook for a vLLM pod serving on port 8000 (the vLLM default), polling every second,
#: drained after two consecutive empty polls. In a pod spec::
#:
#:     lifecycle:
#:       preStop:
#:         exec:
#:           command: ["/bin/sh", "-c", <PRESTOP_HOOK>]
PRESTOP_HOOK = prestop_hook()


def prestop_exec(port: int = 8000, **kw: Any) -> list[str]:
    """``lifecycle.preStop.exec.command`` for a pod spec: ``["/bin/sh", "-c", prestop_hook(...)]``."""
    return ["/bin/sh", "-c", prestop_hook(port, **kw)]


def run_prestop_hook(root_url: str, *, poll_s: float = 1.0, zero_polls: int = 2,
                     timeout_s: float = 120.0) -> tuple[int, float]:
    """Run the exact hook (``/bin/sh -c``) here against ``root_url`` (``http://host:port``);
    return ``(exit status, seconds it took)``. A hook still polling after ``timeout_s`` is
    killed (status 124), as the kubelet would cut it at the grace period."""
    from ..engine.http import parse_base_url

    o = parse_base_url(root_url)
    cmd = prestop_exec(o.port, host=o.host, poll_s=poll_s, zero_polls=zero_polls, scheme=o.scheme)
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
    try:
        rc = p.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        kill_group(p.pid, _signal.SIGKILL)
        p.wait()
        rc = 124
    return rc, time.monotonic() - t0


# --------------------------------------------------------------------------- queue depth


class MetricsMissing(EndpointError):
    """``/metrics`` answered but has neither queue gauge: a drain cannot be judged from it."""


def parse_queue_depth(text: str) -> tuple[int, int]:
    """``(running, waiting)`` from a Prometheus exposition, each summed over its label sets.
    A gauge that is absent counts 0 when the other is present; both absent raises
    :class:`MetricsMissing`."""
    running = prometheus.value_sum(text, RUNNING_METRIC)
    waiting = prometheus.value_sum(text, WAITING_METRIC)
    if running is None and waiting is None:
        raise MetricsMissing(f"/metrics has neither {RUNNING_METRIC} nor {WAITING_METRIC}")
    return _count(running), _count(waiting)


def _count(v: float | None) -> int:
    if v is None or math.isnan(v):
        return 0
    return int(round(v))


def queue_depth(root_url: str, *, timeout_s: float = 5.0, api_key: str | None = None) -> tuple[int, int]:
    """``(running, waiting)`` requests of the server at ``root_url`` (``http://host:port``; a
    ``/v1`` base URL works too: ``/metrics`` is read from the root). Raises
    :class:`EndpointUnreachable` when nothing listens, :class:`EndpointError` for a non-2xx
    answer, :class:`MetricsMissing` when the gauges are absent."""
    from ..engine import http as ehttp

    root = ehttp.parse_base_url(root_url).root_url
    return parse_queue_depth(ehttp.get_text(root + "/metrics", api_key=api_key, timeout_s=timeout_s))


# --------------------------------------------------------------------------- drain, then stop


@dataclass
class DrainResult:
    """What :func:`drain_then_stop` saw and did. Times in seconds from its start (``drain_s``:
    until the signal went out) and from the signal (``exit_s``: until the last process exited)."""

    drained: bool = False  # the queue was seen empty on zero_polls consecutive polls
    reason: str = ""  # "empty" | "timeout" | "server gone"
    polls: int = 0  # successful scrapes
    scrape_errors: int = 0
    drain_s: float = 0.0
    signalled: bool = False
    signal: str = "SIGTERM"
    target: int = 0
    group: bool = True
    exit_s: float | None = None  # None: still running after exit_timeout_s
    killed: bool = False  # SIGKILL after exit_timeout_s
    max_in_flight: int = 0  # the largest running + waiting seen
    first_depth: tuple[int, int] | None = None
    trace: list[tuple[float, int, int]] = field(default_factory=list)  # (t_s, running, waiting) per poll

    @property
    def exited(self) -> bool:
        return self.exit_s is not None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["exited"] = self.exited
        return d


def drain_then_stop(root_url: str, pgid_or_pid: int, *, poll_s: float = 0.2, timeout_s: float = 120.0,
                    sig: int = _signal.SIGTERM, zero_polls: int = 2, group: bool | None = None,
                    wait_pgid: int | None = None, exit_timeout_s: float = 60.0, kill_after: bool = True,
                    signal_on_timeout: bool = True, api_key: str | None = None, scrape_timeout_s: float = 5.0) -> DrainResult:
    """Do what the preStop hook does, then what the kubelet does after it.

    Poll ``root_url``'s ``/metrics`` every ``poll_s`` until running + waiting is 0 on
    ``zero_polls`` consecutive polls (one empty scrape can fall between a request's arrival
    and its admission), then send ``sig`` and wait up to ``exit_timeout_s`` for every
    process to exit (SIGKILL after that when ``kill_after``).

    ``pgid_or_pid``: with ``group=None`` a process-group id (the pid of a session leader such
    as a launched server's, or a group that still has members) is signalled as a group, any
    other pid alone; ``group=True/False`` forces it. This process's own group is refused.
    ``wait_pgid``: wait for this whole group to exit (e.g. signal only the main pid, as the
    kubelet does, but time the exit of the engine and worker processes too).

    After ``timeout_s`` without an empty queue it still signals (``signal_on_timeout``: the
    kubelet cuts the hook at the grace period and sends SIGTERM anyway) and reports
    ``reason="timeout"``. When ``/metrics`` stops answering (nothing listens) the server is
    going away by itself: ``reason="server gone"``, and the signal still goes out. A first
    scrape without the gauges raises :class:`MetricsMissing` before any signal: such a
    server cannot be drained this way.
    """
    group = resolve_group(pgid_or_pid, group)
    res = DrainResult(signal=_signal.Signals(sig).name, target=pgid_or_pid, group=group)
    t0 = time.monotonic()
    zeros = 0
    with StreamClient(root_url, api_key=api_key, timeout_s=scrape_timeout_s) as client:
        while True:
            t = time.monotonic() - t0
            try:
                running, waiting = parse_queue_depth(client.get_text("/metrics"))
            except MetricsMissing:
                if res.polls == 0:
                    raise
                res.scrape_errors += 1
                zeros = 0
            except EndpointUnreachable:
                res.reason = "server gone"
                break
            except EndpointError:
                res.scrape_errors += 1  # a transient 5xx or timeout: keep polling
                zeros = 0
            else:
                res.polls += 1
                res.trace.append((round(t, 4), running, waiting))
                if res.first_depth is None:
                    res.first_depth = (running, waiting)
                res.max_in_flight = max(res.max_in_flight, running + waiting)
                zeros = zeros + 1 if running == 0 and waiting == 0 else 0
                if zeros >= zero_polls:
                    res.drained = True
                    res.reason = "empty"
                    break
            if time.monotonic() - t0 >= timeout_s:
                res.reason = "timeout"
                break
            time.sleep(poll_s)
    res.drain_s = time.monotonic() - t0
    if res.reason == "timeout" and not signal_on_timeout:
        return res
    res.signalled = True
    res.exit_s, res.killed = signal_and_wait(pgid_or_pid, sig, group=group, wait_pgid=wait_pgid,
                                             exit_timeout_s=exit_timeout_s, kill_after=kill_after)
    return res
