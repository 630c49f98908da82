"""Open-loop load: what a scheduled run measured, and whether the client kept the schedule.

In open loop each request has a *scheduled* send time (a common start plus its offset from
:mod:`.arrivals`); the client sends it then, whatever the server is doing. Latencies (``ttft_ms``,
``e2e_ms``, ``token_times_ms``) are measured from the scheduled time, not from the moment the bytes
left: a request the client sent late (no free connection, a CPU-starved client) keeps its wait in
its latency, so coordinated omission cannot hide a slow server. Per request:

* ``scheduled_ns``: the scheduled send time (``time.perf_counter_ns``, CLOCK_MONOTONIC: one clock
  for every process of the machine, so worker processes share it);
* ``dispatch_lag_ms``: scheduled time -> the request's bytes handed to the socket (``send_ns``);
  ``queue_ms`` holds the same figure. ``ttft_ms - dispatch_lag_ms`` is the TTFT from the send.

Run level (:class:`OpenLoopResult`): ``offered_rps`` (what the schedule asks: ``(n-1) / span``),
``achieved_rps`` (``(sent-1) / (last send - first scheduled time)``), ``dispatch_lag_p99_ms``, and
``client_saturated``: None, or one line saying why the client could not keep the schedule —
p99 dispatch lag above ``max_lag_ms`` (default :data:`MAX_LAG_MS`, 1 ms: the lag is part of every
latency of the run, and above a millisecond it is no longer small beside the TTFT error the engine
otherwise has, ~0.1 ms), achieved below :data:`MIN_ACHIEVED_SHARE` (0.98) x offered, or requests
never sent. A saturated run measured the client: its latency claims are inconclusive and it never
bounds a server's capacity.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from .results import RequestResult, RunResult

__all__ = ["OpenLoopRequestResult", "OpenLoopResult", "MAX_LAG_MS", "MIN_ACHIEVED_SHARE", "saturation",
           "p99", "summarize", "with_contention"]

MAX_LAG_MS = 1.0
MIN_ACHIEVED_SHARE = 0.98


@dataclass
class OpenLoopRequestResult(RequestResult):
    scheduled_ns: int = 0  # absolute perf_counter_ns() of the scheduled send
    dispatch_lag_ms: float | None = None  # scheduled -> bytes written; None: never sent
    worker: int = 0  # the worker process that sent it (0 for a single-process run)


@dataclass
class OpenLoopResult(RunResult):
    offered_rps: float | None = None
    achieved_rps: float | None = None
    dispatch_lag_p99_ms: float | None = None
    dispatch_lag_max_ms: float | None = None
    max_lag_ms: float = MAX_LAG_MS
    client_saturated: str | None = None
    workers: int = 1
    start_ns: int = 0  # the common start (scheduled time of offset 0)

    def dispatch_lag_ms(self) -> list[float]:
        return [r.dispatch_lag_ms for r in self.results  # type: ignore[attr-defined]
                if getattr(r, "dispatch_lag_ms", None) is not None]

    def summary(self) -> dict:
        out = super().summary()
        out.update(offered_rps=self.offered_rps, achieved_rps=self.achieved_rps,
                   dispatch_lag_p99_ms=self.dispatch_lag_p99_ms, client_saturated=self.client_saturated,
                   workers=self.workers)
        return out


def p99(xs: Sequence[float]) -> float | None:
    """The 99th percentile, nearest rank (the value at or above 99% of the samples); None if empty."""
    if not xs:
        return None
    s = sorted(xs)
    return s[max(0, math.ceil(0.99 * len(s)) - 1)]


def saturation(offered: float | None, achieved: float | None, lag_p99_ms: float | None, *, n: int, sent: int,
               max_lag_ms: float = MAX_LAG_MS, min_share: float = MIN_ACHIEVED_SHARE) -> str | None:
    """One line saying why the client did not keep its schedule, or None (pure)."""
    why = []
    if sent < n:
        why.append(f"{n - sent} of {n} requests were never sent")
    if lag_p99_ms is not None and lag_p99_ms > max_lag_ms:
        why.append(f"p99 dispatch lag {lag_p99_ms:.3f} ms > {max_lag_ms:g} ms")
    if offered and achieved is not None and achieved < min_share * offered:
        why.append(f"achieved {achieved:.3f} req/s < {min_share:g} x offered {offered:.3f} req/s")
    if not why:
        return None
    return "the client could not keep the schedule: " + "; ".join(why)


def summarize(results: Sequence[OpenLoopRequestResult], *, max_lag_ms: float = MAX_LAG_MS) -> dict:
    """Run-level figures of scheduled results (any order, any number of workers): offered_rps,
    achieved_rps, dispatch_lag_p99_ms, dispatch_lag_max_ms, client_saturated."""
    sched = sorted(r.scheduled_ns for r in results)
    sends = sorted(r.send_ns for r in results if r.dispatch_lag_ms is not None)
    lags = [r.dispatch_lag_ms for r in results if r.dispatch_lag_ms is not None]
    offered = achieved = None
    if len(sched) >= 2 and sched[-1] > sched[0]:
        offered = (len(sched) - 1) / ((sched[-1] - sched[0]) / 1e9)
        if len(sends) >= 2 and sends[-1] > sched[0]:
            achieved = (len(sends) - 1) / ((sends[-1] - sched[0]) / 1e9)
        elif sends:
            achieved = 0.0
    lag99 = p99(lags)
    return {
        "offered_rps": offered,
        "achieved_rps": achieved,
        "dispatch_lag_p99_ms": lag99,
        "dispatch_lag_max_ms": max(lags) if lags else None,
        "client_saturated": saturation(offered, achieved, lag99, n=len(results), sent=len(sends),
                                       max_lag_ms=max_lag_ms),
    }


def with_contention(reason: str | None, client_runq_ms: float | None, cpu_pressure: dict | None) -> str | None:
    """``reason`` with the run's CPU-contention evidence appended (the measuring threads' run-queue
    wait, other processes' CPU use), so a reader can tell a starved client from a slow loop."""
    if reason is None:
        return None
    extra = []
    if client_runq_ms is not None and client_runq_ms >= 1.0:
        extra.append(f"the client waited {client_runq_ms:.1f} ms for a CPU")
    foreign = (cpu_pressure or {}).get("foreign_cores")
    if isinstance(foreign, (int, float)) and foreign >= 0.05:
        extra.append(f"other processes used {foreign:.2f} cores")
    return reason + (" (" + ", ".join(extra) + ")" if extra else "")
