"""The load probe: a workload sent at a rate (open loop) or a concurrency (closed loop), what it
measured, and the pure judgement of one capacity-search probe.

    run = measure_load(client, workload, model="m", rate_rps=8, requests=200, arrival="poisson", seed=1)
    run.attainment(slo), run.goodput_rps(slo), run.problem, run.drift(slo).drifting
    verdict, details = probe_verdict(run, slo, requirement, confidence=0.95)

Open loop (``rate_rps``): the arrival schedule (:func:`..engine.arrivals.schedule`, seeded by
``seed``) is sent by :meth:`~..engine.StreamClient.run_open_loop` or, with ``workers > 1``, by
:func:`~..engine.workers.run_open_loop_workers`; every latency runs from the request's *scheduled*
send time (a request the client sent late keeps its wait: no coordinated omission) and the
dispatch lag is recorded per request. Closed loop (``concurrency``): :meth:`~..engine.StreamClient.run`
keeps that many in flight; latencies run from the send.

Did the run measure the server? :attr:`LoadRun.problem` is one line, or None. It is set when

* the client could not keep the schedule (open loop: p99 dispatch lag above 1 ms, achieved below
  0.98 x offered, requests never sent — :func:`..engine.openloop.saturation`, with the run's
  CPU-contention evidence appended by the engine, :func:`..engine.openloop.with_contention`), or
* the measuring host was loaded (:func:`..engine.hostload.judge_client_timing` over the run's
  client run-queue wait, first-token stamps delayed, CPU used by other processes), as the warm
  probe judges it.

Either way the figures measured the client, not the server: :func:`probe_verdict` is then
inconclusive, and a capacity search never uses it as a bound.

Steadiness (:meth:`LoadRun.drift`, :func:`steadiness`): the run's scheduled time (open loop; the
send time in closed loop) is cut into ``windows`` equal windows, and the TTFTs of the completed
requests of the first window are compared with the last's. The run *drifts* when both

* the last window's median exceeds the first's by more than ``max(DRIFT_ABS_MS, DRIFT_REL x first
  median)`` (5 ms, 25 %): a queue that grows by a constant step per request (a server past its
  capacity) adds ``(n/windows) x step x (windows - 1)`` between them; and
* the last window's TTFTs are larger than the first's beyond chance: one-sided Mann-Whitney
  p < :data:`DRIFT_P` (0.01; normal approximation with tie correction). A steady server whose
  TTFTs spread widely (mixed prompt lengths, prefix-cache hits and misses) has window medians
  that differ by sampling noise alone — with 10 requests a window and a spread of half the
  median, by more than 25 % about one run in five — and is not drifting for that.

Fewer than :data:`DRIFT_MIN_SAMPLES` completed requests in either window (five each: the fewest
at which complete separation reaches p < 0.01), or a run scheduled all at once: steadiness cannot
be told (``drifting`` None; the verdict is left as the attainment decides — a run that short
rarely supports an attainment claim anyway). A drifting
run never passes (its latency was still growing: a longer run at the same rate would have
fared worse), but a failing run stays a fail (a growing queue is exactly a server that does not
hold the rate). Per-window attainment is reported beside the medians when an SLO is given.

Token counts: ``usage`` only (never guessed from chunks). A request whose ``usage.completion_tokens``
its stream contradicts (:func:`..engine.results.token_count_problem`) taints the run's token
totals: :attr:`LoadRun.count_problem` says so, :attr:`LoadRun.output_tok_s` is None, and its count
is left out of :attr:`LoadRun.output_tokens` and of the output-length check.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any, Sequence

from .. import stats

__all__ = ["LoadRun", "Drift", "measure_load", "from_engine", "probe_verdict", "steadiness", "DRIFT_REL",
           "DRIFT_ABS_MS", "DRIFT_P", "DRIFT_MIN_SAMPLES", "DRIFT_REASON", "mann_whitney_greater"]

#: a run drifts when the last window's median TTFT exceeds the first's by more than the larger of
#: these (a relative and an absolute allowance for window-to-window noise)
DRIFT_REL = 0.25
DRIFT_ABS_MS = 5.0
#: ... and the last window's TTFTs exceed the first's beyond chance (one-sided Mann-Whitney p below this)
DRIFT_P = 0.01
#: completed requests each of the first and last windows needs for the comparison
DRIFT_MIN_SAMPLES = 5
#: what a passing probe that drifted says
DRIFT_REASON = "latency grew from first to last window; a longer run may fail"
#: distinct error texts kept on a run
MAX_ERRORS = 5


# ----------------------------------------------------------------------------------- steadiness


@dataclass
class Drift:
    """First vs last time window of a run (see the module docstring for the rule)."""

    windows: int
    window_s: float | None  # width of one window (s of scheduled time)
    counts: list[int]  # requests per window (failed ones included)
    ttft_median_ms: list[float | None]  # median TTFT of the window's completed requests
    attainment: list[float | None] | None = None  # per window, when an SLO was given
    growth_ms: float | None = None  # last median - first median
    bound_ms: float | None = None  # the growth allowed
    p_value: float | None = None  # one-sided Mann-Whitney: last window's TTFTs larger than the first's
    drifting: bool | None = None  # None: cannot tell
    reason: str | None = None  # why it drifts, or why it cannot tell

    def to_dict(self) -> dict[str, Any]:
        return {"windows": self.windows, "window_s": self.window_s, "counts": list(self.counts),
                "ttft_median_ms": list(self.ttft_median_ms),
                "attainment": None if self.attainment is None else list(self.attainment),
                "growth_ms": self.growth_ms, "bound_ms": self.bound_ms, "p_value": self.p_value,
                "drifting": self.drifting,
                "reason": self.reason}


def mann_whitney_greater(xs: Sequence[float], ys: Sequence[float]) -> float:
    """One-sided p-value that ``ys`` tend to be larger than ``xs`` (Mann-Whitney U, normal
    approximation with continuity and tie correction; 1.0 when every value is tied). Pure."""
    n1, n2 = len(xs), len(ys)
    if not n1 or not n2:
        raise ValueError("mann_whitney_greater needs samples on both sides")
    pooled = sorted([(float(v), 0) for v in xs] + [(float(v), 1) for v in ys])
    ranks = [0.0] * len(pooled)
    ties = 0.0
    i = 0
    while i < len(pooled):
        j = i
        while j + 1 < len(pooled) and pooled[j + 1][0] == pooled[i][0]:
            j += 1
        for k in range(i, j + 1):
            ranks[k] = (i + j) / 2 + 1
        t = j - i + 1
        ties += t ** 3 - t
        i = j + 1
    r2 = sum(r for r, (_, side) in zip(ranks, pooled) if side == 1)
    u = r2 - n2 * (n2 + 1) / 2  # pairs (x, y) with y > x (ties count half)
    n = n1 + n2
    var = n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1)))
    if var <= 0:
        return 1.0
    z = (u - n1 * n2 / 2 - 0.5) / math.sqrt(var)
    return 0.5 * math.erfc(z / math.sqrt(2))


def _check_windows(windows: Any) -> int:
    if isinstance(windows, bool) or not isinstance(windows, int) or windows < 2:
        raise ValueError(f"windows must be an integer >= 2 (first and last are compared), not {windows!r}")
    return windows


def steadiness(offsets_s: Sequence[float | None], ttft_ms: Sequence[float | None],
               met: Sequence[bool] | None = None, *, windows: int = 4) -> Drift:
    """The drift of a run given per request its scheduled offset (s; None: never sent, left
    out), its TTFT (None: not completed) and, optionally, whether it met the SLO. Pure."""
    windows = _check_windows(windows)
    if len(offsets_s) != len(ttft_ms) or (met is not None and len(met) != len(offsets_s)):
        raise ValueError("steadiness needs one offset, one TTFT (and one met flag) per request")
    idx = [i for i, x in enumerate(offsets_s) if x is not None]
    empty = Drift(windows, None, [0] * windows, [None] * windows,
                  None if met is None else [None] * windows)
    if not idx:
        empty.reason = "no request was sent: no time windows"
        return empty
    lo = min(offsets_s[i] for i in idx)  # type: ignore[type-var]
    hi = max(offsets_s[i] for i in idx)  # type: ignore[type-var]
    span = hi - lo  # type: ignore[operator]
    if not span > 0:
        empty.counts = [len(idx)] + [0] * (windows - 1)
        empty.reason = "every request was scheduled at the same moment: no time windows to compare"
        return empty
    width = span / windows
    members: list[list[int]] = [[] for _ in range(windows)]
    for i in idx:
        w = min(windows - 1, int((offsets_s[i] - lo) / width))  # type: ignore[operator]
        members[w].append(i)
    medians: list[float | None] = []
    for m in members:
        xs = [ttft_ms[i] for i in m if ttft_ms[i] is not None]
        medians.append(statistics.median(xs) if xs else None)  # type: ignore[type-var]
    att = None
    if met is not None:
        att = [sum(1 for i in m if met[i]) / len(m) if m else None for m in members]
    d = Drift(windows, width, [len(m) for m in members], medians, att)
    first = [ttft_ms[i] for i in members[0] if ttft_ms[i] is not None]
    last = [ttft_ms[i] for i in members[-1] if ttft_ms[i] is not None]
    if len(first) < DRIFT_MIN_SAMPLES or len(last) < DRIFT_MIN_SAMPLES:
        d.reason = (f"too few completed requests to compare the first and last of {windows} windows "
                    f"({len(first)} and {len(last)}; {DRIFT_MIN_SAMPLES} each needed)")
        return d
    a, b = medians[0], medians[-1]
    d.growth_ms = b - a  # type: ignore[operator]
    d.bound_ms = max(DRIFT_ABS_MS, DRIFT_REL * a)  # type: ignore[operator]
    d.p_value = mann_whitney_greater(first, last)  # type: ignore[arg-type]
    d.drifting = d.growth_ms > d.bound_ms and d.p_value < DRIFT_P
    if d.drifting:
        d.reason = (f"median TTFT grew from {a:.1f} ms in the first to {b:.1f} ms in the last of {windows} "
                    f"windows (+{d.growth_ms:.1f} ms > {d.bound_ms:.1f} ms allowed; p = {d.p_value:.2g}): "
                    "latency was still growing")
    return d


# ------------------------------------------------------------------------------------ the run


@dataclass
class LoadRun:
    """What one load run measured. ``results`` are the engine's per-request results in submission
    order (open loop: :class:`~..engine.openloop.OpenLoopRequestResult`, latencies from the
    scheduled time); the lists are over completed (ok) requests."""

    mode: str  # "open" | "closed"
    rate_rps: float | None
    arrival: str | None
    concurrency: int | None
    workers: int
    requests: int
    seed: int | None
    workload: dict[str, Any]
    results: list[Any]
    wall_s: float
    offered_rps: float | None = None
    achieved_rps: float | None = None
    dispatch_lag_ms: list[float] = field(default_factory=list)
    dispatch_lag_p99_ms: float | None = None
    client_saturated: str | None = None
    host_load: dict[str, Any] = field(default_factory=dict)
    timing_problem: str | None = None
    problem: str | None = None
    server: dict[str, Any] = field(default_factory=dict)
    ttft_ms: list[float] = field(default_factory=list)
    tpot_ms: list[float] = field(default_factory=list)
    e2e_ms: list[float] = field(default_factory=list)
    output_tokens: list[int] = field(default_factory=list)
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    count_mismatches: int = 0
    count_examples: list[str] = field(default_factory=list)
    #: per request: scheduled offset from the run's start (s; closed loop: the send's offset from
    #: the first send; None: never sent), asked content tokens (None: unknown) and max_tokens
    offsets_s: list[float | None] = field(default_factory=list)
    asked_input_tokens: list[int | None] = field(default_factory=list)
    asked_output_tokens: list[int | None] = field(default_factory=list)
    cycled: str | None = None  # how the workload was repeated to fill the schedule, or None
    windows: int = 4
    warmup: int = 0
    ignore_eos: bool = True
    #: the chat template's per-request prompt tokens (workloads.prompt_overhead); the suite may set it
    prompt_overhead: int = 0
    client_cpu_s: float | None = None
    connections: int | None = None  # connections the client used (open loop: opened as needed)
    max_lag_ms: float | None = None
    #: a shard of a schedule (``shard=``): each request's index in the whole schedule, and what the
    #: shard was (index, count, schedule_sha256, start_at, first_send_lag_s, ...); None unsharded
    schedule_index: list[int] | None = None
    shard: dict[str, Any] | None = None

    # ---- derived figures
    @property
    def completed(self) -> int:
        return len(self.results) - self.failed

    @property
    def span_s(self) -> float:
        """The run's span: first scheduled send (closed loop: first send) -> last response end."""
        return self.wall_s

    @property
    def count_problem(self) -> str | None:
        """Why the run's token counts cannot be used (tokens/s, TPOT), or None."""
        if not self.count_mismatches:
            return None
        return (f"the server's usage.completion_tokens disagrees with the stream in {self.count_mismatches} of "
                f"{self.completed} completed requests (e.g. {self.count_examples[0]}); a count the stream "
                "contradicts is not used")

    @property
    def output_tok_s(self) -> float | None:
        """Output tokens (server-counted) per second of the run's span; None when a completed
        request lacked usage or reported a count its stream contradicts."""
        ok = [r for r in self.results if r.ok]
        if not ok or self.span_s <= 0 or any(r.output_tokens is None or r.token_count_problem for r in ok):
            return None
        return sum(r.output_tokens for r in ok) / self.span_s

    def met(self, slo: Any) -> list[bool]:
        """Per request (submission order): did it meet every bound of ``slo``? Errors and
        timeouts are misses (:func:`..slo.met_samples`)."""
        from .. import slo as slo_mod

        return [x == 1.0 for x in slo_mod.met_samples(self.results, slo)]

    def attainment(self, slo: Any) -> float | None:
        m = self.met(slo)
        return sum(m) / len(m) if m else None

    def goodput_rps(self, slo: Any) -> float | None:
        """Requests that met ``slo`` per second of the run's span (None for a zero span)."""
        if not self.span_s > 0:
            return None
        return sum(self.met(slo)) / self.span_s

    def drift(self, slo: Any = None) -> Drift:
        """First vs last of :attr:`windows` time windows (per-window attainment with ``slo``)."""
        ttft = [r.ttft_ms if r.ok else None for r in self.results]
        return steadiness(self.offsets_s, ttft, None if slo is None else self.met(slo), windows=self.windows)

    def prompt_length_check(self, overhead: int | None = None):
        """Asked content tokens vs the server's ``usage.prompt_tokens`` over the completed requests
        (:func:`..workloads.check_prompt_lengths`; ``overhead`` default :attr:`prompt_overhead`)."""
        from ..workloads import check_prompt_lengths

        ok = [i for i, r in enumerate(self.results) if r.ok]
        return check_prompt_lengths([self.asked_input_tokens[i] for i in ok],
                                    [self.results[i].prompt_tokens for i in ok],
                                    overhead=self.prompt_overhead if overhead is None else overhead)

    def output_length_check(self):
        """Realised output tokens vs ``max_tokens`` asked over the completed requests
        (:func:`..workloads.check_output_lengths`): with ``ignore_eos`` a server returns exactly
        what was asked. A count the stream contradicts is unknown (not ok). Without ``ignore_eos``
        a shorter answer is legitimate: unknown ``(None, None)``."""
        from ..workloads import LengthCheck, check_output_lengths

        if not self.ignore_eos:
            return LengthCheck(None, None)
        ok = [i for i, r in enumerate(self.results) if r.ok]
        got = [None if self.results[i].token_count_problem else self.results[i].output_tokens for i in ok]
        return check_output_lengths([self.asked_output_tokens[i] for i in ok], got)

    def records(self, slo: Any = None) -> list[dict[str, Any]]:
        """One JSON-able dict per request, in submission order (for the report's JSONL); ``met``
        is None without ``slo``."""
        met = self.met(slo) if slo is not None else [None] * len(self.results)
        out = []
        for i, r in enumerate(self.results):
            out.append({
                "index": i if self.schedule_index is None else self.schedule_index[i],
                "worker": getattr(r, "worker", 0),
                "scheduled_s": None if self.offsets_s[i] is None else round(self.offsets_s[i], 9),
                "dispatch_lag_ms": getattr(r, "dispatch_lag_ms", None),
                "ttft_ms": r.ttft_ms,
                "tpot_ms": r.tpot_ms,
                "e2e_ms": r.e2e_ms,
                "prompt_tokens": r.prompt_tokens,
                "output_tokens": r.output_tokens,
                "asked_input_tokens": self.asked_input_tokens[i],
                "asked_output_tokens": self.asked_output_tokens[i],
                "ok": r.ok,
                "timed_out": r.timed_out,
                "error": r.error,
                "met": met[i],
            })
        return out

    def details(self, slo: Any = None) -> dict[str, Any]:
        """Small and JSON-able (no per-request lists): counts, rates, lag, host load, problem,
        drift, the workload's description (kind, seed, content hash), the server's dict."""
        pl, ol = self.prompt_length_check(), self.output_length_check()
        d: dict[str, Any] = {
            "mode": self.mode, "rate_rps": self.rate_rps, "arrival": self.arrival,
            "concurrency": self.concurrency, "workers": self.workers, "requests": self.requests,
            "completed": self.completed, "failed": self.failed, "errors": list(self.errors), "seed": self.seed,
            "warmup": self.warmup, "wall_s": self.wall_s, "offered_rps": self.offered_rps,
            "achieved_rps": self.achieved_rps, "dispatch_lag_p99_ms": self.dispatch_lag_p99_ms,
            "dispatch_lag_max_ms": max(self.dispatch_lag_ms) if self.dispatch_lag_ms else None,
            "max_lag_ms": self.max_lag_ms, "client_saturated": self.client_saturated,
            "timing_problem": self.timing_problem, "problem": self.problem, "host_load": self.host_load,
            "client_cpu_s": self.client_cpu_s, "connections": self.connections, "count_problem": self.count_problem,
            "output_tok_s": self.output_tok_s,
            "prompt_lengths": {"ok_fraction": pl.ok_fraction, "worst": pl.worst, "overhead": self.prompt_overhead},
            "output_lengths": {"ok_fraction": ol.ok_fraction, "worst": ol.worst},
            "workload": dict(self.workload), "cycled": self.cycled, "server": dict(self.server),
            "drift": self.drift(slo).to_dict(),
            "ttft_stats": stats.summarize(self.ttft_ms), "tpot_stats": stats.summarize(self.tpot_ms),
            "e2e_stats": stats.summarize(self.e2e_ms),
        }
        if slo is not None:
            d.update(slo=str(slo), attainment=self.attainment(slo), goodput_rps=self.goodput_rps(slo))
        return d


# -------------------------------------------------------------------------------- measuring


def _positive(name: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be a number > 0, not {v!r}")
    return float(v)


def _count(name: str, v: Any, least: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < least:
        raise ValueError(f"{name} must be an integer >= {least}, not {v!r}")
    return v


def _warmup_specs(specs: Sequence[Any], n: int) -> list[Any]:
    """``n`` unmeasured requests with prompts of their own (a warm-up must not put the measured
    prompts into a prefix cache), as long as the workload's first request asks."""
    from ..engine import RequestSpec
    from .warm import prompts

    first = specs[0]
    return [RequestSpec(model=first.model, prompt=p, max_tokens=first.max_tokens, api=first.api,
                        ignore_eos=first.ignore_eos) for p in prompts(n, base="Warm up.")]


def measure_load(client, workload, *, model: str, api: str = "chat", rate_rps: float | None = None,
                 concurrency: int | None = None, arrival: str = "poisson", seed: int = 0,
                 requests: int | None = None, duration_s: float | None = None, workers: int = 1,
                 base_url: str | None = None, api_key: str | None = None, max_tokens: int | None = None,
                 deadline_s: float | None = None, warmup: int = 0, progress=None,
                 watch=None, windows: int = 4, max_connections: int | None = None,
                 max_lag_ms: float | None = None, exact_rate: bool = True,
                 shard: tuple[int, int] | None = None, start_at: float | None = None,
                 clock=None, before_start=None) -> LoadRun:
    """Send ``workload`` at ``rate_rps`` (open loop, ``arrival`` schedule seeded by ``seed``) or
    with ``concurrency`` in flight (closed loop); the run's length is ``requests`` or (open loop)
    ``duration_s``. Requests are the workload's, in order, cycled when the schedule is longer
    (:attr:`LoadRun.cycled` says so). ``warmup`` unmeasured requests (prompts of their own) go
    first, in closed loop, from ``client``.

    ``workers > 1`` (open loop): the schedule is split over that many processes
    (:func:`..engine.workers.run_open_loop_workers`) at ``base_url`` (default the client's) with
    ``api_key`` (the client's key is not read: pass it). ``max_connections`` caps the open
    loop's connection pool (per worker); ``max_lag_ms`` is the p99 dispatch lag above which the
    client did not keep the schedule (default :data:`..engine.openloop.MAX_LAG_MS`, 1 ms; a
    closed loop keeps no schedule and ignores it). ``watch``: an object with ``start()`` and
    ``stop() -> dict`` (a ``/metrics`` sampler), started right before the measured run and
    stopped right after (also when it raises); its dict is :attr:`LoadRun.server`.
    ``max_tokens``: for workload requests that name none. ``exact_rate`` (a run of ``requests``):
    the schedule offers exactly ``rate_rps`` (:func:`..engine.arrivals.schedule`), so a run
    labelled 64 req/s asked for 64. Bad arguments: one ValueError line.

    ``shard=(index, count)`` with ``start_at`` (epoch seconds by ``clock``, default
    :func:`pytest_inference.load.wall_clock`): the whole schedule is built as above, then only its
    arrivals whose index % count == index are sent, each at its *original* offset from ``start_at``
    (the warm-up goes first; the run waits for the start): ``count`` such runs offer the one
    schedule together. ``before_start()`` (a shard) is called after the warm-up, before the wait
    (the suite measures the shard's clock offset there). :attr:`LoadRun.shard` says what it was (``schedule_sha256`` over what defines
    the schedule, ``first_send_lag_s``); records carry the whole schedule's indices.
    A request that times out (``deadline_s``, the client's idle timeout) is a miss of the run: the
    client's early stop after timeouts in a row is off during the measured run (on for the
    warm-up, which finds a dead endpoint). Endpoint errors that stop the run (unreachable, auth, not
    OpenAI) propagate. ``progress`` (``(done, total)``) is not called by worker processes.
    """
    from ..engine import arrivals

    if (rate_rps is None) == (concurrency is None):
        raise ValueError("give exactly one of rate_rps (open loop) or concurrency (closed loop)")
    if (requests is None) == (duration_s is None):
        raise ValueError("give the run's length as exactly one of requests or duration_s")
    if requests is not None:
        _count("requests", requests, 1)
    if duration_s is not None:
        _positive("duration_s", duration_s)
    _count("workers", workers, 1)
    _count("warmup", warmup, 0)
    windows = _check_windows(windows)
    if deadline_s is not None:
        _positive("deadline_s", deadline_s)
    if max_connections is not None:
        _count("max_connections", max_connections, 1)
    if max_lag_ms is not None:
        _positive("max_lag_ms", max_lag_ms)
    if not hasattr(workload, "specs") or not hasattr(workload, "describe"):
        raise ValueError(f"workload must be a pytest_inference.workloads.Workload, not {type(workload).__name__}")
    if rate_rps is not None:
        rate = _positive("rate_rps", rate_rps)
        shape, cv = arrivals.parse_arrival(arrival)
        offsets = arrivals.schedule(shape, rate, n=requests, duration_s=duration_s, seed=seed, cv=cv,
                                    exact_rate=exact_rate)
        n = len(offsets)
        mode = "open"
    else:
        _count("concurrency", concurrency, 1)
        if duration_s is not None:
            raise ValueError("a closed loop (concurrency) runs a request count: give requests=, not duration_s")
        if workers > 1:
            raise ValueError("workers > 1 splits an open-loop schedule; a closed loop (concurrency) runs in one "
                             "process")
        if max_connections is not None:
            raise ValueError("max_connections caps an open loop's pool; a closed loop (concurrency) opens "
                             "concurrency connections")
        offsets = []
        n = requests  # type: ignore[assignment]
        mode = "closed"
    keep: list[int] | None = None
    if shard is not None or start_at is not None:
        from ..load import shard_problem_args

        why = shard_problem_args(shard, start_at, mode=mode, workers=workers, n=n)
        if why:
            raise ValueError(why)
        keep = list(range(shard[0], n, shard[1]))  # type: ignore[index]
    if workers > 1:
        base_url = base_url or getattr(client, "base_url", None)
        if not base_url:
            raise ValueError("workers > 1 needs base_url (the endpoint each worker process connects to)")

    base = workload.specs(model, api, max_tokens=max_tokens)
    specs = [base[i % len(base)] for i in range(n)]
    cycled = (f"the workload's {len(base)} requests were cycled to fill {n} sends (repeated prompts: "
              "a prefix cache may serve repeats faster)") if n > len(base) else None
    asked_in = [workload.requests[i % len(base)].input_tokens for i in range(n)]
    start_ns = shard_info = None
    if keep is not None:
        from ..engine.arrivals import schedule_sha256

        described = workload.describe()
        shard_info = {"index": shard[0], "count": shard[1], "start_at": start_at,  # type: ignore[index]
                      "schedule_requests": n, "requests": len(keep),
                      "schedule_sha256": schedule_sha256(
                          {"arrival": arrival, "rate_rps": rate_rps, "seed": seed, "requests": requests,
                           "duration_s": duration_s, "exact_rate": exact_rate, "api": api, "model": model,
                           "max_tokens": max_tokens, "workload": described.get("content_hash") or described},
                          offsets, [s.max_tokens for s in specs])}
        specs = [specs[j] for j in keep]
        offsets = [offsets[j] for j in keep]
        asked_in = [asked_in[j] for j in keep]

    if warmup:
        client.run(_warmup_specs(specs, warmup), concurrency=min(warmup, concurrency or 8), warmup=0,
                   deadline_s=deadline_s)

    # under load a timed-out request is a measured miss, not a dead endpoint: the client's early stop
    # (after a few timeouts in a row) stays on for the warm-up above, off for the measured run
    stop_early = getattr(client, "stop_early", None)
    if stop_early is not None:
        client.stop_early = False
    if keep is not None:
        if before_start is not None:
            before_start()
        start_ns = _wait_for(start_at, clock)  # type: ignore[arg-type]
    if watch is not None:
        watch.start()
    server: dict[str, Any] = {}
    try:
        if mode == "closed":
            eng = client.run(specs, concurrency=concurrency, warmup=0, progress=progress, deadline_s=deadline_s)
        elif workers == 1:
            eng = client.run_open_loop(specs, offsets, deadline_s=deadline_s, warmup=0, start_ns=start_ns,
                                       max_connections=max_connections, max_lag_ms=max_lag_ms, progress=progress)
        else:
            from ..engine.workers import run_open_loop_workers

            eng = run_open_loop_workers(base_url, specs, offsets,  # type: ignore[arg-type]
                                        workers=workers, api_key=api_key,
                                        timeout_s=getattr(client, "timeout_s", 60.0),
                                        verify=getattr(client, "_verify", True), deadline_s=deadline_s,
                                        warmup=0, max_connections=max_connections, max_lag_ms=max_lag_ms,
                                        stop_early=False)
    finally:
        if stop_early is not None:
            client.stop_early = stop_early
        if watch is not None:
            got = watch.stop()
            server = dict(got) if isinstance(got, dict) else {}
    run = from_engine(eng, mode=mode, rate_rps=rate_rps, arrival=arrival if mode == "open" else None,
                      concurrency=concurrency, seed=seed if mode == "open" else None,
                      workload=workload.describe(), specs=specs, asked_input_tokens=asked_in, cycled=cycled,
                      windows=windows, warmup=warmup, ignore_eos=bool(getattr(workload, "ignore_eos", True)),
                      server=server)
    if keep is not None:
        run.schedule_index = keep
        first = run.results[0] if run.results else None  # the shard's earliest arrival
        shard_info["first_send_lag_s"] = (  # type: ignore[index]
            (first.send_ns - first.scheduled_ns) / 1e9 if first is not None and first.send_ns else None)
        run.shard = shard_info
    return run


#: a shard sleeps until this long before the common start, then opens its connections and waits the rest
START_LEAD_S = 2.0


def _wait_for(start_at: float, clock=None) -> int:
    """Sleep until :data:`START_LEAD_S` before ``start_at`` (epoch seconds by ``clock``, default the
    shard's :func:`pytest_inference.load.wall_clock`); the start as a ``perf_counter_ns`` time (the
    open loop's clock), read off the wall clock right now."""
    import time

    from ..load import wall_clock

    clock = clock or wall_clock
    left = start_at - clock()
    if left > START_LEAD_S:
        time.sleep(left - START_LEAD_S)
    return time.perf_counter_ns() + round((start_at - clock()) * 1e9)


def from_engine(eng: Any, *, mode: str, rate_rps: float | None, arrival: str | None, concurrency: int | None,
                seed: int | None, workload: dict[str, Any], specs: Sequence[Any],
                asked_input_tokens: Sequence[int | None], cycled: str | None = None, windows: int = 4,
                warmup: int = 0, ignore_eos: bool = True, server: dict[str, Any] | None = None) -> LoadRun:
    """A :class:`LoadRun` from an engine result (``RunResult`` / ``OpenLoopResult``): the figures,
    the host-load judgement and the problem line. Pure (no I/O)."""
    from ..engine.hostload import evidence, judge_client_timing

    results = list(eng.results)
    n = len(results)
    ok = [r for r in results if r.ok]
    if mode == "open":
        start = eng.start_ns
        offsets: list[float | None] = [(r.scheduled_ns - start) / 1e9 for r in results]
    else:
        sent = [r.send_ns for r in results if r.send_ns]
        first = min(sent) if sent else 0
        offsets = [(r.send_ns - first) / 1e9 if r.send_ns else None for r in results]
    host = evidence(getattr(eng, "client_runq_ms", None), n, getattr(eng, "cpu_pressure", None),
                    [r.ttft_stall_ms for r in ok])
    timing = judge_client_timing(host)
    saturated = getattr(eng, "client_saturated", None)  # the engine appended the contention evidence
    problem = "; ".join(p for p in (saturated, timing) if p) or None
    run = LoadRun(
        mode=mode, rate_rps=rate_rps, arrival=arrival, concurrency=concurrency if mode == "closed" else None,
        connections=getattr(eng, "concurrency", None),
        workers=getattr(eng, "workers", 1), requests=n, seed=seed, workload=dict(workload), results=results,
        wall_s=eng.wall_s, offered_rps=getattr(eng, "offered_rps", None),
        achieved_rps=getattr(eng, "achieved_rps", None) if mode == "open" else (n / eng.wall_s if eng.wall_s else None),
        dispatch_lag_ms=[r.dispatch_lag_ms for r in results if getattr(r, "dispatch_lag_ms", None) is not None],
        dispatch_lag_p99_ms=getattr(eng, "dispatch_lag_p99_ms", None), client_saturated=saturated,
        host_load=host, timing_problem=timing, problem=problem, server=dict(server or {}),
        ttft_ms=[r.ttft_ms for r in ok if r.ttft_ms is not None],
        tpot_ms=[r.tpot_ms for r in ok if r.tpot_ms is not None],
        e2e_ms=[r.e2e_ms for r in ok if r.e2e_ms is not None],
        failed=n - len(ok), errors=sorted({r.error for r in results if not r.ok and r.error})[:MAX_ERRORS],
        offsets_s=offsets, asked_input_tokens=list(asked_input_tokens),
        asked_output_tokens=[s.max_tokens for s in specs], cycled=cycled, windows=windows, warmup=warmup,
        ignore_eos=ignore_eos, client_cpu_s=getattr(eng, "client_cpu_s", None),
        max_lag_ms=getattr(eng, "max_lag_ms", None) if mode == "open" else None,
    )
    for r in ok:
        if r.token_count_problem:
            run.count_mismatches += 1
            if len(run.count_examples) < 3:
                run.count_examples.append(r.token_count_problem)
        elif r.output_tokens is not None:
            run.output_tokens.append(r.output_tokens)
    return run


# -------------------------------------------------------------------------------- judging


def probe_verdict(run: LoadRun, slo: Any, requirement: Any, *, confidence: float,
                  target: str | None = None) -> tuple[str, dict[str, Any]]:
    """The judgement of one capacity-search probe (pure; records no claim): the SLO attainment of
    ``run`` against ``requirement`` (``claims.judge("load.slo_attainment", ..., stat="attainment")``,
    a one-sided binomial bound at ``confidence``), then

    * ``run.problem`` (the client, not the server, was measured): inconclusive, pass or fail;
    * a pass of a drifting run: inconclusive (:data:`DRIFT_REASON`); a fail stays a fail.

    Returns ``(verdict, details)`` as :func:`..capacity.search` takes it; ``details`` holds the
    rate, attainment, n, achieved rate, p99 lag, problem, drift and the reason."""
    from .. import claims

    if requirement is None:
        raise ValueError("probe_verdict needs the attainment requirement (e.g. >= 0.9)")
    claim = claims.judge("load.slo_attainment", run.met(slo), stat="attainment", requirement=requirement,
                         confidence=confidence, target=target)
    drift = run.drift(slo)
    verdict, reason = claim.verdict, claim.reason
    details: dict[str, Any] = {
        "rate": run.rate_rps, "concurrency": run.concurrency if run.mode == "closed" else None,
        "attainment": claim.measured, "n": len(run.results), "met": claim.details.get("met"),
        "lower_bound": claim.details.get("lower_bound"), "upper_bound": claim.details.get("upper_bound"),
        "achieved_rps": run.achieved_rps, "offered_rps": run.offered_rps,
        "dispatch_lag_p99_ms": run.dispatch_lag_p99_ms, "problem": run.problem, "drift": drift.to_dict(),
        "failed": run.failed, "workers": run.workers,
    }
    if run.problem and verdict in (claims.PASS, claims.FAIL):
        details["verdict_if_judged"] = verdict
        verdict, reason = claims.INCONCLUSIVE, f"the client was measured, not the server: {run.problem}"
    elif verdict == claims.PASS and drift.drifting:
        details["verdict_if_judged"] = verdict
        verdict, reason = claims.INCONCLUSIVE, f"{DRIFT_REASON} ({drift.reason})"
    details["verdict"] = verdict
    details["reason"] = reason
    return verdict, details
