"""The warm-serving probe: N streamed requests against a running endpoint.

Measures with the engine (raw sockets, monotonic clock, warm-ups not counted), cross-checks
the client's TTFT against the server's own ``vllm:time_to_first_token_seconds`` histogram
where ``/metrics`` has it, and flags burst-delivered (contaminated) samples, which the claims
then exclude.

What makes a claim inconclusive instead of judging it (each with its reason):

* ``count_problem``: a request's ``usage.completion_tokens`` disagrees with its stream
  (:func:`pytest_inference.engine.results.token_count_problem`): TPOT and tokens/s.
* ``timing_problem``: the measuring host was loaded, the client could not time
  (:func:`pytest_inference.engine.hostload.judge_client_timing`): every client-side timing.
* ``server_check.problem``: ``/metrics`` could not be read: the client − server TTFT gap.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from .. import stats
from ..engine.hostload import evidence, judge_client_timing
from ..engine.prometheus import ServerCheck, cross_check

#: Distinct prompts, so a prefix cache cannot make later requests cheaper than the first
#: (prior-art pitfall 7). Each request gets its own opening words.
_WORDS = (
    "amber basalt cedar delta ember fjord granite harbor indigo juniper kestrel lagoon meadow "
    "nebula obsidian prairie quartz river sierra tundra umber valley willow xenon yarrow zephyr"
).split()


def prompts(n: int, base: str = "Write a short story about a lighthouse keeper.") -> list[str]:
    out = []
    for i in range(n):
        a, b = _WORDS[i % len(_WORDS)], _WORDS[(i // len(_WORDS) + 7 * i) % len(_WORDS)]
        out.append(f"Request {i} ({a} {b}). {base}")
    return out


@dataclass
class WarmRun:
    requests: int
    warmup: int
    concurrency: int
    max_tokens: int
    results: list[Any]
    wall_s: float
    ttft_ms: list[float] = field(default_factory=list)  # clean samples only
    tpot_ms: list[float] = field(default_factory=list)
    e2e_ms: list[float] = field(default_factory=list)
    tok_s: list[float] = field(default_factory=list)  # per request: output tokens / e2e
    output_tokens: list[int] = field(default_factory=list)
    usage_reported: bool = True
    contaminated: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    length_mismatches: int = 0
    server_ttft_mean_ms: float | None = None
    server_tpot_mean_ms: float | None = None
    client_ttft_mean_ms: float | None = None
    loadavg: list[float] | None = None
    count_mismatches: int = 0  # requests whose usage count the stream contradicts
    count_examples: list[str] = field(default_factory=list)
    host_load: dict[str, Any] = field(default_factory=dict)  # hostload.evidence() of the window
    timing_problem: str | None = None
    server_check: ServerCheck = field(default_factory=ServerCheck)

    @property
    def count_problem(self) -> str | None:
        """Why the run's token counts cannot be used (TPOT, tokens/s), or None."""
        if not self.count_mismatches:
            return None
        n_ok = self.requests - self.failed - self.contaminated
        return (f"the server's usage.completion_tokens disagrees with the stream in {self.count_mismatches} of "
                f"{n_ok} completed requests (e.g. {self.count_examples[0]}); a count the stream "
                "contradicts is not used")

    @property
    def output_tok_s(self) -> float | None:
        """Output tokens per second of request time: sum(tokens) / sum(e2e)."""
        if not self.usage_reported or not self.e2e_ms:
            return None
        return sum(self.output_tokens) / (sum(self.e2e_ms) / 1000.0)

    @property
    def ttft_server_gap_ms(self) -> float | None:
        if self.server_ttft_mean_ms is None or self.client_ttft_mean_ms is None:
            return None
        return self.client_ttft_mean_ms - self.server_ttft_mean_ms

    @property
    def server_gap_problem(self) -> str | None:
        """Why the client − server TTFT gap cannot be judged although the server has /metrics."""
        if self.server_check.problem:
            return f"the server's TTFT histogram cannot be read: {self.server_check.problem}"
        if self.server_check.present and self.client_ttft_mean_ms is None:
            return "no request completed: there is no client TTFT to compare"
        return None

    def details(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "warmup": self.warmup,
            "concurrency": self.concurrency,
            "max_tokens": self.max_tokens,
            "failed": self.failed,
            "contaminated": self.contaminated,
            "usage_reported": self.usage_reported,
            "length_mismatches": self.length_mismatches,
            "server_ttft_mean_ms": self.server_ttft_mean_ms,
            "client_ttft_mean_ms": self.client_ttft_mean_ms,
            "loadavg": self.loadavg,
            "count_mismatches": self.count_mismatches,
            "host_load": self.host_load,
            "timing_problem": self.timing_problem,
            "server_metrics_problem": self.server_check.problem or self.server_check.tpot_problem,
            "ttft_stats": stats.summarize(self.ttft_ms),
            "tpot_stats": stats.summarize(self.tpot_ms),
            "e2e_stats": stats.summarize(self.e2e_ms),
        }


def _scrape(client) -> str | None:
    from ..engine import EndpointError

    try:
        return client.get_text("/metrics")
    except EndpointError:  # a server without /metrics is fine; the cross-check is then skipped
        return None


def measure_warm(
    client,
    model: str,
    *,
    requests: int = 20,
    warmup: int = 2,
    concurrency: int = 1,
    max_tokens: int = 64,
    api: str = "chat",
    progress=None,
    deadline_s: float | None = None,
) -> WarmRun:
    """Run warm-ups (uncounted), then ``requests`` measured streams; return clean samples.

    ``deadline_s``: each request's total deadline (see :meth:`StreamClient.run`)."""
    from ..engine import RequestSpec, mark_bursts

    texts = prompts(requests + warmup)
    spec = lambda p: RequestSpec(model=model, prompt=p, max_tokens=max_tokens, api=api, ignore_eos=True)  # noqa: E731
    if warmup:
        client.run([spec(p) for p in texts[:warmup]], concurrency=min(concurrency, warmup), warmup=0,
                   deadline_s=deadline_s)
    before = _scrape(client)
    run = client.run([spec(p) for p in texts[warmup:]], concurrency=concurrency, warmup=0, progress=progress,
                     deadline_s=deadline_s)
    after = _scrape(client)

    check = cross_check(before, after)
    server_ttft, server_tpot = check.ttft_mean_ms, check.tpot_ref_ms
    results = list(run.results)
    mark_bursts(results, reference_tpot_ms=server_tpot)

    out = WarmRun(
        requests=requests,
        warmup=warmup,
        concurrency=concurrency,
        max_tokens=max_tokens,
        results=results,
        wall_s=run.wall_s,
        server_ttft_mean_ms=server_ttft,
        server_tpot_mean_ms=server_tpot,
        server_check=check,
    )
    out.host_load = evidence(getattr(run, "client_runq_ms", None), len(results), getattr(run, "cpu_pressure", None),
                             [getattr(r, "ttft_stall_ms", None) for r in results if r.ok])
    out.timing_problem = judge_client_timing(out.host_load)
    ok = [r for r in results if r.ok]
    out.failed = len(results) - len(ok)
    out.errors = sorted({r.error for r in results if not r.ok and r.error})[:5]
    if ok:
        out.client_ttft_mean_ms = sum(r.ttft_ms for r in ok) / len(ok)
    for r in ok:
        if r.burst:  # excluded with its count: a starved server also coalesces tokens into few chunks
            out.contaminated += 1
            continue
        problem = getattr(r, "token_count_problem", None)
        if problem:  # one lying count taints the run's counts: TPOT and tokens/s are not judged
            out.count_mismatches += 1
            if len(out.count_examples) < 3:
                out.count_examples.append(problem)
        out.ttft_ms.append(r.ttft_ms)
        out.e2e_ms.append(r.e2e_ms)
        if r.tpot_ms is not None:
            out.tpot_ms.append(r.tpot_ms)
        if r.output_tokens is None:
            out.usage_reported = False
        elif not getattr(r, "token_count_problem", None):
            out.output_tokens.append(r.output_tokens)
            out.tok_s.append(r.output_tokens / (r.e2e_ms / 1000.0))
        out.length_mismatches += bool(getattr(r, "length_mismatch", False))
    try:
        out.loadavg = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        pass
    return out
