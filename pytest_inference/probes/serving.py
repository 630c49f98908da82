"""The warm-serving probe: N streamed requests against a running endpoint.

Measures with the engine (raw sockets, monotonic clock, warm-ups not counted), cross-checks
the client's TTFT against the server's own ``vllm:time_to_first_token_seconds`` histogram
where ``/metrics`` has it, and flags burst-delivered (contaminated) samples, which the claims
then exclude.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from .. import stats

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
) -> WarmRun:
    """Run warm-ups (uncounted), then ``requests`` measured streams; return clean samples."""
    from ..engine import RequestSpec, mark_bursts
    from ..engine.prometheus import server_mean_ttft_ms, server_reference_tpot_ms

    texts = prompts(requests + warmup)
    spec = lambda p: RequestSpec(model=model, prompt=p, max_tokens=max_tokens, api=api, ignore_eos=True)  # noqa: E731
    if warmup:
        client.run([spec(p) for p in texts[:warmup]], concurrency=min(concurrency, warmup), warmup=0)
    before = _scrape(client)
    run = client.run([spec(p) for p in texts[warmup:]], concurrency=concurrency, warmup=0, progress=progress)
    after = _scrape(client)

    server_ttft = server_tpot = None
    if before is not None and after is not None:
        server_ttft = server_mean_ttft_ms(before, after)
        server_tpot = server_reference_tpot_ms(before, after)
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
    )
    ok = [r for r in results if r.ok]
    out.failed = len(results) - len(ok)
    out.errors = sorted({r.error for r in results if not r.ok and r.error})[:5]
    if ok:
        out.client_ttft_mean_ms = sum(r.ttft_ms for r in ok) / len(ok)
    for r in ok:
        if r.burst:
            out.contaminated += 1
            continue
        out.ttft_ms.append(r.ttft_ms)
        out.e2e_ms.append(r.e2e_ms)
        if r.tpot_ms is not None:
            out.tpot_ms.append(r.tpot_ms)
        if r.output_tokens is None:
            out.usage_reported = False
        else:
            out.output_tokens.append(r.output_tokens)
            out.tok_s.append(r.output_tokens / (r.e2e_ms / 1000.0))
        out.length_mismatches += bool(getattr(r, "length_mismatch", False))
    try:
        out.loadavg = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        pass
    return out
