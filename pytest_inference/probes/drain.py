"""The drain probe: what a server's shutdown does to the streams in flight.

:func:`measure_drop` starts N streamed requests, waits until every one is streaming (the engine's
public :meth:`~pytest_inference.engine.StreamClient.progress`), calls a ``stop()`` of your choice
(plain SIGTERM, :func:`pytest_inference.server.prestop.drain_then_stop`, vLLM's own
``--shutdown-timeout``), and classifies every stream (:func:`classify`): *completed* (a finish
reason and the end of the stream: usage or ``[DONE]``), *aborted* (connection closed, HTTP or
stream error, finish reason ``abort``, cut short) or *hung* (no data until the short read timeout).

It observes; it does not judge: :attr:`DropResult.dropped` (aborted + hung) is the figure of the
claim ``drain.dropped_requests``, which :func:`pytest_inference.claims.judge` judges.
:attr:`DropResult.outcome` describes what happened in words ("not in flight": the stop did not
land while every stream was streaming).
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from ..engine import EndpointError, RequestResult, RequestSpec, StreamClient
from ..server.prestop import queue_depth

__all__ = ["COMPLETED", "ABORTED", "HUNG", "StreamOutcome", "DropResult", "classify", "measure_drop"]

COMPLETED, ABORTED, HUNG = "completed", "aborted", "hung"


@dataclass
class StreamOutcome:
    """One stream's fate. Times in seconds relative to the moment ``stop()`` was called
    (negative: before it)."""

    index: int
    outcome: str  # completed | aborted | hung
    why: str
    tokens: int  # token events received
    output_tokens: int | None  # the server's usage, when it sent one
    finish_reason: str | None
    done_marker: bool
    error: str | None
    tokens_before_stop: int = 0
    tokens_after_stop: int = 0
    end_s: float | None = None  # when the response ended normally (None: it failed), relative to stop()
    last_token_s: float | None = None  # its last token event, relative to stop()


def classify(r: RequestResult, *, max_tokens: int | None = None) -> tuple[str, str]:
    """``(outcome, why)`` for one streamed request that was in flight during a shutdown.

    completed: the response ended normally with a finish reason other than ``abort``/``error``
    and the end of stream (usage or ``[DONE]``), and, with ``ignore_eos``, all the tokens asked
    for. hung: the client's read timeout fired (no data for that long). aborted: anything
    else — connection closed mid-stream, an HTTP error (a 500 during shutdown), an error
    event, finish reason ``abort``, no finish reason, a stream cut short."""
    err = r.error or ""
    if not r.ok and err.startswith("timed out"):
        return HUNG, err
    if not r.ok:
        return ABORTED, err or "failed"
    fr = r.finish_reason
    if fr is None:
        return ABORTED, "no finish_reason"
    if fr in ("abort", "error"):
        return ABORTED, f"finish_reason={fr}"
    if not (r.usage_reported or r.done_marker):
        return ABORTED, "stream ended without usage or [DONE]"
    want = max_tokens if max_tokens is not None else r.requested_max_tokens
    if r.ignore_eos and want and r.output_tokens is not None and r.output_tokens < want:
        return ABORTED, f"cut short: {r.output_tokens} of {want} tokens (finish_reason={fr})"
    return COMPLETED, f"finish_reason={fr}"


@dataclass
class DropResult:
    """Counts and per-stream outcomes of :func:`measure_drop`."""

    n_streams: int
    completed: int
    aborted: int
    hung: int
    streaming_at_stop: int  # streams that had received >= start_after_tokens when stop() was called
    all_streaming: bool
    wait_streaming_s: float  # from sending to all streaming
    stop_s: float  # how long stop() took
    streams_end_s: float  # from calling stop() to the end of the last stream (its read timeout for a hung one)
    read_timeout_s: float
    max_tokens: int
    finished_after_stop: int  # completed streams whose last token came after stop() was called
    outcomes: list[StreamOutcome] = field(default_factory=list)
    stop_error: str | None = None
    stop_result: Any = None  # whatever stop() returned (a DrainResult, an exit time...)
    server_running_at_stop: int | None = None  # the running gauge right before stop(), if read

    @property
    def dropped(self) -> int:
        """The claim ``drain.dropped_requests``: aborted + hung."""
        return self.aborted + self.hung

    @property
    def outcome(self) -> str:
        """What happened, in words (a description, not a verdict): ``not in flight`` (the stop did
        not land while every stream was streaming), ``all completed``, ``some aborted`` (some were
        cut off) or ``some hung`` (none cut off, some only hung)."""
        if not self.all_streaming:
            return "not in flight"
        if self.dropped == 0:
            return "all completed"
        return "some hung" if self.aborted == 0 else "some aborted"

    def reasons(self) -> dict[str, int]:
        """How many streams ended for each distinct reason (errors shortened)."""
        out: dict[str, int] = {}
        for o in self.outcomes:
            key = f"{o.outcome}: {_short_reason(o.why)}"
            out[key] = out.get(key, 0) + 1
        return out

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["dropped"] = self.dropped
        d["outcome"] = self.outcome
        d["reasons"] = self.reasons()
        sr = self.stop_result
        d["stop_result"] = sr.to_dict() if hasattr(sr, "to_dict") else sr
        return d


def _short_reason(why: str) -> str:
    w = why.split(" after ")[0] if why.startswith("connection lost") else why
    if w.startswith("timed out"):
        return "timed out (no data)"
    if w.startswith("HTTP "):
        return w.split(":")[0]
    return w[:80]


def _streaming(client: StreamClient, k: int) -> tuple[int, int, int]:
    """``(in-flight requests that received >= k token events, requests in flight, requests not
    sent yet)`` of ``client`` while it runs in another thread (its public progress view)."""
    p = client.progress(k)
    return p.streaming, p.in_flight, p.not_sent


def measure_drop(base_url: str, model: str, stop: Callable[[], Any], n_streams: int = 32, max_tokens: int = 384,
                 start_after_tokens: int = 1, *, read_timeout_s: float = 15.0, start_timeout_s: float = 60.0,
                 end_timeout_s: float | None = None, root_url: str | None = None, api_key: str | None = None,
                 prompt: str = "Tell me a long story about request {i}.", api: str = "chat",
                 extra_body: dict[str, Any] | None = None) -> DropResult:
    """Start ``n_streams`` streamed requests at once (``max_tokens`` each, ``ignore_eos``,
    temperature 0), wait until every one has received ``start_after_tokens`` token events,
    call ``stop()`` (from this thread; it may block, e.g. while draining), then wait for every
    stream to end and classify it with :func:`classify`.

    The streams are driven by one engine :class:`StreamClient` in a background thread (one
    connection each, opened before any request is sent); its read timeout ``read_timeout_s``
    is what turns a stream that stops receiving data into *hung*: keep it short. When the
    streams are not all streaming within ``start_timeout_s``, ``stop()`` is called anyway
    (the caller's server must still go down) and the result says ``all_streaming=False``
    (outcome ``not in flight``). ``root_url`` (default: ``base_url`` without ``/v1``) is read
    once before ``stop()`` for the server's running gauge, when it has one.
    """
    if n_streams < 1:
        raise ValueError("n_streams must be >= 1")
    specs = [RequestSpec(model=model, prompt=prompt.format(i=i), max_tokens=max_tokens, api=api,
                         ignore_eos=True, temperature=0.0, extra_body=extra_body) for i in range(n_streams)]
    # Hung streams are an outcome this measures, so the engine's early stop of a run whose requests
    # time out in a row (meant for warm runs against a dead endpoint) must not cut it short.
    client = StreamClient(base_url, api_key=api_key, timeout_s=read_timeout_s, stop_early=False)
    root = root_url or client.root_url
    box: dict[str, Any] = {}

    def drive() -> None:
        try:
            box["run"] = client.run(specs, concurrency=n_streams, warmup=0)
        except BaseException as e:  # noqa: BLE001 - reported to the caller's thread
            box["error"] = e
        box["t_end"] = time.monotonic()

    th = threading.Thread(target=drive, name="measure_drop", daemon=True)
    try:
        client.open_connections(n_streams)
        t_send = time.monotonic()
        th.start()
        streaming = 0
        all_sent = False
        while True:
            streaming, active, pending = _streaming(client, start_after_tokens)
            all_sent = all_sent or (active >= n_streams and pending == 0)
            if all_sent and active < n_streams:
                break  # a stream already ended: they can no longer all be in flight together
            if streaming >= n_streams or not th.is_alive() or time.monotonic() - t_send > start_timeout_s:
                break
            time.sleep(0.005)
        wait_streaming_s = time.monotonic() - t_send
        running_gauge: int | None
        try:
            running_gauge = queue_depth(root, api_key=api_key, timeout_s=2.0)[0]
        except EndpointError:
            running_gauge = None
        streaming = _streaming(client, start_after_tokens)[0]  # the gauge read takes a moment: count again
        stop_error = None
        stop_result = None
        t_stop_mono = time.monotonic()
        t_stop_ns = time.perf_counter_ns()
        try:
            stop_result = stop()
        except Exception as e:  # noqa: BLE001 - the streams are still measured
            stop_error = f"{type(e).__name__}: {e}"
        stop_s = time.monotonic() - t_stop_mono
        limit = end_timeout_s if end_timeout_s is not None else read_timeout_s + max_tokens * 0.5 + 60
        th.join(limit)
        if th.is_alive():
            raise RuntimeError(f"streams still open {limit:g} s after stop(): the read timeout "
                               f"({read_timeout_s:g} s) never fired (a server trickling data?)")
    finally:
        if not th.is_alive():
            client.close()
    if "error" in box:
        raise box["error"]
    run = box["run"]
    streams_end_s = box["t_end"] - t_stop_mono
    outcomes: list[StreamOutcome] = []
    counts = {COMPLETED: 0, ABORTED: 0, HUNG: 0}
    finished_after = 0
    for r in run.results:
        outcome, why = classify(r, max_tokens=max_tokens)
        counts[outcome] += 1
        tok_abs = [r.send_ns + ms * 1e6 for ms in r.token_times_ms]
        before = sum(1 for t in tok_abs if t < t_stop_ns)
        end_s = (r.send_ns + r.e2e_ms * 1e6 - t_stop_ns) / 1e9 if r.e2e_ms is not None else None
        last_s = (tok_abs[-1] - t_stop_ns) / 1e9 if tok_abs else None
        if outcome == COMPLETED and tok_abs and tok_abs[-1] >= t_stop_ns:
            finished_after += 1
        outcomes.append(StreamOutcome(index=r.index, outcome=outcome, why=why, tokens=r.content_events,
                                      output_tokens=r.output_tokens, finish_reason=r.finish_reason,
                                      done_marker=r.done_marker, error=r.error, tokens_before_stop=before,
                                      tokens_after_stop=len(tok_abs) - before, end_s=end_s,
                                      last_token_s=last_s))
    return DropResult(n_streams=n_streams, completed=counts[COMPLETED], aborted=counts[ABORTED], hung=counts[HUNG],
                      streaming_at_stop=streaming, all_streaming=streaming >= n_streams,
                      wait_streaming_s=wait_streaming_s, stop_s=stop_s, streams_end_s=streams_end_s,
                      read_timeout_s=read_timeout_s, max_tokens=max_tokens, finished_after_stop=finished_after,
                      outcomes=outcomes, stop_error=stop_error, stop_result=stop_result,
                      server_running_at_stop=running_gauge)
