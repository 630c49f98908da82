"""What the engine is asked to send (:class:`RequestSpec`) and what it measured
(:class:`RequestResult`, :class:`RunResult`). Raw numbers only; statistics live in
:mod:`pytest_inference.stats`.

Metric definitions (all times in ms, relative to the moment the request's bytes were
written to the socket, taken with ``time.perf_counter_ns`` — CLOCK_MONOTONIC):

* a *token event* is an SSE chunk whose choices carry non-empty ``delta.content``,
  ``delta.reasoning_content`` / ``delta.reasoning``, tool-call text (function name or
  arguments), or, for ``/v1/completions``, non-empty ``text``. The role-only opening
  chunk, empty-content chunks and the usage-only chunk (``choices == []``) are not
  token events.
* ``ttft_ms``: first token event. ``ttft_content_ms``: first event carrying
  non-reasoning content (``delta.content`` / ``text``).
* an event's time is that of the socket read that completed it.
* ``e2e_ms``: the read that completed the HTTP response body.
* ``itl_ms``: gaps between successive token events (0 when two arrived in one read).
* ``tpot_ms`` = (e2e − ttft) / (output_tokens − 1) when output_tokens ≥ 2.
* ``output_tokens`` / ``prompt_tokens``: only from the server's ``usage``
  (``stream_options.include_usage``); never guessed from chunk counts.
* ``length_mismatch``: usage says more tokens than ``max_tokens`` (the server ignored
  it), or, with ``ignore_eos``, fewer than 90% of it (``ignore_eos`` dropped/rejected).
  False when usage is absent (unknown).
* ``queue_ms``: time the request waited for a concurrency slot (and for a reconnect,
  ``connect_ms``, if the server had closed its connection) — never part of a latency.
* ``token_count_problem``: the server's ``usage.completion_tokens`` disagrees with the
  stream (see :func:`token_count_problem`); ``tpot_ms`` is then None and the run's token
  totals are unknown.
* a request is ``ok`` only when its stream *ended*: ``data: [DONE]``, or a terminating
  chunk / the whole Content-Length together with a ``finish_reason``. A body framed by
  the connection closing, cut without ``[DONE]``, is a failed request.
* ``ttft_stall_ms`` / ``client_stall_ms``: the measuring thread's run-queue wait in the
  wake that stamped the first token / its worst wake (Linux schedstat): an upper bound
  on what a CPU-starved client added. ``burst``: see :func:`.burst.mark_bursts`.
* ``RunResult.client_runq_ms``: the measuring thread's whole run-queue wait over the
  measured window; ``RunResult.cpu_pressure``: the host's ``/proc/pressure/cpu`` over it
  (see :mod:`.hostload`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Iterable

#: the most tokens one stream event may plausibly carry on average: vLLM sends one chunk
#: per engine step and request, a step yields 1 token, or 1 + the accepted draft tokens
#: with speculative decoding (num_speculative_tokens is ≤ 7 in practice). Seen on the CPU
#: vLLM here: 64 tokens in 54–64 chunks (≤ 1.2 per event).
MAX_TOKENS_PER_EVENT = 8


def token_count_problem(usage_tokens: int | None, token_events: int) -> str | None:
    """Why the server's ``usage.completion_tokens`` cannot be the stream's token count, or None.

    Sound: ``events <= usage <= MAX_TOKENS_PER_EVENT × events`` (a server may pack several
    tokens into one chunk, never fewer than one). Below the events, or far above them (a
    server that reports 1000 while 32 events arrived), the count is not used: every figure
    divided by it (TPOT, tokens/s) would be invented. Unknown (no usage, no event): None.
    """
    if usage_tokens is None or token_events <= 0:
        return None
    if usage_tokens < token_events:
        return (f"usage.completion_tokens {usage_tokens} < {token_events} token events "
                "(every event carries at least one token)")
    if usage_tokens > MAX_TOKENS_PER_EVENT * token_events:
        return (f"usage.completion_tokens {usage_tokens} > {MAX_TOKENS_PER_EVENT} x {token_events} "
                "token events")
    return None


@dataclass(frozen=True)
class Progress:
    """A running :class:`~pytest_inference.engine.StreamClient`'s state at one moment
    (:meth:`~pytest_inference.engine.StreamClient.progress`)."""

    #: requests in flight that have received at least ``min_tokens`` token events
    streaming: int
    #: requests sent whose response has not ended
    in_flight: int
    #: requests of the run not sent yet (waiting for a free slot)
    not_sent: int


@dataclass
class RequestSpec:
    """One request to send. ``api`` is ``"chat"`` (/chat/completions) or ``"completions"``."""

    model: str
    prompt: str = "hello"
    max_tokens: int | None = 64
    api: str = "chat"
    ignore_eos: bool = True
    temperature: float | None = 0.0
    extra_body: dict[str, Any] | None = None
    messages: list[dict[str, Any]] | None = None  # overrides ``prompt`` for chat
    headers: dict[str, str] | None = None  # extra per-request headers
    include_usage: bool = True

    def __post_init__(self) -> None:
        if self.api not in ("chat", "completions"):
            raise ValueError(f"api must be 'chat' or 'completions', not {self.api!r}")

    @property
    def path(self) -> str:
        return "/chat/completions" if self.api == "chat" else "/completions"

    def body(self) -> dict[str, Any]:
        b: dict[str, Any] = {"model": self.model}
        if self.api == "chat":
            b["messages"] = self.messages if self.messages is not None else [
                {"role": "user", "content": self.prompt}]
        else:
            b["prompt"] = self.prompt
        if self.max_tokens is not None:
            b["max_tokens"] = self.max_tokens
        if self.temperature is not None:
            b["temperature"] = self.temperature
        b["stream"] = True
        if self.include_usage:
            b["stream_options"] = {"include_usage": True}
        if self.ignore_eos:
            b["ignore_eos"] = True
        if self.extra_body:
            b.update(self.extra_body)
        return b


@dataclass
class RequestResult:
    index: int = 0
    warmup: bool = False
    ok: bool = False
    error: str | None = None
    status: int = 0
    response_id: str | None = None
    api: str = "chat"
    model: str = ""
    # timing (ms from send)
    ttft_ms: float | None = None
    ttft_content_ms: float | None = None
    e2e_ms: float | None = None
    itl_ms: list[float] = field(default_factory=list)
    tpot_ms: float | None = None
    token_times_ms: list[float] = field(default_factory=list)
    queue_ms: float = 0.0
    # tokens
    output_tokens: int | None = None
    prompt_tokens: int | None = None
    usage_reported: bool = False
    requested_max_tokens: int | None = None
    ignore_eos: bool = False
    length_mismatch: bool = False
    token_count_problem: str | None = None  # usage vs the stream's token events (see token_count_problem)
    timed_out: bool = False  # idle timeout or request deadline
    # stream shape
    content_events: int = 0  # token events (content, reasoning or tool text): len(token_times_ms)
    reasoning_events: int = 0
    finish_reason: str | None = None
    text: str = ""
    reasoning_text: str = ""
    tool_text: str = ""
    done_marker: bool = False  # "data: [DONE]" seen
    socket_reads: int = 0
    first_read_token_events: int = 0  # token events delivered by the read carrying the first one
    burst: bool = False
    # the client's own scheduling: run-queue wait of the measuring thread in the wake that
    # stamped the first token / the worst wake of this request (None: not measurable here)
    ttft_stall_ms: float | None = None
    client_stall_ms: float | None = None
    # connection
    connection_id: int = 0
    connection_reused: bool = False
    connect_ms: float | None = None  # set when this request waited for a (re)connect mid-run
    retried: bool = False
    send_ns: int = 0  # absolute time.perf_counter_ns() of the send (CLOCK_MONOTONIC on Linux)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RunResult:
    results: list[RequestResult]
    warmup_results: list[RequestResult]
    wall_s: float
    concurrency: int
    connections_opened: int = 0  # connections opened during the measured phase (reconnects)
    client_cpu_s: float = 0.0  # time.process_time() spent by the client process in the measured phase
    loadavg_before: float | None = None  # 1-minute load average when the measured phase began / ended
    loadavg_after: float | None = None
    # contamination evidence over the measured window (None: not measurable on this host)
    client_runq_ms: float | None = None  # the measuring thread's run-queue wait (schedstat)
    cpu_pressure: dict[str, Any] | None = None  # /proc/pressure/cpu over the window (hostload.CpuPressure)

    @property
    def ok_results(self) -> list[RequestResult]:
        return [r for r in self.results if r.ok]

    @property
    def failed(self) -> list[RequestResult]:
        return [r for r in self.results if not r.ok]

    def _vals(self, name: str) -> list[float]:
        return [getattr(r, name) for r in self.results if r.ok and getattr(r, name) is not None]

    def ttft_ms(self) -> list[float]:
        return self._vals("ttft_ms")

    def ttft_content_ms(self) -> list[float]:
        return self._vals("ttft_content_ms")

    def e2e_ms(self) -> list[float]:
        return self._vals("e2e_ms")

    def tpot_ms(self) -> list[float]:
        return self._vals("tpot_ms")

    def queue_ms(self) -> list[float]:
        return [r.queue_ms for r in self.results]

    def itl_ms(self) -> list[float]:
        return [x for r in self.results if r.ok for x in r.itl_ms]

    def output_tokens(self) -> list[int]:
        return [r.output_tokens for r in self.results if r.ok and r.output_tokens is not None]

    @property
    def total_output_tokens(self) -> int | None:
        """Sum of server-reported output tokens; None if any ok result lacked usage or
        reported a count its stream contradicts."""
        ok = self.ok_results
        if any(r.output_tokens is None or r.token_count_problem for r in ok):
            return None
        return sum(r.output_tokens for r in ok)  # type: ignore[misc]

    @property
    def request_throughput(self) -> float:
        return len(self.ok_results) / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def output_throughput(self) -> float | None:
        tot = self.total_output_tokens
        return tot / self.wall_s if tot is not None and self.wall_s > 0 else None

    def stalled(self, threshold_ms: float = 0.5) -> list[RequestResult]:
        """Results whose first-token stamp may have been delayed more than ``threshold_ms``
        because the client thread itself waited for a CPU (a loaded machine)."""
        return [r for r in self.results if r.ttft_stall_ms is not None and r.ttft_stall_ms > threshold_ms]

    def bursts(self) -> list[RequestResult]:
        return [r for r in self.results if r.burst]

    def mark_bursts(self, reference_tpot_ms: float | None = None) -> int:
        from .burst import mark_bursts

        return mark_bursts(self.results, reference_tpot_ms)

    def summary(self) -> dict[str, Any]:
        """Counts in vllm-bench-serve vocabulary (no statistics)."""
        return {
            "completed": len(self.ok_results),
            "failed": len(self.failed),
            "concurrency": self.concurrency,
            "duration_s": self.wall_s,
            "total_output_tokens": self.total_output_tokens,
            "total_input_tokens": _sum_or_none(r.prompt_tokens for r in self.ok_results),
            "request_throughput": self.request_throughput,
            "output_throughput": self.output_throughput,
            "bursts": len(self.bursts()),
            "client_stalled": len(self.stalled()),
            "connections_opened": self.connections_opened,
        }


def _sum_or_none(xs: Iterable[int | None]) -> int | None:
    total = 0
    for x in xs:
        if x is None:
            return None
        total += x
    return total
