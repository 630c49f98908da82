"""Graceful shutdown of an inference server: drain, then signal — and measure what a
shutdown does to the streams in flight.

The claim (article B): a Kubernetes ``preStop`` hook "drains in-flight requests: polls vLLM's
metrics endpoint until the queue is empty, then lets the pod stop (a plain SIGTERM would drop
batched requests)". Three pieces turn it into a test:

* :func:`queue_depth` — ``(running, waiting)`` from Prometheus ``/metrics``
  (``vllm:num_requests_running`` and ``vllm:num_requests_waiting``, each summed over its label
  sets: several engines or models add up);
* :func:`drain_then_stop` — what the hook does, then what the kubelet does after it: poll
  running + waiting until both are 0 for ``zero_polls`` consecutive polls, *then* send SIGTERM
  (to the process group) and wait for every process to exit; :data:`PRESTOP_HOOK` is the same
  drain as the shell one-liner a pod spec runs (``prestop_hook()`` builds it for another port);
* :func:`measure_drop` — start N streamed requests, wait until every one is streaming, call a
  ``stop()`` of your choice (plain SIGTERM, the drain helper, vLLM's own
  ``--shutdown-timeout``), and classify every stream: *completed* (a finish reason and the
  end of the stream: usage or ``[DONE]``), *aborted* (connection closed, HTTP or stream error,
  finish reason ``abort``, cut short) or *hung* (no data until the short read timeout). The
  claim ``drain.dropped_requests`` is ``aborted + hung``.

Seen on vLLM 0.32 (CPU build, 32 streams of 768 tokens, tests/server/test_drain.py): SIGTERM
with the default ``--shutdown-timeout 0`` ends every stream at once with ``finish_reason=abort``;
the drain helper and ``--shutdown-timeout 20`` lose none. But ``--shutdown-timeout`` only holds
when the signal reaches the API server alone (the kubelet signals the container's PID 1): SIGTERM
to the whole process group (``kill -- -PGID``, systemd's ``KillMode=control-group``) also
reaches the Worker, which exits; the draining EngineCore dies with it and every stream ends with
an error event. :func:`signal_and_wait` does either (``group``, ``wait_pgid``).

Linux only (process groups and ``/proc``). Every URL here is the server's own; nothing is sent
anywhere else.
"""

from __future__ import annotations

import math
import os
import shlex
import signal as _signal
import subprocess
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from ..engine import EndpointError, EndpointUnreachable, RequestResult, RequestSpec, StreamClient
from ..engine import prometheus

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
    "signal_and_wait",
    "process_gone",
    "StreamOutcome",
    "DropResult",
    "classify",
    "measure_drop",
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
        try:
            os.killpg(p.pid, _signal.SIGKILL)
        except ProcessLookupError:
            pass
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
    with StreamClient(root_url, api_key=api_key, timeout_s=timeout_s) as c:
        return parse_queue_depth(c.get_text("/metrics"))


# --------------------------------------------------------------------------- processes


def _stat(pid: int | str) -> tuple[str, int] | None:
    """(state, process group) of /proc/PID/stat, or None if the process is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    rest = data[data.rfind(b")") + 2:].split()
    try:
        return rest[0].decode(), int(rest[2])
    except (IndexError, ValueError):
        return None


def _live(st: tuple[str, int] | None) -> bool:
    return st is not None and st[0] not in ("Z", "X", "x")


def _group_pids(pgid: int) -> list[int]:
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = _stat(name)
            if _live(st) and st[1] == pgid:  # type: ignore[index]
                out.append(int(name))
    return out


def process_gone(target: int, group: bool) -> bool:
    """Whether no process runs any more: of process group ``target`` (``group``) or the
    single process ``target``. Zombies (exited, not yet reaped by their parent) count as gone."""
    return not _group_pids(target) if group else not _live(_stat(target))


def _resolve_group(target: int, group: bool | None) -> bool:
    if group is None:  # a process group id: its leader's pid, or members still carry it
        st = _stat(target)
        group = (st is not None and st[1] == target) or bool(_group_pids(target))
    if group and target == os.getpgrp():
        raise ValueError(f"refusing to signal process group {target}: it is this process's own group")
    if target <= 1:
        raise ValueError(f"refusing to signal {'process group' if group else 'pid'} {target}")
    return group


def signal_and_wait(target: int, sig: int = _signal.SIGTERM, *, group: bool | None = None,
                    wait_pgid: int | None = None, exit_timeout_s: float = 60.0, kill_after: bool = True,
                    interval_s: float = 0.02) -> tuple[float | None, bool]:
    """Send ``sig`` to process group ``target`` or to the single process ``target`` (``group``:
    see :func:`drain_then_stop`), then wait until every process is gone: of ``wait_pgid`` when
    given, else of what was signalled. ``signal_and_wait(server_pid, group=False,
    wait_pgid=server_pgid)`` is what the kubelet does — SIGTERM to the container's main process
    only — timed until the whole server (its engine and worker children too) has exited.

    Returns ``(seconds from the signal to the last exit, or None if something outlived
    exit_timeout_s; killed)``. With ``kill_after`` a survivor gets SIGKILL (what the kubelet
    does after the grace period; to the waited group) and ``killed`` is True."""
    group = _resolve_group(target, group)
    if wait_pgid is not None:
        _resolve_group(wait_pgid, True)
    w_target, w_group = (wait_pgid, True) if wait_pgid is not None else (target, group)
    t0 = time.monotonic()
    try:
        (os.killpg if group else os.kill)(target, sig)
    except ProcessLookupError:
        if process_gone(w_target, w_group):
            return 0.0, False
    while True:
        if process_gone(w_target, w_group):
            return time.monotonic() - t0, False
        if time.monotonic() - t0 >= exit_timeout_s:
            break
        time.sleep(interval_s)
    if not kill_after:
        return None, False
    try:
        (os.killpg if w_group else os.kill)(w_target, _signal.SIGKILL)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + 10.0
    while not process_gone(w_target, w_group) and time.monotonic() < deadline:
        time.sleep(interval_s)
    return None, True


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
    group = _resolve_group(pgid_or_pid, group)
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


# --------------------------------------------------------------------------- measuring the drop

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
    def verdict(self) -> str:
        """``safe drain`` (every stream in flight at the stop completed), ``dropped`` (some
        were cut off), ``hung`` (some only hung), or ``not in flight`` (the stop did not
        land while every stream was streaming: nothing to judge)."""
        if not self.all_streaming:
            return "not in flight"
        if self.dropped == 0:
            return "safe drain"
        return "hung" if self.aborted == 0 else "dropped"

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
        d["verdict"] = self.verdict
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


def _probe(client: StreamClient, k: int) -> tuple[int, int, int] | None:
    """``(in-flight requests that received >= k token events, requests in flight, requests not
    sent yet)`` of ``client`` while it runs in another thread. Reads the engine's connection
    table without locks (a snapshot under the GIL); None where it is not readable."""
    try:
        conns = list(client._conns)  # noqa: SLF001 - same package, read-only
        n = 0
        for c in conns:
            req = c.req
            if req is not None and len(req.tok_ns) >= k:
                n += 1
        return n, int(client._active), len(client._pending)  # noqa: SLF001
    except (AttributeError, TypeError):
        return None


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
    (verdict ``not in flight``). ``root_url`` (default: ``base_url`` without ``/v1``) is read
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
            p = _probe(client, start_after_tokens)
            if p is None:  # engine internals not readable: fall back on the server's gauge
                try:
                    streaming = queue_depth(root, api_key=api_key)[0]
                except EndpointError:
                    streaming = 0
            else:
                streaming, active, pending = p
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
        p = _probe(client, start_after_tokens)  # the gauge read takes a moment: count again
        if p is not None:
            streaming = p[0]
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
