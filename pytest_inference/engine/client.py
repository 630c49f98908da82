"""Raw-socket streaming client that times requests close to the socket.

Why not httpx/openai in the timed path: every layer between ``recv`` and the
timestamp adds jitter, and threads fighting over the GIL add milliseconds of it. Here
one thread runs a ``selectors`` loop over non-blocking sockets:

* connections are opened (TCP, then TLS) before the first measured request, up to the
  concurrency, and reused (HTTP/1.1 keep-alive, one pool per client = per host:port);
  every socket has ``TCP_NODELAY`` (a request written in two segments without it waits
  ~40 ms for a delayed ACK);
* request bodies are serialised before the run; a request's start time is taken right
  before its bytes are written, in one ``send``; waiting for a free slot is recorded
  as ``queue_ms``, never as latency;
* when ``select`` returns, every ready socket is read and stamped
  (``time.perf_counter_ns()`` right after its ``recv``) before any parsing happens;
  an SSE event carries the stamp of the read that completed it;
* the garbage collector is paused during a run (a collection in the middle of a
  stream would be charged to whichever token arrives next);
* the client's own scheduling delay is measured, not guessed: around every ``select``
  the loop reads the thread's run-queue wait (``/proc/thread-self/schedstat``, ~1.5 µs);
  the wait accumulated between entering ``select`` and finishing the stamps is an upper
  bound on how much a CPU-starved client delayed those stamps. It is reported per
  request (``client_stall_ms``, ``ttft_stall_ms``) so loaded-machine samples can be
  told apart from a slow server.

Open loop (:meth:`StreamClient.run_open_loop`, figures in :mod:`.openloop`): each request is due
at a scheduled time; the loop sleeps in ``epoll`` until ~2 ms before it, then in ``select()`` on
the epoll descriptor (microsecond timeout; the thread's timer slack is 1 µs during the run), and
sends it on an idle pooled connection — or opens one, the wait being dispatch lag. Latencies run
from the scheduled time.
"""

from __future__ import annotations

import errno
import gc
import json
import os
import select
import selectors
import socket
import ssl
import time
from collections import deque
from time import perf_counter_ns
from typing import TYPE_CHECKING, Any, Callable, Sequence

from .errors import (
    EndpointAuthError,
    EndpointError,
    EndpointHTTPError,
    EndpointTimeout,
    EndpointUnreachable,
    NotOpenAIResponse,
    scrub,
)
from .hostload import CpuPressure
from .http import Origin, ProtocolError, ResponseParser, build_request, header_problem, parse_base_url, text_or_error
from .derive import fill_stream_figures, fill_timings
from .openai_stream import CONTENT, REASONING, ChunkError, StreamDecoder, describe_non_sse, end_problem, error_detail
from .results import Progress, RequestResult, RequestSpec, RunResult
from .sse import SSEParser

if TYPE_CHECKING:
    from .openloop import OpenLoopResult

__all__ = ["StreamClient"]

RECV_SIZE = 256 * 1024
CHECK_INTERVAL_S = 0.1
PROGRESS_INTERVAL_S = 2.0
#: open loop: epoll sleeps in whole milliseconds (rounded up), so the last stretch before a
#: scheduled send is waited for with select() on the epoll descriptor (microseconds)
FINE_WAIT_NS = 2_000_000
#: open loop: the default start is this long after the run's set-up (its first sends on time)
START_LEAD_NS = 2_000_000
#: open loop: the measuring thread's timer slack during the run (default 50 µs: every timed wake
#: for a scheduled send would be that much late)
OPEN_LOOP_TIMER_SLACK_NS = 1_000
COLLECT_LIMIT = 64 * 1024
#: a TLS handshake with no answer for this long: check whether the port speaks plain HTTP
TLS_STALL_PROBE_S = 2.0
#: stop a run when its first requests all time out: this many in a row before any success
#: (after a success: EARLY_STOP_AFTER_OK in a row), instead of waiting the timeout for each
EARLY_STOP_TIMEOUTS = 2
EARLY_STOP_AFTER_OK = 3

# connection states
CONNECTING, HANDSHAKE, IDLE, BUSY, CLOSED = range(5)
# response modes
M_SSE, M_NOT_SSE, M_HTTPERR = range(3)

_EVR = selectors.EVENT_READ
_EVW = selectors.EVENT_WRITE
_WANT = (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError)


def _os_reason(err: int | BaseException) -> str:
    if isinstance(err, BaseException):
        if isinstance(err, ConnectionRefusedError):
            return "connection refused"
        if isinstance(err, (socket.timeout, TimeoutError)):
            return "connection timed out"
        if isinstance(err, ssl.SSLCertVerificationError):
            return f"TLS certificate verification failed ({err.verify_message})"
        if isinstance(err, ssl.SSLError):
            if err.reason in ("WRONG_VERSION_NUMBER", "HTTP_REQUEST", "RECORD_LAYER_FAILURE",
                              "PACKET_LENGTH_TOO_LONG", "UNKNOWN_PROTOCOL"):
                return (f"TLS handshake failed ({err.reason}): the server did not answer in TLS "
                        "(a plain-HTTP server? then use http://)")
            return f"TLS handshake failed ({err.reason or err})"
        if isinstance(err, socket.gaierror):
            return f"cannot resolve host ({err.strerror})"
        code = getattr(err, "errno", None)
        if code is None:
            return str(err) or type(err).__name__
        err = code
    if err == errno.ECONNREFUSED:
        return "connection refused"
    if err == errno.ETIMEDOUT:
        return "connection timed out"
    return (errno.errorcode.get(err, str(err)) + ": " + os.strerror(err)).lower()


def _timer_slack(ns: int | None) -> int | None:
    """Set this thread's timer slack (Linux prctl; the kernel may end a timed wait this much
    late, 50 µs by default) and return the previous value; None where it cannot be done."""
    if ns is None:
        return None
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        old = libc.prctl(30, 0, 0, 0, 0)  # PR_GET_TIMERSLACK
        if old < 0 or libc.prctl(29, int(ns), 0, 0, 0) != 0:  # PR_SET_TIMERSLACK
            return None
        return int(old)
    except (OSError, AttributeError, ValueError):
        return None


def check_schedule(specs: Sequence[RequestSpec], offsets: Sequence[float],
                   max_lag_ms: float | None) -> tuple[list[float], float]:
    """An open-loop schedule checked before anything is sent (one process or several): returns the
    offsets as floats and the dispatch-lag bound (default :data:`.openloop.MAX_LAG_MS`); a bad one
    raises one ValueError line."""
    from .openloop import MAX_LAG_MS

    offs = [float(x) for x in offsets]
    if len(offs) != len(specs):
        raise ValueError(f"open loop needs one offset per request: {len(specs)} requests, {len(offs)} offsets")
    if not specs:
        raise ValueError("open loop needs at least one request")
    if any(not (x >= 0) or x == float("inf") for x in offs) or any(b < a for a, b in zip(offs, offs[1:])):
        raise ValueError("open-loop offsets must be finite, >= 0 and non-decreasing (seconds from the start)")
    lag_bound = MAX_LAG_MS if max_lag_ms is None else float(max_lag_ms)
    if not lag_bound > 0:
        raise ValueError(f"max_lag_ms must be > 0, not {max_lag_ms!r}")
    return offs, lag_bound


class _SchedStat:
    """Run-queue wait (ns) of the thread that created it, from /proc/thread-self/schedstat."""

    def __init__(self) -> None:
        self.fd: int | None = None
        try:
            self.fd = os.open("/proc/thread-self/schedstat", os.O_RDONLY)
            self.read()
        except (OSError, ValueError, IndexError):
            self.close()

    def read(self) -> int:
        return int(os.pread(self.fd, 128, 0).split()[1])  # type: ignore[arg-type]

    def close(self) -> None:
        if self.fd is not None:
            try:
                os.close(self.fd)
            except OSError:
                pass
        self.fd = None


class _Conn:
    __slots__ = ("id", "sock", "state", "served", "req", "out", "deadline", "open_ns",
                 "connect_ms", "mask", "measured_open", "hs_since", "hs_probed", "req_deadline")

    def __init__(self, cid: int, sock: socket.socket) -> None:
        self.id = cid
        self.sock = sock
        self.state = CONNECTING
        self.served = 0
        self.req: _Req | None = None
        self.out = b""
        self.deadline = 0.0
        self.open_ns = perf_counter_ns()
        self.connect_ms: float | None = None
        self.mask = 0
        self.measured_open = False
        self.hs_since = 0.0  # TLS handshake started (monotonic)
        self.hs_probed = False
        self.req_deadline = 0.0  # the request's total deadline (monotonic; 0: none)


class _Req:
    __slots__ = ("idx", "spec", "data", "res", "parser", "sse", "dec", "mode", "reads", "tok_ns",
                 "first_tok_read", "collected", "send_ns", "retried", "head_seen", "content_ns", "stall_ns",
                 "sched_ns")

    def __init__(self, idx: int, spec: RequestSpec, data: bytes, warmup: bool,
                 result_type: type[RequestResult] = RequestResult) -> None:
        self.idx = idx
        self.spec = spec
        self.data = data
        self.res = result_type(index=idx, warmup=warmup, api=spec.api, model=spec.model,
                               requested_max_tokens=spec.max_tokens, ignore_eos=spec.ignore_eos)
        self.retried = False
        self.sched_ns = 0  # open loop: the scheduled send time, the origin of every latency
        self.reset()

    def reset(self) -> None:
        self.parser = ResponseParser()
        self.sse = SSEParser()
        self.dec = StreamDecoder()
        self.mode = M_SSE
        self.reads = 0
        self.tok_ns: list[int] = []
        self.first_tok_read = 0
        self.collected: list[bytes] = []
        self.send_ns = 0
        self.head_seen = False
        self.content_ns = 0
        self.stall_ns = 0


class StreamClient:
    """Measuring client for one OpenAI-compatible endpoint (one run at a time: not
    thread-safe, except :meth:`progress`; the garbage collector is paused while a run is in
    progress).

    ``base_url`` is the API base (``http://host:port/v1``); ``api_key`` is sent as a
    bearer token and appears in no message, repr or result. ``timeout_s`` bounds a
    connect and any silence while a response is streaming. ``verify`` is for https:
    True (system CAs), False (no verification) or a CA bundle path. ``stop_early`` (default
    True) ends a run whose first requests all time out, with one line saying so.
    """

    def __init__(self, base_url: str, api_key: str | None = None, timeout_s: float = 60.0,
                 extra_headers: dict[str, str] | None = None, *, verify: bool | str = True,
                 pause_gc: bool = True, stop_early: bool = True) -> None:
        self._origin: Origin = parse_base_url(base_url)
        # stop a run whose requests time out in a row (a dead endpoint); off where hung streams are
        # the outcome being measured (probes.drain.measure_drop)
        self.stop_early = stop_early
        self.base_url = self._origin.base_url
        self.root_url = self._origin.root_url
        self._key = api_key
        self.timeout_s = float(timeout_s)
        self._extra_headers = dict(extra_headers or {})
        self._verify = verify
        self._pause_gc = pause_gc
        self._ssl_ctx: ssl.SSLContext | None = None
        self._addr: tuple[int, Any] | None = None
        self._sel = selectors.DefaultSelector()
        self._conns: list[_Conn] = []
        self._idle: deque[_Conn] = deque()
        self._next_id = 1
        self._measuring = False
        self.connections_opened_total = 0
        # per-drive state
        self._pending: deque[_Req] = deque()
        self._active = 0
        # even while _pending/_active agree; odd while a request moves between them (a seqlock for
        # progress(), read from other threads; bumped per request, never per token)
        self._seq = 0
        self._t_enq = 0
        self._sched: _SchedStat | None = None
        self._wake_stall_ns = 0
        #: total per-request deadline (s) from send to the end of the response, besides the idle
        #: timeout (None: only the idle timeout); ``run(deadline_s=...)`` overrides it per run
        self.request_deadline_s: float | None = None
        self._deadline_s: float | None = None
        self._timeouts_in_a_row = 0
        self._any_ok = False
        self._timeout_reasons: list[str] = []

    # ------------------------------------------------------------------ public
    def __repr__(self) -> str:
        return f"StreamClient({self.base_url!r}, api_key={'***' if self._key else None})"

    def __enter__(self) -> "StreamClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for c in list(self._conns):
            self._discard(c)
        self._idle.clear()
        if self._sel is not None:  # its epoll descriptor too (a client is reused: a new one on demand)
            self._sel.close()
            self._sel = None

    def _begin_measuring(self) -> tuple[bool, float]:
        """Before a timed region (closed or open loop): GC paused if asked, the client's run-queue
        reader opened; returns (GC was enabled, 1-min load average) for the run's end."""
        gc_was = gc.isenabled()
        if self._pause_gc:
            gc.collect()
            gc.disable()
        self._sched = _SchedStat()
        if self._sched.fd is None:
            self._sched = None
        return gc_was, os.getloadavg()[0]

    def _open_window(self) -> tuple[CpuPressure, int | None, float]:
        """The measured region starts: the host's CPU pressure, the client's run-queue delay and
        CPU time from now (for :meth:`_close_window`)."""
        self._measuring = True
        psi = CpuPressure()
        runq0 = self._sched.read() if self._sched is not None else None
        return psi, runq0, time.process_time()

    def _close_window(self, window: tuple[CpuPressure, int | None, float]
                      ) -> tuple[float, float | None, dict[str, Any] | None]:
        """The measured region ends: (client CPU s, run-queue delay ms or None, CPU pressure)."""
        psi, runq0, cpu0 = window
        cpu = time.process_time() - cpu0
        runq = (self._sched.read() - runq0) / 1e6 if self._sched is not None and runq0 is not None else None
        return cpu, runq, psi.window()

    def _end_measuring(self, gc_was: bool) -> None:
        """After a timed region, however it ended: the run-queue reader closed, GC as it was."""
        self._measuring = False
        if self._sched is not None:
            self._sched.close()
            self._sched = None
        if gc_was:
            gc.enable()

    def connections(self) -> list[socket.socket]:
        """The pool's open sockets (for inspection: TCP_NODELAY, peer address...)."""
        return [c.sock for c in self._conns if c.state != CLOSED]

    def open_connections(self, n: int) -> None:
        """Open (TCP + TLS) connections until the pool holds ``n``; outside any timing."""
        self._ensure(n)

    def progress(self, min_tokens: int = 1) -> Progress:
        """Where the current run stands, readable from another thread while :meth:`run` runs
        (zeros between runs; warm-up requests count while they run): requests in flight that
        received ``min_tokens`` token events or more, requests in flight, requests not sent yet
        (counts from one consistent moment).

        Lock-free: the loop never waits for a reader and does no extra work per token.
        """
        while True:
            seq = self._seq
            if seq & 1:  # the loop is moving a request between queue and flight
                time.sleep(0)
                continue
            active = self._active
            pending = len(self._pending)
            conns = list(self._conns)  # one C-level copy under the GIL
            if self._seq == seq:
                break
        streaming = 0
        for c in conns:
            req = c.req
            if req is not None and len(req.tok_ns) >= min_tokens:
                streaming += 1
        return Progress(streaming=streaming, in_flight=active, not_sent=pending)

    def run(self, specs: Sequence[RequestSpec], concurrency: int = 1, warmup: int = 2,
            progress: Callable[[int, int], None] | None = None, *,
            deadline_s: float | None = None) -> RunResult:
        """Send ``warmup`` unmeasured requests (cycling over ``specs``), then ``specs``,
        keeping at most ``concurrency`` in flight (closed loop). Results come back in
        submission order. Raises :class:`EndpointAuthError`, :class:`EndpointUnreachable`,
        :class:`NotOpenAIResponse` or :class:`EndpointTimeout` (with ``partial_results``)
        when the run cannot mean anything; other failures are recorded per request
        (``ok=False``, ``error``).

        ``deadline_s`` bounds each request from its send to the end of its response (a
        stream that never ends, a server sending only ``: ping`` comments); default
        :attr:`request_deadline_s`. The idle timeout (``timeout_s``) still bounds silence.
        """
        self._deadline_s = deadline_s if deadline_s is not None else self.request_deadline_s
        if self._deadline_s is not None and not self._deadline_s > 0:
            raise ValueError(f"deadline_s must be > 0, not {self._deadline_s!r}")
        specs = list(specs)
        concurrency = max(1, int(concurrency))
        warm_specs = [specs[i % len(specs)] for i in range(warmup)] if specs else []
        # serialise everything before any clock starts
        warm_reqs = [_Req(i, s, self._request_bytes(s), True) for i, s in enumerate(warm_specs)]
        reqs = [_Req(i, s, self._request_bytes(s), False) for i, s in enumerate(specs)]
        gc_was, load0 = self._begin_measuring()
        try:
            self._poll(0)  # drop pooled connections the server closed while idle (keep-alive timeout)
            self._ensure(min(concurrency, max(len(reqs), len(warm_reqs), 1)))
            warm = self._drive(warm_reqs, concurrency) if warm_reqs else []
            opened0 = self.connections_opened_total
            window = self._open_window()
            t0 = perf_counter_ns()
            results = self._drive(reqs, concurrency, progress)
            wall = (perf_counter_ns() - t0) / 1e9
            cpu, runq, pressure = self._close_window(window)
            return RunResult(results=results, warmup_results=warm, wall_s=wall,
                             concurrency=concurrency,
                             connections_opened=self.connections_opened_total - opened0,
                             client_cpu_s=cpu, loadavg_before=load0, loadavg_after=os.getloadavg()[0],
                             client_runq_ms=runq, cpu_pressure=pressure)
        finally:
            self._end_measuring(gc_was)

    def run_one(self, spec: RequestSpec, *, deadline_s: float | None = None) -> RequestResult:
        """One measured request (no warm-up)."""
        return self.run([spec], concurrency=1, warmup=0, deadline_s=deadline_s).results[0]

    def run_open_loop(self, specs: Sequence[RequestSpec], offsets: Sequence[float], *,
                      deadline_s: float | None = None, connections: int | None = None, warmup: int = 0,
                      start_ns: int | None = None, max_lag_ms: float | None = None,
                      max_connections: int | None = None,
                      progress: Callable[[int, int], None] | None = None) -> "OpenLoopResult":
        """Open loop: send ``specs[i]`` at ``start + offsets[i]`` seconds, whatever is in flight
        (see :mod:`.openloop` for the figures and the saturation rule). Results come back in
        submission order, as :class:`~.openloop.OpenLoopRequestResult` whose latencies run from
        the *scheduled* send time.

        ``connections`` (default ``min(n, 64)``) are opened before the start, outside any
        timing; when every one is busy at a request's time, another is opened and the request
        waits for it: that wait is dispatch lag. ``max_connections`` (default: no limit) caps the
        pool: a due request then waits for a response to end (a client with a connection limit:
        its lag shows in every latency and in ``client_saturated``). ``warmup`` unmeasured requests go first in
        closed loop. ``start_ns`` (a ``perf_counter_ns`` time) is the common start; default
        right after the connections are open (a worker process gets its from the caller).
        Errors as :meth:`run`.
        """
        from .openloop import OpenLoopRequestResult, OpenLoopResult, summarize, with_contention

        specs = list(specs)
        offs, lag_bound = check_schedule(specs, offsets, max_lag_ms)
        self._deadline_s = deadline_s if deadline_s is not None else self.request_deadline_s
        if self._deadline_s is not None and not self._deadline_s > 0:
            raise ValueError(f"deadline_s must be > 0, not {self._deadline_s!r}")
        n_conn = max(1, int(connections)) if connections is not None else min(len(specs), 64)
        if max_connections is not None:
            if isinstance(max_connections, bool) or not isinstance(max_connections, int) or max_connections < 1:
                raise ValueError(f"max_connections must be an integer >= 1, not {max_connections!r}")
            n_conn = min(n_conn, max_connections)
        warm_reqs = [_Req(i, specs[i % len(specs)], self._request_bytes(specs[i % len(specs)]), True)
                     for i in range(warmup)]
        reqs = [_Req(i, s, self._request_bytes(s), False, OpenLoopRequestResult) for i, s in enumerate(specs)]
        offs_ns = [round(x * 1e9) for x in offs]
        gc_was, load0 = self._begin_measuring()
        slack0 = _timer_slack(OPEN_LOOP_TIMER_SLACK_NS)
        try:
            self._poll(0)
            if warm_reqs:
                self._ensure(min(n_conn, len(warm_reqs)))
                self._drive(warm_reqs, n_conn)
            self._ensure(n_conn)
            opened0 = self.connections_opened_total
            window = self._open_window()
            # the lead covers stamping every request (~0.1 µs each) before the first is due
            t_start = perf_counter_ns() + START_LEAD_NS + 200 * len(reqs) if start_ns is None else int(start_ns)
            for r, off_ns in zip(reqs, offs_ns):
                r.sched_ns = t_start + off_ns
            results = self._drive_open(reqs, progress, max_connections)
            t_end = perf_counter_ns()
            cpu, runq, pressure = self._close_window(window)
        finally:
            _timer_slack(slack0)
            self._end_measuring(gc_was)
        for r in reqs:
            res = r.res
            res.scheduled_ns = r.sched_ns  # type: ignore[attr-defined]
            if r.send_ns:
                res.dispatch_lag_ms = res.queue_ms = (r.send_ns - r.sched_ns) / 1e6  # type: ignore[attr-defined]
        figures = summarize(results, max_lag_ms=lag_bound)  # type: ignore[arg-type]
        figures["client_saturated"] = with_contention(figures["client_saturated"], runq, pressure)
        return OpenLoopResult(results=results, warmup_results=[r.res for r in warm_reqs],
                              wall_s=max(0, t_end - t_start) / 1e9, concurrency=len(self._conns),
                              connections_opened=self.connections_opened_total - opened0, client_cpu_s=cpu,
                              loadavg_before=load0, loadavg_after=os.getloadavg()[0], client_runq_ms=runq,
                              cpu_pressure=pressure, max_lag_ms=lag_bound, start_ns=t_start, **figures)

    def _drive_open(self, reqs: list[_Req], progress: Callable[[int, int], None] | None,
                    max_connections: int | None = None) -> list[RequestResult]:
        """Send each request at its ``sched_ns`` (sorted); a due request with no idle connection
        waits in ``_pending`` (and a connection is opened for it)."""
        n = len(reqs)
        i = 0
        self._reset_drive()
        pending = self._pending
        idle = self._idle
        next_check = time.monotonic() + CHECK_INTERVAL_S
        next_progress = time.monotonic() + PROGRESS_INTERVAL_S
        pc = perf_counter_ns
        fine_ns = FINE_WAIT_NS
        try:
            while i < n or pending or self._active:
                now_ns = pc()
                while i < n and reqs[i].sched_ns <= now_ns:
                    self._seq += 1
                    pending.append(reqs[i])
                    self._seq += 1
                    i += 1
                while pending and idle:
                    self._send_next()
                if pending:
                    opening = sum(1 for c in self._conns if c.state in (CONNECTING, HANDSHAKE))
                    want = len(pending) - opening
                    if max_connections is not None:
                        want = min(want, max_connections - len(self._conns))
                    for _ in range(want):
                        self._open()
                now = time.monotonic()
                if now >= next_check:
                    next_check, next_progress = self._checkpoint(now, next_progress, progress, i, n)
                if not (i < n or pending or self._active):
                    break
                wait_s = next_check - now
                if i < n:
                    left_ns = reqs[i].sched_ns - pc()
                    if left_ns <= 0:
                        continue
                    if left_ns < wait_s * 1e9:
                        if left_ns <= fine_ns:
                            # epoll waits in whole milliseconds: the last stretch with select's µs
                            if self._sel is None:
                                self._sel = selectors.DefaultSelector()
                            if select.select([self._sel.fileno()], [], [], left_ns / 1e9)[0]:
                                self._poll(0)
                            continue
                        wait_s = (left_ns - fine_ns) / 1e9
                self._poll(max(0.0, wait_s))
        except EndpointError as e:
            self._abort_drive(reqs, e)
            raise
        return [r.res for r in reqs]

    def request(self, method: str, path: str, body: bytes | str | dict | None = None,
                headers: dict[str, str] | None = None, *, root: bool = False, deadline_s: float | None = None,
                raise_auth: bool = True) -> tuple[int, dict[str, str], bytes]:
        """A plain blocking request on its own connection (not timed, not pooled).

        ``path`` is relative to the base URL (``"/models"`` → ``/v1/models``), or to the
        server root with ``root=True``. Returns ``(status, headers, body)`` with
        lower-case header names. Raises :class:`EndpointUnreachable` and, for 401/403 unless
        ``raise_auth`` is False, :class:`EndpointAuthError`. ``timeout_s`` bounds each read;
        ``deadline_s`` bounds the whole answer (a server that trickles bytes forever).
        """
        if isinstance(body, dict):
            body = json.dumps(body).encode()
            headers = {"Content-Type": "application/json", **(headers or {})}
        elif isinstance(body, str):
            body = body.encode()
        full = (("" if root else self._origin.base_path) + "/" + path.lstrip("/"))
        hdrs = {"User-Agent": "pytest-inference", "Accept": "*/*", "Connection": "close",
                **self._auth_headers(), **self._extra_headers, **(headers or {})}
        data = build_request(method.upper(), self._origin, full, body, hdrs)
        end = None if deadline_s is None else time.monotonic() + deadline_s
        sock = self._connect_blocking()
        try:
            sock.settimeout(self.timeout_s)
            sock.sendall(data)
            parser = ResponseParser(head_only=method.upper() == "HEAD")
            out: list[bytes] = []
            while not parser.done:
                if end is not None:
                    left = end - time.monotonic()
                    if left <= 0:
                        raise EndpointHTTPError(f"{self.root_url}{full}: no complete answer within "
                                                f"{deadline_s:g} s")
                    sock.settimeout(min(self.timeout_s, left))
                try:
                    d = sock.recv(RECV_SIZE)
                except (socket.timeout, TimeoutError):
                    if end is not None and time.monotonic() >= end:
                        raise EndpointHTTPError(f"{self.root_url}{full}: no complete answer within "
                                                f"{deadline_s:g} s") from None
                    raise EndpointHTTPError(f"{self.root_url}{full}: timed out after {self.timeout_s:g} s "
                                            "waiting for the response") from None
                except OSError as e:
                    raise EndpointHTTPError(f"{self.root_url}{full}: connection failed mid-response "
                                            f"({_os_reason(e)})") from None
                if not d:
                    try:
                        parser.feed_eof()
                    except ProtocolError as e:
                        raise EndpointHTTPError(scrub(f"{self.root_url}{full}: {e}", self._key)) from None
                    break
                try:
                    out.append(parser.feed(d))
                except ProtocolError as e:
                    raise NotOpenAIResponse(scrub(f"{self.root_url}{full}: {e}", self._key)) from None
        finally:
            sock.close()
        if raise_auth and parser.status in (401, 403):
            raise self._auth_error(parser.status)
        return parser.status, dict(parser.headers), b"".join(out)

    def get_text(self, path: str) -> str:
        """GET a path from the server root (``"/metrics"``, ``"/health"``) as text;
        raises :class:`EndpointHTTPError` unless the status is 2xx (:func:`.http.get_text`)."""
        status, headers, body = self.request("GET", path, root=True)
        return text_or_error(status, headers, body, f"{self.root_url}/{path.lstrip('/')}", self._key)

    # -------------------------------------------------------------- internals
    def _auth_headers(self) -> dict[str, str]:
        if not self._key:
            return {}
        problem = header_problem(self._key)
        if problem:  # never quoted, never chained: the message is all that leaves
            raise EndpointAuthError(f"the API key {problem}: it cannot be sent in an HTTP "
                                    "Authorization header (check the variable's value)", 0)
        return {"Authorization": f"Bearer {self._key}"}

    def _auth_error(self, status: int) -> EndpointAuthError:
        msg = f"endpoint rejected the API key (HTTP {status})"
        if not self._key:
            msg += ": no API key was given"
        return EndpointAuthError(msg, status)

    def _unreachable(self, why: str) -> EndpointUnreachable:
        return EndpointUnreachable(f"cannot connect to {self.base_url}: {why}")

    def _request_bytes(self, spec: RequestSpec) -> bytes:
        body = json.dumps(spec.body(), separators=(",", ":"), ensure_ascii=False).encode()
        hdrs = {"Content-Type": "application/json", "Accept": "text/event-stream",
                "User-Agent": "pytest-inference", **self._auth_headers(), **self._extra_headers,
                **(spec.headers or {})}
        return build_request("POST", self._origin, self._origin.base_path + spec.path, body, hdrs)

    def _resolve(self) -> tuple[int, Any]:
        if self._addr is None:
            o = self._origin
            try:
                infos = socket.getaddrinfo(o.host, o.port, type=socket.SOCK_STREAM)
            except socket.gaierror as e:
                raise self._unreachable(_os_reason(e)) from None
            fam, _, _, _, addr = infos[0]
            self._addr = (fam, addr)
        return self._addr

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl_ctx is None:
            v = self._verify
            if v is False:
                ctx = ssl.create_default_context()
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            elif isinstance(v, str):
                ctx = ssl.create_default_context(cafile=v)
            else:
                ctx = ssl.create_default_context()
            ctx.set_alpn_protocols(["http/1.1"])
            self._ssl_ctx = ctx
        return self._ssl_ctx

    def _connect_blocking(self) -> socket.socket:
        fam, addr = self._resolve()
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.settimeout(self.timeout_s)
        try:
            s.connect(addr)
            if self._origin.tls:
                s = self._ssl_context().wrap_socket(s, server_hostname=self._origin.host,
                                                    do_handshake_on_connect=False)
                self._blocking_handshake(s)  # type: ignore[arg-type]
        except (OSError, ssl.SSLError) as e:
            s.close()
            raise self._unreachable(_os_reason(e)) from None
        except EndpointError:
            s.close()
            raise
        return s

    def _blocking_handshake(self, s: ssl.SSLSocket) -> None:
        """The TLS handshake within ``timeout_s``; when it stalls, ask the port whether it
        speaks plain HTTP (an https:// URL for an http server) and say so at once."""
        end = time.monotonic() + self.timeout_s
        probed = False
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise socket.timeout("TLS handshake timed out")
            s.settimeout(left if probed else min(left, TLS_STALL_PROBE_S))
            try:
                s.do_handshake()
                s.settimeout(self.timeout_s)
                return
            except (socket.timeout, TimeoutError):
                if not probed:
                    probed = True
                    if self._speaks_plain_http():
                        raise self._plain_http() from None

    def _plain_http(self) -> EndpointUnreachable:
        return self._unreachable(f"the TLS handshake got no answer in {TLS_STALL_PROBE_S:g} s and the port "
                                 "answers plain HTTP: use http:// instead of https://")

    def _speaks_plain_http(self) -> bool:
        """Does the endpoint's port answer a plain HTTP request (no key sent)? Blocking, ~2 s at most."""
        fam, addr = self._resolve()
        try:
            with socket.socket(fam, socket.SOCK_STREAM) as p:
                p.settimeout(TLS_STALL_PROBE_S)
                p.connect(addr)
                p.sendall(f"HEAD / HTTP/1.1\r\nHost: {self._origin.host_header}\r\n"
                          "Connection: close\r\n\r\n".encode("latin-1", "replace"))
                got = b""
                while len(got) < 5:
                    d = p.recv(64)
                    if not d:
                        break
                    got += d
                return got.startswith(b"HTTP/")
        except OSError:
            return False

    # connection pool ---------------------------------------------------------
    def _set_mask(self, c: _Conn, mask: int) -> None:
        if c.mask != mask:
            self._sel.modify(c.sock, mask, c)
            c.mask = mask

    def _open(self) -> _Conn:
        fam, addr = self._resolve()
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.setblocking(False)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        err = s.connect_ex(addr)
        if err not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EALREADY):
            s.close()
            raise self._unreachable(_os_reason(err))
        c = _Conn(self._next_id, s)
        self._next_id += 1
        c.deadline = time.monotonic() + self.timeout_s
        c.measured_open = self._measuring
        self._conns.append(c)
        self.connections_opened_total += 1
        if self._sel is None:
            self._sel = selectors.DefaultSelector()
        self._sel.register(s, _EVW, c)
        c.mask = _EVW
        return c

    def _discard(self, c: _Conn) -> None:
        if c.state == CLOSED:
            return
        c.state = CLOSED
        try:
            self._sel.unregister(c.sock)
        except (KeyError, ValueError):
            pass
        try:
            c.sock.close()
        except OSError:
            pass
        if c in self._conns:
            self._conns.remove(c)
        try:
            self._idle.remove(c)
        except ValueError:
            pass

    def _ready(self, c: _Conn) -> None:
        c.state = IDLE
        c.connect_ms = (perf_counter_ns() - c.open_ns) / 1e6
        self._set_mask(c, _EVR)  # idle sockets stay watched: a server close shows up as EOF
        self._idle.append(c)

    def _handshake(self, c: _Conn) -> None:
        try:
            c.sock.do_handshake()  # type: ignore[attr-defined]
        except ssl.SSLWantReadError:
            self._set_mask(c, _EVR)
            return
        except ssl.SSLWantWriteError:
            self._set_mask(c, _EVW)
            return
        except (ssl.SSLError, OSError) as e:
            self._discard(c)
            raise self._unreachable(_os_reason(e)) from None
        self._ready(c)

    def _on_connect(self, c: _Conn) -> None:
        err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            self._discard(c)
            raise self._unreachable(_os_reason(err))
        if not self._origin.tls:
            self._ready(c)
            return
        self._sel.unregister(c.sock)
        c.mask = 0
        try:
            c.sock = self._ssl_context().wrap_socket(c.sock, server_hostname=self._origin.host,
                                                     do_handshake_on_connect=False)
        except (ssl.SSLError, OSError) as e:
            c.state = CLOSED
            self._conns.remove(c)
            raise self._unreachable(_os_reason(e)) from None
        self._sel.register(c.sock, _EVR, c)
        c.mask = _EVR
        c.state = HANDSHAKE
        c.hs_since = time.monotonic()
        self._handshake(c)

    def _ensure(self, n: int) -> None:
        while len(self._conns) < n:
            self._open()
        while any(c.state in (CONNECTING, HANDSHAKE) for c in self._conns):
            self._poll(CHECK_INTERVAL_S)
            self._check_deadlines()

    # the loop ------------------------------------------------------------------
    def _drive(self, reqs: list[_Req], concurrency: int,
               progress: Callable[[int, int], None] | None = None) -> list[RequestResult]:
        """Run ``reqs``; ``progress(done, total)`` is called at most every PROGRESS_INTERVAL_S
        from the deadline check (never from a socket wake, so it delays no timestamp)."""
        self._reset_drive(reqs)
        self._t_enq = perf_counter_ns()
        next_check = time.monotonic() + CHECK_INTERVAL_S
        next_progress = time.monotonic() + PROGRESS_INTERVAL_S
        try:
            while self._pending or self._active:
                self._dispatch(concurrency)
                if not (self._pending or self._active):
                    break
                now = time.monotonic()
                if now >= next_check:
                    next_check, next_progress = self._checkpoint(now, next_progress, progress, len(reqs), len(reqs))
                self._poll(max(0.0, next_check - now))
        except EndpointError as e:
            self._abort_drive(reqs, e)
            raise
        return [r.res for r in reqs]

    def _checkpoint(self, now: float, next_progress: float, progress: Callable[[int, int], None] | None,
                    due: int, total: int) -> tuple[float, float]:
        """A drive's periodic check (every CHECK_INTERVAL_S, never on a socket wake): the deadlines,
        and ``progress(done, total)`` at most every PROGRESS_INTERVAL_S, done being the ``due``
        requests less those queued or in flight. Returns the next check and progress times."""
        self._check_deadlines()
        if progress is not None and now >= next_progress:
            progress(due - len(self._pending) - self._active, total)
            next_progress = now + PROGRESS_INTERVAL_S
        return now + CHECK_INTERVAL_S, next_progress

    def _reset_drive(self, reqs: Sequence[_Req] = ()) -> None:
        """A drive's queue holds ``reqs`` and nothing is in flight (under the seqlock)."""
        self._seq += 1
        self._pending = deque(reqs)
        self._active = 0
        self._seq += 1

    def _abort_drive(self, reqs: list[_Req], e: EndpointError) -> None:
        """A fatal error: in-flight responses are garbage now. Drops their connections, empties the
        drive and hangs what the cut streams had said so far on ``e.partial_results``."""
        for c in list(self._conns):
            if c.state != IDLE:
                self._discard(c)
        self._reset_drive()
        for r in reqs:
            if r.send_ns:
                r.dec.fill(r.res)
        e.partial_results = [r.res for r in reqs]  # type: ignore[attr-defined]

    def _dispatch(self, concurrency: int) -> None:
        pending = self._pending
        idle = self._idle
        while pending and self._active < concurrency:
            if not idle:
                want = min(concurrency, self._active + len(pending))
                while len(self._conns) < want:
                    self._open()
                return
            self._send_next()

    def _send_next(self) -> None:
        """The next pending request onto the next idle connection (counted in flight under the
        seqlock: :meth:`progress` never sees it in both places or in neither)."""
        c = self._idle.popleft()
        self._seq += 1
        req = self._pending.popleft()
        self._active += 1
        self._seq += 1
        self._send(c, req)

    def _send(self, c: _Conn, req: _Req) -> None:
        """Write ``req`` on ``c`` (the caller counted it in flight)."""
        c.state = BUSY
        c.req = req
        res = req.res
        res.connection_id = c.id
        res.connection_reused = c.served > 0
        if c.served == 0 and c.measured_open:
            res.connect_ms = c.connect_ms
        data = req.data
        t = perf_counter_ns()
        try:
            n = c.sock.send(data)
        except _WANT:
            n = 0
        except OSError as e:
            req.send_ns = t
            self._conn_failed(c, req, e, t)
            return
        req.send_ns = t
        res.send_ns = t
        res.queue_ms = (t - self._t_enq) / 1e6
        now = time.monotonic()
        c.deadline = now + self.timeout_s
        c.req_deadline = now + self._deadline_s if self._deadline_s else 0.0
        if n < len(data):
            c.out = data[n:]
            self._set_mask(c, _EVR | _EVW)

    def _flush(self, c: _Conn) -> None:
        try:
            n = c.sock.send(c.out)
        except _WANT:
            return
        except OSError as e:
            self._conn_failed(c, c.req, e, perf_counter_ns())  # type: ignore[arg-type]
            return
        c.out = c.out[n:]
        if not c.out:
            self._set_mask(c, _EVR)

    def _poll(self, timeout: float) -> None:
        sched = self._sched
        rd0 = sched.read() if sched is not None else 0
        if self._sel is None:
            self._sel = selectors.DefaultSelector()
        events = self._sel.select(timeout)
        if not events:
            return
        stamped = []
        other = []
        pc = perf_counter_ns
        for key, mask in events:
            c = key.data
            st = c.state
            if mask & _EVR and (st == BUSY or st == IDLE):
                sock = c.sock
                try:
                    data = sock.recv(RECV_SIZE)
                    if data and self._origin.tls:
                        data = self._drain_tls(sock, data)
                except _WANT:
                    data = None
                except OSError as e:
                    data = e
                stamped.append((c, data, pc()))
                if mask & _EVW:
                    other.append(c)
            else:
                other.append(c)
        self._wake_stall_ns = sched.read() - rd0 if sched is not None else 0
        for c, data, t in stamped:
            if data is not None and c.state != CLOSED:
                self._on_data(c, data, t)
        for c in other:
            st = c.state
            if st == CONNECTING:
                self._on_connect(c)
            elif st == HANDSHAKE:
                self._handshake(c)
            elif st == BUSY and c.out:
                self._flush(c)

    @staticmethod
    def _drain_tls(sock: Any, data: bytes) -> bytes:
        parts = [data]
        while True:
            try:
                d = sock.recv(RECV_SIZE)
            except _WANT:
                break
            if not d:
                break
            parts.append(d)
        return b"".join(parts) if len(parts) > 1 else data

    def _check_deadlines(self) -> None:
        now = time.monotonic()
        for c in list(self._conns):
            if c.state == HANDSHAKE and not c.hs_probed and now - c.hs_since > TLS_STALL_PROBE_S:
                c.hs_probed = True
                if self._speaks_plain_http():
                    self._discard(c)
                    raise self._plain_http()
            if c.deadline and now > c.deadline:
                if c.state in (CONNECTING, HANDSHAKE):
                    self._discard(c)
                    raise self._unreachable(f"connection timed out after {self.timeout_s:g} s")
                if c.state == BUSY and c.req is not None:
                    req = c.req
                    self._fail(c, req, f"timed out: no data for {self.timeout_s:g} s "
                                       f"({req.reads} reads, {len(req.tok_ns)} token events so far)",
                               timed_out=True)
            elif c.req_deadline and now > c.req_deadline and c.state == BUSY and c.req is not None:
                req = c.req
                self._fail(c, req, f"request deadline of {self._deadline_s:g} s exceeded: the response had "
                                   f"not ended ({req.reads} reads, {len(req.tok_ns)} token events so far)",
                           timed_out=True)
        self._maybe_stop_early()

    def _maybe_stop_early(self) -> None:
        if not self.stop_early:
            return
        n = self._timeouts_in_a_row
        if n >= (EARLY_STOP_AFTER_OK if self._any_ok else EARLY_STOP_TIMEOUTS):
            first = "" if self._any_ok else "the first "
            why = self._timeout_reasons[-1] if self._timeout_reasons else "timed out"
            self._timeouts_in_a_row = 0
            raise EndpointTimeout(scrub(f"stopped the run: {first}{n} requests in a row timed out "
                                        f"(last: {why}); the endpoint does not complete streams", self._key))

    def _fail(self, c: _Conn, req: _Req, error: str, timed_out: bool = False) -> None:
        res = req.res
        res.ok = False
        res.error = scrub(error, self._key)
        res.timed_out = timed_out
        if timed_out:
            self._timeouts_in_a_row += 1
            self._timeout_reasons = [res.error]
        else:
            self._timeouts_in_a_row = 0
        self._fill_times(req, 0)
        self._discard(c)
        c.req = None
        self._active -= 1

    def _conn_failed(self, c: _Conn, req: _Req, err: BaseException | None, t: int) -> None:
        """The connection broke (EOF or error) while ``req`` was on it."""
        if req.reads == 0 and c.served > 0 and not req.retried:
            # a kept-alive connection the server had closed: resend once on a new one
            self._discard(c)
            c.req = None
            req.retried = True
            req.res.retried = True
            req.reset()
            self._seq += 1
            self._active -= 1
            self._pending.appendleft(req)
            self._seq += 1
            return
        why = _os_reason(err) if err is not None else "server closed the connection"
        self._fail(c, req, f"connection lost mid-response after {req.reads} reads: {why}")

    def _on_data(self, c: _Conn, data: bytes | BaseException, t: int) -> None:
        req = c.req
        if req is None:  # an idle keep-alive connection: EOF means the server closed it
            self._discard(c)
            return
        if not isinstance(data, bytes) or not data:
            err = data if isinstance(data, BaseException) else None
            if err is None and req.head_seen:
                try:
                    req.parser.feed_eof()
                except ProtocolError:
                    pass
                if req.parser.done:
                    self._finish(c, req, t)
                    return
            self._conn_failed(c, req, err, t)
            return
        req.reads += 1
        if self._wake_stall_ns > req.stall_ns:
            req.stall_ns = self._wake_stall_ns
        c.deadline = time.monotonic() + self.timeout_s
        parser = req.parser
        try:
            body = parser.feed(data)
        except ProtocolError as e:
            if not req.head_seen:
                self._discard(c)
                raise NotOpenAIResponse(scrub(f"{self.base_url}{req.spec.path}: {e}", self._key)) from None
            self._fail(c, req, f"broken HTTP framing: {e}")
            return
        if not req.head_seen:
            if not parser.head_done:
                return
            req.head_seen = True
            self._on_head(c, req)
        if body:
            if req.mode == M_SSE:
                for ev in req.sse.feed(body):
                    self._on_event(c, req, ev[1], t)
            elif sum(map(len, req.collected)) < COLLECT_LIMIT:
                req.collected.append(body)
        if parser.done:
            self._finish(c, req, t)

    def _on_head(self, c: _Conn, req: _Req) -> None:
        p = req.parser
        st = p.status
        req.res.status = st
        if st in (401, 403):
            self._discard(c)
            raise self._auth_error(st)
        if 200 <= st < 300:
            req.mode = M_SSE if "text/event-stream" in p.headers.get("content-type", "").lower() else M_NOT_SSE
        else:
            req.mode = M_HTTPERR

    def _not_openai(self, req: _Req, why: str) -> NotOpenAIResponse:
        return NotOpenAIResponse(scrub(f"{self.base_url}{req.spec.path} answered HTTP {req.res.status} "
                                       f"but {why}", self._key))

    def _on_event(self, c: _Conn, req: _Req, data: bytes, t: int) -> None:
        try:
            kinds = req.dec.feed(data)
        except ChunkError as e:
            self._discard(c)
            raise self._not_openai(req, str(e)) from None
        if kinds:
            tok = req.tok_ns
            if not tok:
                req.first_tok_read = req.reads
                if self._sched is not None:
                    req.res.ttft_stall_ms = self._wake_stall_ns / 1e6
            tok.append(t)
            if req.reads == req.first_tok_read:
                req.res.first_read_token_events += 1
            if kinds & CONTENT and not req.content_ns:
                req.content_ns = t
            if kinds & REASONING:
                req.res.reasoning_events += 1

    def _fill_times(self, req: _Req, end_ns: int) -> None:
        res = req.res
        res.socket_reads = req.reads
        if self._sched is not None:
            res.client_stall_ms = req.stall_ns / 1e6
        fill_timings(res, req.sched_ns or req.send_ns, req.tok_ns, req.content_ns, end_ns)
        req.dec.fill(res)

    def _finish(self, c: _Conn, req: _Req, t: int) -> None:
        res = req.res
        p = req.parser
        if req.mode == M_NOT_SSE:
            body = b"".join(req.collected)
            self._discard(c)
            raise self._not_openai(req, describe_non_sse(p.headers.get("content-type", ""), body))
        if req.mode == M_HTTPERR:
            detail = scrub(self._short(b"".join(req.collected).decode("utf-8", "replace"), p.headers), self._key)
            res.error = str(EndpointHTTPError(f"HTTP {p.status} from {self.base_url}{req.spec.path}: {detail}",
                                              p.status, detail))
            res.ok = False
        else:
            if req.sse.pending.strip():
                # a last event without its blank line: accept it at end of stream
                for ev in req.sse.feed(b"\n\n"):
                    self._on_event(c, req, ev[1], t)
        self._fill_times(req, t)
        self._timeouts_in_a_row = 0
        if req.mode == M_SSE:
            fill_stream_figures(res)
            incomplete = end_problem(res.done_marker, res.finish_reason, p.framing, res.content_events,
                                     res.usage_reported)
            if req.dec.error:
                res.ok = False
                res.error = scrub(req.dec.error, self._key)
            elif incomplete:
                res.ok = False
                res.error = incomplete
            elif not req.tok_ns:
                res.ok = False
                res.error = (f"empty stream: no token in the response (finish_reason="
                             f"{res.finish_reason}, output_tokens={res.output_tokens})")
            else:
                res.ok = True
                self._any_ok = True
        c.req = None
        c.served += 1
        self._active -= 1
        if p.keep_alive:
            c.state = IDLE
            self._idle.append(c)
        else:
            self._discard(c)

    @staticmethod
    def _short(text: str, headers: dict[str, str]) -> str:
        return error_detail(text, headers.get("content-type", ""))
