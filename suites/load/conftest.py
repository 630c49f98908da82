"""The load runs this suite judges, measured once per session: one per planned point (an open-loop
rate of ``--load-rate``, a closed-loop ``--load-concurrency``) and the capacity search.

Every run sends the ``--workload`` requests (server-counted lengths, ``ignore_eos``), scheduled by
the ``--arrival`` shape (seeded), while a sampler reads the server's ``/metrics`` (KV-cache use,
preemptions). Each run's per-request records go to ``<report>/records/load-<point>.jsonl``. The
capacity search publishes ``capacity.max_rps_at_slo`` to the session (the economics suite reads it).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

import pytest

from pytest_inference import load as load_plan
from pytest_inference.session import SESSION_KEY


def pytest_configure(config: pytest.Config) -> None:
    """A shard's options together (``--load-shard`` needs ``--load-start-at``, one open-loop rate, a
    start not long past by this shard's clock): one usage line at start-up."""
    state = config.stash.get(SESSION_KEY, None)
    shard, start_at = config.getoption("load_shard", None), config.getoption("load_start_at", None)
    if state is None or (shard is None and start_at is None):
        return
    try:
        why = load_plan.shard_problem(load_plan.plan(state.settings), shard, start_at)
        if why is None:
            why = load_plan.start_problem(start_at, load_plan.wall_clock())
    except ValueError as exc:  # a planted clock skew that is not a number
        why = str(exc)
    if why:
        raise pytest.UsageError(why)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """One test per planned load point (``4rps``, ``c8``)."""
    if "load_point" not in metafunc.fixturenames:
        return
    state = metafunc.config.stash.get(SESSION_KEY, None)
    points = load_plan.plan(state.settings).points if state else []
    metafunc.parametrize("load_point", points, ids=[p.id for p in points])


@contextlib.contextmanager
def _one_load_at_a_time(config: pytest.Config, base_url: str):
    """One load run at a time per endpoint on this machine (xdist workers, parallel sessions): two
    loads at once would each measure the other's. Waiting says so."""
    from pytest_inference.server.lock import DeviceLock

    lock = DeviceLock("load-" + base_url)
    tr = config.pluginmanager.get_plugin("terminalreporter")

    def said(text: str, waited_s: float) -> None:
        if tr is not None:
            tr.write_line(f"[load] waiting {waited_s:.0f} s for another load run on {base_url} ({text})")

    lock.acquire(progress=said)
    try:
        yield
    finally:
        lock.release()


def _watch(endpoint, client) -> Any:
    """A /metrics sampler on a connection of its own (the client's connections carry the load)."""
    from pytest_inference.probes.server_capacity import MetricsWatch, metrics_getter

    return MetricsWatch(metrics_getter(endpoint.root_url, api_key=endpoint.api_key,
                                       verify=getattr(client, "_verify", True)))


@dataclass
class LoadBench:
    """The session's load runs, each measured on first use."""

    request: pytest.FixtureRequest
    session: Any
    endpoint: Any
    client: Any
    plan: load_plan.Plan
    workload: Any
    deadline_s: float | None
    runs: dict[str, Any] = field(default_factory=dict)
    probes: list[tuple[float, Any, str, dict]] = field(default_factory=list)  # (rate, run, verdict, details)
    bracket: Any = None
    _calibration: tuple[int | None, str | None] | None = None
    _announced: dict[str, Any] | None = None
    shard: tuple[int, int] | None = None  # --load-shard (index, count): this process sends one share
    start_at: float | None = None  # --load-start-at (epoch seconds): the shards' common start
    clock_url: str | None = None  # --load-clock-url: the clock reference (default the endpoint's /models)
    clock: dict[str, Any] | None = None  # this shard's clock offset against the reference

    def _measure(self, label: str, *, rate_rps: float | None = None, concurrency: int | None = None,
                 requests: int | None = None):
        """One load run (the plan's length unless ``requests``), one at a time per endpoint."""
        from pytest_inference.engine import EndpointError
        from pytest_inference.probes.load import measure_load
        from pytest_inference.progress import TerminalProgress

        p = self.plan
        length = {"requests": requests} if requests is not None else p.length()
        if concurrency is not None and "duration_s" in length:  # a closed loop runs a count
            length = {"requests": self.settings_requests}
        sharded = {}
        if self.shard is not None and rate_rps is not None and requests is None:
            sharded = {"shard": self.shard, "start_at": self.start_at, "before_start": self._clock_before_start}
        try:
            # shards of one schedule run at once by design (another pod, or another process here)
            with (contextlib.nullcontext() if sharded else
                  _one_load_at_a_time(self.request.config, self.endpoint.base_url)):
                return measure_load(
                    self.client, self.workload, model=self.endpoint.model, rate_rps=rate_rps,
                    concurrency=concurrency, arrival=p.arrival, seed=p.seed,
                    workers=p.workers_for(rate_rps), base_url=self.endpoint.base_url,
                    api_key=self.endpoint.api_key, deadline_s=self.deadline_s, warmup=p.warmup,
                    progress=TerminalProgress(self.request.config, label), watch=_watch(self.endpoint, self.client),
                    max_lag_ms=p.max_lag_ms, max_tokens=self.session.settings.max_tokens, **length, **sharded)
        except EndpointError as exc:
            pytest.fail(str(exc), pytrace=False)

    #: the shards measure their clocks at the flip into this many seconds before the common start
    CLOCK_LEAD_S = 3

    def _clock_url(self) -> str:
        return self.clock_url or self.endpoint.base_url.rstrip("/") + "/models"

    def _measure_clock(self, target_second: int | None) -> dict[str, Any]:
        from pytest_inference.shards import clock_offset

        key = self.endpoint.api_key if not self.clock_url else None  # the endpoint's key goes to the endpoint only
        return clock_offset(self._clock_url(), api_key=key, verify=getattr(self.client, "_verify", True),
                            target_second=target_second)

    def _clock_before_start(self) -> None:
        """Before the shard's wait: its clock's offset at the flip into the reference second
        CLOCK_LEAD_S before the common start (every shard watches the same flip); when too little time
        is left, after the run instead."""
        import math

        from pytest_inference.load import wall_clock
        from pytest_inference.probes.load import START_LEAD_S
        from pytest_inference.shards import FLIP_LEAD_S

        target = math.floor(self.start_at) - self.CLOCK_LEAD_S  # type: ignore[arg-type]
        # time to sleep up to the flip's lead (and half a second to spare) before the polls begin
        if target - FLIP_LEAD_S - 0.5 > wall_clock() and target < self.start_at - START_LEAD_S:  # type: ignore[operator]
            self.clock = {**self._measure_clock(target), "when": "before the start"}

    def _shard_metadata(self, run) -> None:
        if run.shard is None:
            return
        if self.clock is None:
            self.clock = {**self._measure_clock(None), "when": "after the run (too close to the start before it)"}
        c = self.clock
        self.session.add_metadata(shard={
            **run.shard, "clock_offset_s": c.get("offset_s"), "clock_uncertainty_s": c.get("uncertainty_s"),
            "clock_reference": c.get("reference"), "clock_method": c.get("method"), "clock_measured": c.get("when"),
            "clock_problem": c.get("problem"), "clock_skew_planted_s": load_plan.shard_clock_skew_s() or None})

    @property
    def settings_requests(self) -> int:
        return self.session.settings.load_requests

    def run(self, point: load_plan.Point):
        """The run at ``point`` (measured once); its records are written to the report folder."""
        if point.id not in self.runs:
            run = self._measure(f"load {point.id}", rate_rps=point.rate_rps, concurrency=point.concurrency)
            self.runs[point.id] = run
            self._shard_metadata(run)
            self._write_records(f"load-{point.id}", run)
            self.session.add_metadata(**{f"load_{point.id}": {
                "workload": run.workload, "problem": run.problem, "achieved_rps": run.achieved_rps,
                "workers": run.workers}})
        return self.runs[point.id]

    def _write_records(self, name: str, run) -> None:
        from pytest_inference.report.records import write_records

        try:
            write_records(self.session.report_dir, name, run.records(self.plan.slo),
                          secrets=[k for k in (self.endpoint.api_key,) if k])
        except (OSError, ValueError) as exc:  # the report folder was checked at start; a full disk is a note, not a verdict
            self.session.add_metadata(**{f"{name}_records_error": str(exc)})

    def prompt_calibration(self) -> tuple[int | None, str | None]:
        """The chat template's constant prompt tokens on this server, fitted on two prompts of known
        distinct lengths (``usage = overhead + slope x asked``): ``(overhead, None)``, or ``(None, why)``
        when the server gives no counts or its tokenizer does not count the workload's words one
        token each (slope off 1 by more than 2 %: lengths in server tokens cannot be built)."""
        if self._calibration is None:
            from pytest_inference.engine import EndpointError
            from pytest_inference.workloads import calibration, prompt_overhead

            cal = calibration()
            try:
                run = self.client.run(cal.specs(self.endpoint.model), concurrency=1, warmup=0,
                                      deadline_s=self.deadline_s)
            except EndpointError as exc:
                pytest.fail(str(exc), pytrace=False)
            got = [r.prompt_tokens if r.ok else None for r in run.results]
            if any(g is None for g in got):
                self._calibration = (None, "the calibration requests got no usage.prompt_tokens: the server's prompt "
                                           "token counts cannot be compared")
            else:
                overhead, slope = prompt_overhead(cal.input_tokens, got)  # type: ignore[arg-type]
                if abs(slope - 1.0) > 0.02:
                    self._calibration = (None, f"the server counts {slope:.3f} tokens per workload word (calibration "
                                               f"{cal.input_tokens} -> {got}): synthetic lengths are not server tokens here")
                else:
                    self._calibration = (round(overhead), None)
        return self._calibration

    def announced(self) -> dict[str, Any]:
        """What the server says it can hold: its /metrics cache_config_info, and the embedded local
        server's start log (KV-cache tokens, max concurrency, weights and KV memory)."""
        if self._announced is None:
            from pytest_inference.engine import EndpointError
            from pytest_inference.probes.server_capacity import announced

            try:
                text = self.client.get_text("/metrics")
            except EndpointError:
                text = None
            facts = None
            if self.session.endpoint is None:  # the embedded local server: its log is ours to read
                try:
                    handle = self.request.getfixturevalue("inference_local").shared()
                    from pytest_inference.vllm.startup_log import parse_log

                    facts = parse_log(open(handle.log_path, errors="replace").read()).facts
                except Exception as exc:  # noqa: BLE001 - a log we cannot read is a note, not an error
                    facts = None
                    self.session.add_metadata(load_server_log_error=f"{type(exc).__name__}: {exc}")
            a = announced(text, facts).to_dict()
            if text is None and not facts:
                a["problem"] = "the endpoint exposes no /metrics and no start log is ours to read"
            self._announced = a
        return self._announced

    def figures(self) -> list[dict]:
        """Latency vs offered rate (SLO line, capacity bracket shaded), achieved vs offered, and the
        dispatch-lag histogram over every open-loop run of the session."""
        from pytest_inference.report.load import load_figures, load_point

        runs = [(r, None) for r in self.runs.values()] + [(r, v) for _, r, v, _ in self.probes]
        points = [load_point(run, verdict) for run, verdict in runs if run.mode == "open"]
        lags = [x for run, _ in runs if run.mode == "open" for x in run.dispatch_lag_ms]
        bracket = self.bracket.to_dict() if self.bracket is not None else None
        return load_figures(points, slo=self.plan.slo, bracket=bracket, lags_ms=lags or None,
                            max_lag_ms=self.plan.max_lag_ms)

    def search(self, requirement):
        """The capacity search (once): double the rate from --search-start-rps until a probe fails,
        then bisect; each probe a load run of --search-requests judged by ``probe_verdict``."""
        if self.bracket is not None:
            return self.bracket
        from pytest_inference import capacity
        from pytest_inference.probes.load import probe_verdict

        s, slo, target = self.plan.search, self.plan.slo, self.session.target

        def probe(rate: float):
            run = self._measure(f"capacity probe {rate:g} req/s", rate_rps=rate, requests=s.requests_at(rate))
            verdict, details = probe_verdict(run, slo, requirement, confidence=target.confidence, target=target.name)
            self.probes.append((rate, run, verdict, details))
            self._write_records(f"capacity-probe-{len(self.probes)}-{rate:g}rps", run)
            return verdict, details

        self.bracket = capacity.search(probe, start_rps=s.start_rps, max_rps=s.max_rps, min_rps=s.min_rps,
                                       tight=s.tight, max_probes=s.max_probes, max_seconds=s.max_s)
        return self.bracket


@pytest.fixture(scope="session")
def load_bench(request, inference_session, inference_endpoint, inference_client) -> LoadBench:
    from pytest_inference.engine.options import request_deadline_s

    plan = load_plan.plan(inference_session.settings)
    workload = load_plan.parse_workload_spec(plan.workload_spec)
    longest = max((r.max_tokens or 0 for r in workload.requests), default=0) or inference_session.settings.max_tokens
    bench = LoadBench(request, inference_session, inference_endpoint, inference_client, plan, workload,
                      request_deadline_s(request.config, longest), shard=request.config.getoption("load_shard", None),
                      start_at=request.config.getoption("load_start_at", None),
                      clock_url=request.config.getoption("load_clock_url", None))
    inference_session.add_metadata(load_plan=plan.to_dict(), load_workload=workload.describe())
    return bench
