"""What the server says it can hold, beside what it held during a load run.

*Announced* (:func:`announced`): vLLM states at start how many tokens its KV cache holds and how
many requests of its longest length fit at once (``GPU KV cache size: 1,508,320 tokens, Maximum
concurrency for 131,072 tokens per request: 11.51x``), how much memory the weights took and how
much it reserved up front as KV cache. The same figures are on ``/metrics`` as the labels of
``vllm:cache_config_info`` (vLLM 0.32: ``kv_cache_size_tokens``, ``kv_cache_max_concurrency``,
``kv_cache_memory_bytes``, ``num_gpu_blocks``, ``block_size``; older versions only the blocks and
the block size, whose product is the token count) and in the startup log
(:class:`pytest_inference.vllm.startup_log.VllmLogParser` facts). ``/metrics`` wins where both
say a figure; ``Announced.source`` names where each came from. Weight bytes and the tokens per
request of the concurrency figure come only from the log.

*Held* (:class:`MetricsWatch`): ``/metrics`` scraped by one daemon thread every ``interval_s``
(>= 0.2 s) while the load runs: ``vllm:kv_cache_usage_perc`` (older: ``gpu_cache_usage_perc``;
0..1), ``vllm:num_preemptions_total`` (a counter: its rise over the run), the gauges
``vllm:num_requests_running`` / ``_waiting``. ``start()`` takes a first scrape before the load
(the counter's base and the announced figures), ``stop()`` a last one after it; the gauges'
maxima and means are over the scrapes in between (the run itself).

Scraping costs the measuring process little: only the lines of the metrics above are handed to
``prometheus_client``'s parser (a whole vLLM page takes ~18 ms of the GIL to parse, the
selection ~1.5 ms). Give the watch its own connection (:func:`metrics_getter`), never the
:class:`~pytest_inference.engine.StreamClient` that drives the load (one run at a time, not
thread-safe).

It observes; it never judges and never makes up a figure: a server without ``/metrics``, a scrape
that failed, a counter that went back (a restart) or a gauge outside its range give a one-line
``problem`` and ``None`` where nothing sound was measured — never a zero.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from ..engine import prometheus
from ..engine.errors import EndpointError, EndpointHTTPError

__all__ = ["Announced", "ServerDuring", "MetricsWatch", "announced", "memory_note", "metrics_getter",
           "INFO_METRIC", "KV_USAGE_METRICS", "PREEMPTIONS_METRIC", "RUNNING_METRIC", "WAITING_METRIC",
           "FROM_METRICS", "FROM_LOG", "MIN_INTERVAL_S"]

INFO_METRIC = "vllm:cache_config_info"
#: the KV-cache usage gauge (0..1), newest name first
KV_USAGE_METRICS = ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")
PREEMPTIONS_METRIC = "vllm:num_preemptions_total"
RUNNING_METRIC = "vllm:num_requests_running"
WAITING_METRIC = "vllm:num_requests_waiting"
_WATCHED = frozenset((INFO_METRIC, *KV_USAGE_METRICS, PREEMPTIONS_METRIC, RUNNING_METRIC, WAITING_METRIC))
_WATCHED_PREFIXES = tuple(sorted(_WATCHED))

FROM_METRICS = "metrics cache_config_info"
FROM_LOG = "startup log"
GIB = 1024 ** 3
#: scraping more often than this would disturb the run it observes
MIN_INTERVAL_S = 0.2
#: two statements of one figure (log, /metrics) further apart than this are reported
_AGREE = 0.01


# --------------------------------------------------------------------------- announced


@dataclass
class Announced:
    """What the server says it can hold. ``None``: nobody stated it.

    ``kv_cache_tokens``: tokens the KV cache holds (all engines of the server together);
    ``max_concurrency``: how many requests of ``max_concurrency_tokens`` tokens each fit in it at
    once (vLLM's ``11.51x``); ``kv_cache_bytes`` / ``weights_bytes``: memory reserved for the KV
    cache / taken by the weights (from the startup log: what the first worker states, i.e. one
    device's share under tensor parallelism); ``block_size``: tokens per KV block. ``source``:
    figure name -> :data:`FROM_METRICS` or :data:`FROM_LOG`. ``problem``: one line when a
    statement could not be read or two statements disagree, else None.
    """

    kv_cache_tokens: int | None = None
    max_concurrency: float | None = None
    max_concurrency_tokens: int | None = None
    kv_cache_bytes: float | None = None
    weights_bytes: float | None = None
    block_size: int | None = None
    source: dict[str, str] = field(default_factory=dict)
    problem: str | None = None

    @property
    def reserved_bytes(self) -> float | None:
        """Weights + KV cache: the memory the server holds for the model (None unless both are stated)."""
        if self.weights_bytes is None or self.kv_cache_bytes is None:
            return None
        return self.weights_bytes + self.kv_cache_bytes

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["reserved_bytes"] = self.reserved_bytes
        d["memory_note"] = memory_note(self)
        return d


def _pos_number(v: Any) -> float | None:
    """A finite number > 0 from a label value / fact (``"None"``, ``"-1"``, ``"inf"``, bool -> None)."""
    if v is None or isinstance(v, bool):
        return None
    try:
        x = float(v)
    except (TypeError, ValueError, OverflowError):
        return None
    return x if math.isfinite(x) and x > 0 else None


def _pos_int(v: Any) -> int | None:
    x = _pos_number(v)
    return int(x) if x is not None and x == int(x) and x < 1e18 else None


def _info_figures(infos: list[dict[str, str]]) -> dict[str, Any]:
    """Figures from the ``cache_config_info`` label sets (one per engine; summed over engines)."""
    out: dict[str, Any] = {}
    engines: dict[str, dict[str, str]] = {}
    for labels in infos:
        engines.setdefault(labels.get("engine", ""), labels)
    tokens: list[int] = []
    conc: list[float] = []
    mem: list[float] = []
    for labels in engines.values():
        block = _pos_int(labels.get("block_size"))
        if block is not None:
            out.setdefault("block_size", block)
        t = _pos_int(labels.get("kv_cache_size_tokens"))
        if t is None:
            blocks = _pos_int(labels.get("num_gpu_blocks"))
            t = blocks * block if blocks is not None and block is not None else None
        if t is not None:
            tokens.append(t)
        c = _pos_number(labels.get("kv_cache_max_concurrency"))
        if c is not None:
            conc.append(c)
        m = _pos_number(labels.get("kv_cache_memory_bytes"))
        if m is not None:
            mem.append(m)
    n = len(engines)
    # a figure only when every engine states it: a partial sum would be too small
    if tokens and len(tokens) == n:
        out["kv_cache_tokens"] = sum(tokens)
    if conc and len(conc) == n:
        out["max_concurrency"] = math.fsum(conc)
    if mem and len(mem) == n:
        out["kv_cache_bytes"] = math.fsum(mem)
    return out


def _log_figures(facts: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    t = _pos_int(facts.get("kv_cache_tokens"))
    if t is not None:
        out["kv_cache_tokens"] = t
    c = _pos_number(facts.get("max_concurrency"))
    if c is not None:
        out["max_concurrency"] = c
    ct = _pos_int(facts.get("max_concurrency_tokens_per_request"))
    if ct is not None:
        out["max_concurrency_tokens"] = ct
    for name, keys in (("kv_cache_bytes", ("kv_cache_memory_gib", "kv_cache_gib")),
                       ("weights_bytes", ("weights_memory_gib", "weights_gib"))):
        for k in keys:
            g = _pos_number(facts.get(k))
            if g is not None:
                out[name] = g * GIB
                break
    return out


def _select(text: str) -> str:
    """Only the sample lines of the watched metrics (the rest of a vLLM page is ~600 lines)."""
    keep = [line for line in text.splitlines()
            if line.startswith(_WATCHED_PREFIXES) and line.split("{", 1)[0].split(" ", 1)[0] in _WATCHED]
    return "\n".join(keep) + "\n" if keep else ""


def _describe(text: str) -> str:
    head = text.lstrip()[:200].lower()
    if not text.strip():
        return "an empty body"
    if head.startswith(("<!doctype", "<html")) or "<html" in head:
        return "an HTML page, not Prometheus text"
    if head.startswith(("{", "[")):
        return "JSON, not Prometheus text"
    return "Prometheus text without any vLLM KV-cache or request metrics (not a vLLM server?)"


def _samples(text: str) -> list[prometheus.Sample]:
    """The watched samples of a page; ValueError (one line) when none can be read."""
    if not isinstance(text, str):
        raise ValueError(f"GET /metrics gave {type(text).__name__}, not text")
    selected = _select(text)
    if not selected:
        raise ValueError(f"GET /metrics answered {_describe(text)}")
    try:
        return prometheus.parse(selected)
    except ValueError as e:
        raise ValueError(f"GET /metrics: {e}") from None


def announced(metrics_text: str | None, log_facts: dict | None = None) -> Announced:
    """What the server says it can hold, from a ``/metrics`` body (None: not scraped) and/or the
    startup log's facts (:attr:`pytest_inference.vllm.startup_log.StartupLog.facts`).

    ``/metrics`` wins where both state a figure; a difference over 1 % goes into ``problem``.
    Never raises on what a server sent: an unreadable page gives its figures as None and one
    line in ``problem``."""
    problems: list[str] = []
    infos: list[dict[str, str]] = []
    if metrics_text is not None:
        try:
            infos = [s.labels for s in _samples(metrics_text) if s.name == INFO_METRIC]
        except ValueError as e:
            problems.append(str(e))
    return _announce(infos, log_facts, problems)


def _announce(infos: list[dict[str, str]], log_facts: dict | None, problems: list[str]) -> Announced:
    from_metrics = _info_figures(infos)
    from_log = _log_figures(log_facts) if isinstance(log_facts, dict) else {}
    a = Announced()
    for name in ("kv_cache_tokens", "max_concurrency", "max_concurrency_tokens", "kv_cache_bytes",
                 "weights_bytes", "block_size"):
        if name in from_metrics:
            setattr(a, name, from_metrics[name])
            a.source[name] = FROM_METRICS
            other = from_log.get(name)
            if other is not None and abs(other - from_metrics[name]) > _AGREE * from_metrics[name]:
                problems.append(f"{name}: /metrics says {from_metrics[name]:g}, the startup log {other:g}")
        elif name in from_log:
            setattr(a, name, from_log[name])
            a.source[name] = FROM_LOG
    a.problem = "; ".join(problems) or None
    return a


def memory_note(a: Announced | None) -> str | None:
    """One line on the memory the server holds for the model, in GB (10^9 bytes, as the seed
    says "173 GB"): ``"70.8 GB weights + 111.2 GB KV cache reserved = 182.0 GB"``; None when
    neither is stated."""
    if a is None:
        return None
    w, k = a.weights_bytes, a.kv_cache_bytes
    if w is not None and k is not None:
        return f"{w / 1e9:.1f} GB weights + {k / 1e9:.1f} GB KV cache reserved = {(w + k) / 1e9:.1f} GB"
    if k is not None:
        return f"{k / 1e9:.1f} GB KV cache reserved (weights not stated)"
    if w is not None:
        return f"{w / 1e9:.1f} GB weights (KV cache not stated)"
    return None


# --------------------------------------------------------------------------- during the run


@dataclass
class ServerDuring:
    """What the server held during a run, from ``/metrics`` (see :class:`MetricsWatch`).

    ``kv_usage_max`` / ``kv_usage_mean``: KV-cache usage (0..1) over the scrapes during the run;
    ``preemptions``: the rise of ``vllm:num_preemptions_total`` from before to after the run;
    ``running_max`` / ``waiting_max``: the request gauges' maxima during the run; ``scrapes``:
    scrapes that answered (``scrapes_during`` of them during the run, ``scrapes_failed`` did
    not answer). ``announced``: :meth:`Announced.to_dict` from the first scrape. ``problem``: one
    line (no /metrics, a failed scrape, a counter that went back, a gauge out of range) or None.
    ``missing``: the watched metrics that no scrape had (why a figure is None on a server that
    answered). ``finding``: one line when the server preempted while running fewer requests than
    it announced room for, else None. ``scrape_cpu_s``: CPU time the watch's thread spent
    scraping and parsing (what it cost the measuring process). ``None`` figures were not measured.
    """

    kv_usage_max: float | None = None
    kv_usage_mean: float | None = None
    preemptions: float | None = None
    running_max: float | None = None
    waiting_max: float | None = None
    scrapes: int = 0
    scrapes_during: int = 0
    scrapes_failed: int = 0
    interval_s: float = 0.0
    duration_s: float | None = None
    problem: str | None = None
    missing: list[str] = field(default_factory=list)
    finding: str | None = None
    scrape_cpu_s: float = 0.0
    announced: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Scrape:
    t_s: float
    phase: str  # before | during | after
    kv_usage: float | None
    preemptions: float | None
    running: float | None
    waiting: float | None


def metrics_getter(root_url: str, *, api_key: str | None = None, verify: bool | str = True,
                   timeout_s: float = 2.0) -> Callable[[], str]:
    """A ``get_text`` for :class:`MetricsWatch`: ``GET {root_url}/metrics`` on a connection of its
    own (:func:`pytest_inference.engine.http.get_text`; raises :class:`EndpointError`)."""
    from ..engine import http

    url = root_url.rstrip("/") + "/metrics"

    def get_text() -> str:
        return http.get_text(url, api_key=api_key, timeout_s=timeout_s, verify=verify)

    return get_text


class MetricsWatch:
    """Samples ``/metrics`` during a load run on one daemon thread.

    ``get_text()`` returns the page or raises :class:`~pytest_inference.engine.EndpointError`
    (:func:`metrics_getter`). ``start()`` scrapes once (before the load: the counter's base and
    :func:`announced`), then every ``interval_s`` on the thread; ``stop()`` joins it, scrapes once
    more (after the load) and returns :meth:`ServerDuring.to_dict`. ``log_facts`` (the startup
    log's facts) complete the announced figures. ``stop_timeout_s``: how long ``stop()`` waits for
    a scrape in progress (a hung one is then left behind, never counted, and said in ``problem``).
    Also a context manager (``.during`` after it).
    """

    def __init__(self, get_text: Callable[[], str], interval_s: float = 0.5, *,
                 log_facts: dict | None = None, stop_timeout_s: float = 10.0) -> None:
        if not callable(get_text):
            raise ValueError(f"MetricsWatch needs a callable get_text, not {type(get_text).__name__}")
        try:
            interval = float(interval_s)
        except (TypeError, ValueError):
            interval = float("nan")
        if not (math.isfinite(interval) and interval >= MIN_INTERVAL_S):
            raise ValueError(f"interval_s must be a number >= {MIN_INTERVAL_S} s (scraping more often disturbs "
                             f"the run); got {interval_s!r}")
        if not (isinstance(stop_timeout_s, (int, float)) and not isinstance(stop_timeout_s, bool)
                and math.isfinite(stop_timeout_s) and stop_timeout_s > 0):
            raise ValueError(f"stop_timeout_s must be a number > 0; got {stop_timeout_s!r}")
        self.get_text = get_text
        self.interval_s = interval
        self.stop_timeout_s = float(stop_timeout_s)
        self.log_facts = log_facts
        self.during: ServerDuring | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._scrapes: list[_Scrape] = []
        self._failed = 0
        self._last_error: str | None = None
        self._problems: list[str] = []
        self._absent: str | None = None
        self._announced: Announced | None = None
        self._t0 = 0.0
        self._t_end: float | None = None
        self._started = False
        self._closed = False
        self._cpu_s = 0.0
        self._seen: set[str] = set()

    # ------------------------------------------------------------------ public
    def start(self) -> None:
        if self._started:
            raise RuntimeError("MetricsWatch.start() was already called: use a new watch per run")
        self._started = True
        self._t0 = time.monotonic()
        self._scrape(during=False, first=True)
        if self._absent is None:
            self._thread = threading.Thread(target=self._loop, name="metrics-watch", daemon=True)
            self._thread.start()

    def stop(self) -> dict[str, Any]:
        if self._closed:
            raise RuntimeError("MetricsWatch.stop() was already called")
        if not self._started:
            raise RuntimeError("MetricsWatch.stop() before start()")
        self._t_end = time.monotonic()
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.stop_timeout_s)
            if self._thread.is_alive():  # a scrape hung past its own timeout: left behind, never counted
                self._problems.append("a scrape was still hanging when the run ended")
        with self._lock:
            self._closed = True  # the thread records nothing from here on
        if self._absent is None:
            self._scrape(during=False)
        self.during = self._result()
        return self.during.to_dict()

    def __enter__(self) -> "MetricsWatch":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._closed:
            self.stop()

    # ------------------------------------------------------------------ internals
    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            c = time.thread_time()
            self._scrape(during=True)
            self._cpu_s += time.thread_time() - c

    def _scrape(self, *, during: bool, first: bool = False) -> None:
        t = time.monotonic() - self._t0
        try:
            text = self.get_text()
            samples = _samples(text)
        except EndpointHTTPError as e:
            if first and e.status == 404:
                self._absent = f"the endpoint exposes no /metrics ({e})"
                return
            self._failure(str(e), during)
            return
        except EndpointError as e:
            self._failure(str(e), during)
            return
        except ValueError as e:
            if first:  # 200 but no page to read: nothing to watch
                self._absent = str(e)
                return
            self._failure(str(e), during)
            return
        except Exception as e:  # noqa: BLE001 - a get_text of the caller's: recorded, never kills the thread
            self._failure(f"{type(e).__name__}: {' '.join(str(e).split())[:200]}", during)
            return
        rec = _Scrape(t, "during" if during else "before" if first else "after", *self._figures(samples))
        with self._lock:
            if during and self._closed:
                return
            self._scrapes.append(rec)
            self._seen.update(s.name for s in samples)
            if self._announced is None:  # from the first scrape that answered
                self._announced = _announce([s.labels for s in samples if s.name == INFO_METRIC],
                                            self.log_facts, [])

    def _failure(self, why: str, during: bool) -> None:
        with self._lock:
            if during and self._closed:
                return
            self._failed += 1
            self._last_error = why

    def _figures(self, samples: list[prometheus.Sample]
                 ) -> tuple[float | None, float | None, float | None, float | None]:
        by: dict[str, list[float]] = {}
        for s in samples:
            by.setdefault(s.name, []).append(s.value)
        kv = None
        for name in KV_USAGE_METRICS:
            if name in by:
                vals = by[name]
                bad = [v for v in vals if not (math.isfinite(v) and 0.0 <= v <= 1.0)]
                if bad:
                    self._note(f"{name} is {bad[0]!r}, not a fraction 0..1: ignored")
                else:
                    kv = max(vals)  # the fullest engine
                break
        return (kv, self._count(by, PREEMPTIONS_METRIC), self._count(by, RUNNING_METRIC),
                self._count(by, WAITING_METRIC))

    def _count(self, by: dict[str, list[float]], name: str) -> float | None:
        vals = by.get(name)
        if not vals:
            return None
        if any(not (math.isfinite(v) and v >= 0) for v in vals):
            self._note(f"{name} is {next(v for v in vals if not (math.isfinite(v) and v >= 0))!r}: ignored")
            return None
        return math.fsum(vals)

    def _note(self, problem: str) -> None:
        with self._lock:
            if problem not in self._problems:
                self._problems.append(problem)

    def _result(self) -> ServerDuring:
        scrapes = list(self._scrapes)
        problems: list[str] = []
        if self._absent is not None:
            problems.append(self._absent)
        problems += self._problems
        if self._failed:
            problems.append(f"{self._failed} of {self._failed + len(scrapes)} scrapes of /metrics failed "
                            f"(last: {self._last_error})")
        during = [s for s in scrapes if s.phase == "during"]
        kv = [s.kv_usage for s in during if s.kv_usage is not None]
        running = [s.running for s in during if s.running is not None]
        waiting = [s.waiting for s in during if s.waiting is not None]
        duration = (self._t_end - self._t0) if self._t_end is not None else None
        if scrapes and not during:
            problems.append(f"no scrape fell inside the run ({duration or 0.0:.2f} s, one every "
                            f"{self.interval_s:g} s): no KV usage or queue figures")
        preemptions = None
        read = [s for s in scrapes if s.preemptions is not None]
        counts = [s.preemptions for s in read]
        went_back = next(((a, b) for a, b in zip(counts, counts[1:]) if b < a), None)
        if went_back is not None:
            problems.append(f"{PREEMPTIONS_METRIC} went back from {went_back[0]:g} to {went_back[1]:g} during "
                            "the run (a server restart?): no preemption count")
        elif read and read[0].phase == "before" and read[-1].phase == "after":
            preemptions = counts[-1] - counts[0]
        elif read:  # a rise over part of the run only would pass for a count over all of it
            problems.append(f"{PREEMPTIONS_METRIC} was not read both before and after the run: no preemption "
                            "count")
        ann = self._announced or Announced()
        out = ServerDuring(
            kv_usage_max=max(kv) if kv else None,
            kv_usage_mean=math.fsum(kv) / len(kv) if kv else None,
            preemptions=preemptions,
            running_max=max(running) if running else None,
            waiting_max=max(waiting) if waiting else None,
            scrapes=len(scrapes), scrapes_during=len(during), scrapes_failed=self._failed,
            interval_s=self.interval_s, duration_s=duration,
            announced=ann.to_dict(),
        )
        if scrapes:
            seen = self._seen
            out.missing = [n for n in (INFO_METRIC, PREEMPTIONS_METRIC, RUNNING_METRIC, WAITING_METRIC)
                           if n not in seen]
            if not any(n in seen for n in KV_USAGE_METRICS):
                out.missing.insert(1, KV_USAGE_METRICS[0])
        out.scrape_cpu_s = self._cpu_s
        out.problem = "; ".join(problems) or None
        out.finding = _finding(out, ann)
        return out


def _finding(d: ServerDuring, a: Announced) -> str | None:
    """The server preempted while (in the scrapes) it ran fewer requests than it said it holds."""
    if not d.preemptions or d.preemptions <= 0 or a.max_concurrency is None or d.running_max is None:
        return None
    if d.running_max >= a.max_concurrency:
        return None
    room = f"{a.max_concurrency:g} at once" + (f" ({a.kv_cache_tokens} tokens)" if a.kv_cache_tokens else "")
    usage = f", KV usage at most {d.kv_usage_max:.1%}" if d.kv_usage_max is not None else ""
    return (f"preempted {d.preemptions:g} times with at most {d.running_max:g} requests running{usage} in the "
            f"scrapes, though it announced room for {room}")
