"""The load suite's plan, from the run settings: which runs (open-loop rates, closed-loop
concurrencies), the SLO, the workload, the capacity search's bounds.

Pure (no I/O but reading a ``file:`` workload) and light: the settings table names the parsers here
(``parse_rates``, ``parse_concurrencies``, ``parse_arrival``, ``parse_workload_spec``) so a bad
``--load-rate 0``, ``--arrival zipf`` or ``--workload file:nope.jsonl`` is one usage line at start-up.
The suite (``suites/load``) measures with :mod:`pytest_inference.probes.load` and judges with
:mod:`pytest_inference.claims` and :mod:`pytest_inference.capacity`.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass, field
from typing import Any

def _numbers(text: str, what: str, kind: type) -> list[Any]:
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"{what} is empty")
    out: list[Any] = []
    for part in text.split(","):
        part = part.strip()
        try:
            value = kind(part)
        except ValueError:
            raise ValueError(f"{what}: {part!r} is not {'an integer' if kind is int else 'a number'}") from None
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ValueError(f"{what}: {part!r} must be > 0")
        if value in out:
            raise ValueError(f"{what}: {part!r} is given twice")
        out.append(value)
    return out


def parse_rates(text: str) -> list[float]:
    """``"4"`` or ``"2,4,8"`` → offered rates in req/s, each > 0 (one-line ValueError otherwise)."""
    return [float(x) for x in _numbers(text, "load rate", float)]


def parse_concurrencies(text: str) -> list[int]:
    """``"8"`` or ``"4,16"`` → closed-loop concurrencies, integers >= 1."""
    return _numbers(text, "load concurrency", int)


#: the rate one engine process is given under --load-workers auto: the open-loop benchmark's single
#: process kept its schedule up to 800 req/s on a zero-delay server at ~0.65 ms CPU a request (about half
#: a core); 400 leaves it half its headroom for a server that streams more tokens per request
RATE_PER_WORKER = 400.0
MAX_WORKERS = 64


def parse_workers(text: str) -> int | None:
    """``"auto"`` → None (chosen per rate: :meth:`Plan.workers_for`), ``"2"`` → 2 (1 .. 64)."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("load workers is empty: give a number of client processes or auto")
    if text.strip().lower() == "auto":
        return None
    try:
        n = int(text.strip())
    except ValueError:
        raise ValueError(f"load workers: {text.strip()!r} is neither a number of processes nor auto") from None
    if not 1 <= n <= MAX_WORKERS:
        raise ValueError(f"load workers: {n} must be between 1 and {MAX_WORKERS}")
    return n


def usable_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def parse_arrival(text: str) -> tuple[str, float]:
    """``poisson`` | ``constant`` | ``gamma:CV`` → ``(shape, cv)``."""
    from .engine.arrivals import parse_arrival as parse

    return parse(text)


def parse_workload_spec(text: str):
    """A ``--workload`` spec → :class:`~pytest_inference.workloads.Workload` (reads a ``file:`` path
    relative to the current folder). Built once per spec and folder: the start-up check of the setting
    (a target's [load] table, an h200 that extends h100 reading it twice) and the suite share the
    (immutable) workload instead of generating 600 prompts again each time."""
    return _workload(text, os.getcwd())


@functools.lru_cache(maxsize=8)
def _workload(text: str, cwd: str):
    from .workloads import parse_workload

    return parse_workload(text, base_dir=cwd)


@dataclass(frozen=True)
class Point:
    """One load run the suite makes: an open-loop rate or a closed-loop concurrency."""

    rate_rps: float | None = None
    concurrency: int | None = None

    @property
    def id(self) -> str:
        return f"{self.rate_rps:g}rps" if self.rate_rps is not None else f"c{self.concurrency}"

    def describe(self) -> str:
        return (f"{self.rate_rps:g} req/s offered (open loop)" if self.rate_rps is not None
                else f"concurrency {self.concurrency} (closed loop)")


@dataclass(frozen=True)
class Search:
    start_rps: float
    min_rps: float | None
    max_rps: float
    requests: int
    max_s: float
    max_probes: int
    tight: float
    attainment: float = 0.9
    min_s: float = 0.0

    def requests_at(self, rate: float) -> int:
        """A probe's requests: ``requests``, or more to last ``min_s`` seconds at ``rate``."""
        return max(self.requests, math.ceil(rate * self.min_s - 1e-9) + 1 if self.min_s else 0)

    def probe_rule(self):
        """What a probe must show to pass: SLO attainment >= ``attainment`` (one-sided binomial bound)."""
        from .claims import Requirement

        return Requirement("load.slo_attainment", ">=", self.attainment, stat="attainment")

    def check(self) -> None:
        """One line when the range is upside down (the option names, not the settings keys)."""
        low = self.min_rps if self.min_rps is not None else self.start_rps / 16
        if not low <= self.start_rps <= self.max_rps:
            raise ValueError(f"the capacity search range is upside down: need --search-min-rps ({low:g}) <= "
                             f"--search-start-rps ({self.start_rps:g}) <= --search-max-rps ({self.max_rps:g})")


@dataclass(frozen=True)
class Plan:
    points: list[Point]
    requests: int | None
    duration_s: float | None
    warmup: int
    arrival: str
    seed: int
    slo_text: str | None
    workload_spec: str
    workers: int | None  # None: auto
    max_lag_ms: float
    search: Search
    sources: dict[str, str] = field(default_factory=dict)

    def workers_for(self, rate_rps: float | None, cpus: int | None = None) -> int:
        """Client processes for an open-loop run at ``rate_rps`` (a closed loop: 1): the fixed
        ``--load-workers``, else one per :data:`RATE_PER_WORKER` req/s, at most ``cpus`` (default:
        the CPUs this process may use)."""
        if rate_rps is None:
            return 1
        if self.workers is not None:
            return self.workers
        return max(1, min(cpus or usable_cpus(), MAX_WORKERS, math.ceil(rate_rps / RATE_PER_WORKER - 1e-9)))

    @property
    def slo(self):
        from . import slo

        return slo.parse(self.slo_text) if self.slo_text else None

    def length(self) -> dict[str, Any]:
        """The run's length for :func:`~pytest_inference.probes.load.measure_load`: requests or seconds."""
        return {"duration_s": self.duration_s} if self.duration_s is not None else {"requests": self.requests}

    def to_dict(self) -> dict[str, Any]:
        return {"points": [p.id for p in self.points], "requests": self.requests, "duration_s": self.duration_s,
                "warmup": self.warmup, "arrival": self.arrival, "seed": self.seed, "slo": self.slo_text,
                "workload": self.workload_spec, "workers": "auto" if self.workers is None else self.workers,
                "max_lag_ms": self.max_lag_ms,
                "search": self.search.__dict__.copy()}


def plan(settings: Any) -> Plan:
    """The plan from :class:`~pytest_inference.settings.RunSettings` (values already validated).
    ``--load-duration`` wins over the request count; a bad search range raises one ValueError line."""
    g = settings.get
    points = [Point(rate_rps=r) for r in parse_rates(g("load_rate_rps"))]
    if g("load_concurrency"):
        points += [Point(concurrency=c) for c in parse_concurrencies(g("load_concurrency"))]
    search = Search(start_rps=g("load_search_start_rps"), min_rps=g("load_search_min_rps"),
                    max_rps=g("load_search_max_rps"), requests=g("load_search_requests"),
                    max_s=g("load_search_max_s"), max_probes=g("load_search_max_probes"), tight=g("load_search_tight"),
                    attainment=g("load_search_attainment"), min_s=g("load_search_min_s"))
    search.check()
    duration = g("load_duration_s")
    return Plan(points=points, requests=None if duration is not None else g("load_requests"), duration_s=duration,
                warmup=g("load_warmup"), arrival=g("load_arrival"), seed=g("load_seed"), slo_text=g("load_slo"),
                workload_spec=g("load_workload"), workers=parse_workers(g("load_workers")),
                max_lag_ms=g("load_max_lag_ms"),
                search=search,
                sources={k: settings.source(k) for k in ("load_rate_rps", "load_slo", "load_workload")})


#: the load options: (flag, settings key, type, metavar, help). Defaults and ranges are the settings table's.
OPTIONS = (
    ("--load-rate", "load_rate_rps", str, "RPS[,RPS]", "offered rate(s) of the open-loop load runs in req/s, e.g. 4 or "
     "2,4,8: each rate is one run whose claims (SLO attainment, goodput, p99s, steadiness) are judged"),
    ("--load-concurrency", "load_concurrency", str, "N[,N]", "closed-loop load runs at these concurrencies, besides "
     "the rates"),
    ("--load-requests", "load_requests", int, "N", "requests per load run"),
    ("--load-duration", "load_duration_s", float, "S", "seconds of arrivals per load run (wins over --load-requests)"),
    ("--load-warmup", "load_warmup", int, "N", "uncounted closed-loop warm-ups before each load run"),
    ("--arrival", "load_arrival", str, "SHAPE", "arrival shape of the open loop: poisson (seeded), constant, or "
     "gamma:CV (gamma gaps, coefficient of variation CV; > 1 burstier)"),
    ("--load-seed", "load_seed", int, "N", "seed of the arrivals and the synthetic workload"),
    ("--slo", "load_slo", str, "BOUNDS", "SLO every request must meet, in ms: ttft_ms:400,tpot_ms:80,e2e_ms:5000 "
     "(any subset); errors and timeouts are misses"),
    ("--workload", "load_workload", str, "SPEC", "requests of the load runs: synthetic:input=lognormal(512,0.5),"
     "output=220[,n=200,seed=1] (lengths in server tokens: fixed N, uniform(a,b), lognormal(median,sigma)), "
     "prefix:prefix=256,input=64,output=64, or file:PATH.jsonl (a prompt or messages, max_tokens per line)"),
    ("--load-workers", "load_workers", str, "N|auto", "client processes sharing an open-loop schedule (one engine "
     "each, common start, merged samples): auto gives one per 400 req/s offered, at most the CPUs this process "
     "may use; each run says how many it used"),
    ("--load-max-lag-ms", "load_max_lag_ms", float, "MS", "p99 dispatch lag (scheduled -> sent) above which a run "
     "measured the client, not the server: its latency claims are inconclusive"),
    ("--search-start-rps", "load_search_start_rps", float, "RPS", "capacity search: first rate (then double until "
     "a probe fails, then bisect)"),
    ("--search-min-rps", "load_search_min_rps", float, "RPS", "capacity search: lowest rate"),
    ("--search-max-rps", "load_search_max_rps", float, "RPS", "capacity search: highest rate"),
    ("--search-requests", "load_search_requests", int, "N", "capacity search: requests per probe"),
    ("--search-min-s", "load_search_min_s", float, "S", "capacity search: seconds of arrivals a probe lasts at "
     "least (ceil(rate x S) requests when that is more than --search-requests)"),
    ("--search-max-s", "load_search_max_s", float, "S", "capacity search: no probe starts after this many seconds"),
    ("--search-max-probes", "load_search_max_probes", int, "N", "capacity search: most probes"),
    ("--search-attainment", "load_search_attainment", float, "SHARE", "capacity search: SLO attainment a probe "
     "must support at the target's confidence to pass (0.9: its lower bound must be >= 90 %)"),
    ("--search-tight", "load_search_tight", float, "W", "capacity search: stop when the bracket's relative width "
     "(lowest fail - highest pass) / highest pass is at most W"),
)


# ------------------------------------------------------------------------ shards of one schedule
#: a --load-start-at this far in the past is refused (a shard that starts later than this sends its
#: first arrivals that late: its run would measure its own lateness); this far ahead is a typo
MAX_LATE_START_S = 5.0
MAX_EARLY_START_S = 86400.0
#: the environment variable that shifts a shard's wall clock (seconds; the test seam that plants clock skew)
CLOCK_SKEW_ENV = "PYTEST_INFERENCE_CLOCK_SKEW_S"


def parse_shard(text: str) -> tuple[int, int]:
    """``"2/8"`` -> ``(2, 8)``: this process sends the arrivals whose index % 8 == 2 (0-based index,
    count 1 .. 10,000). Anything else is one ValueError line naming ``--load-shard``."""
    raw = text.strip() if isinstance(text, str) else text
    index, slash, count = raw.partition("/") if isinstance(raw, str) else ("", "", "")
    try:
        i, n = int(index), int(count)
    except ValueError:
        i = n = None  # type: ignore[assignment]
    if not slash or i is None:
        raise ValueError(f"--load-shard {text!r}: give INDEX/COUNT, e.g. 0/4 (0-based index of COUNT shards)")
    if not 1 <= n <= 10_000:
        raise ValueError(f"--load-shard {text!r}: the count must be between 1 and 10000")
    if not 0 <= i < n:
        raise ValueError(f"--load-shard {text!r}: the index must be 0 .. {n - 1} (0-based) for {n} shards")
    return i, n


def parse_start_at(text: str) -> float:
    """``--load-start-at``: epoch seconds (``1796216400``, ``1796216400.5``) or ISO-8601 with a time
    zone (``2026-12-02T13:00:00Z``, ``...+01:00``) -> epoch seconds. A time without a zone is
    refused (pods need not share one). Pure: how far it is from now is :func:`start_problem`'s."""
    import datetime as dt

    raw = text.strip() if isinstance(text, str) else ""
    try:
        value = float(raw)
    except ValueError:
        value = None
    if value is None:
        try:
            when = dt.datetime.fromisoformat(raw[:-1] + "+00:00" if raw[-1:] in ("Z", "z") else raw)
        except ValueError:
            raise ValueError(f"--load-start-at {text!r}: give epoch seconds or an ISO-8601 time such as "
                             "2026-12-02T13:00:00Z") from None
        if when.tzinfo is None:
            raise ValueError(f"--load-start-at {text!r}: give the time zone (2026-12-02T13:00:00Z for UTC): "
                             "the shards' pods need not share one")
        value = when.timestamp()
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"--load-start-at {text!r}: not a time (epoch seconds > 0)")
    return value


def shard_clock_skew_s() -> float:
    """The planted skew of this process's wall clock (:data:`CLOCK_SKEW_ENV`, seconds; 0 unset)."""
    raw = os.environ.get(CLOCK_SKEW_ENV, "").strip()
    if not raw:
        return 0.0
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{CLOCK_SKEW_ENV}={raw!r} is not a number of seconds") from None
    if not math.isfinite(value):
        raise ValueError(f"{CLOCK_SKEW_ENV}={raw!r} is not a finite number of seconds")
    return value


def wall_clock() -> float:
    """A shard's wall clock (epoch seconds): ``time.time()`` shifted by :func:`shard_clock_skew_s`.
    The shard waits for the common start and stamps its times by this clock."""
    import time

    return time.time() + shard_clock_skew_s()


def start_problem(start_at: float, now: float) -> str | None:
    """Why a start time cannot be used now (one line), or None."""
    late = now - start_at
    if late > MAX_LATE_START_S:
        return (f"--load-start-at is {late:.1f} s in the past by this shard's clock (more than "
                f"{MAX_LATE_START_S:g} s): its arrivals would all go late; give a later start")
    if -late > MAX_EARLY_START_S:
        return f"--load-start-at is {-late:.0f} s ahead (more than {MAX_EARLY_START_S:g} s): a typo?"
    return None


def shard_problem(p: "Plan", shard: tuple[int, int] | None, start_at: float | None) -> str | None:
    """Why this plan cannot run as a shard (one line), or None. A shard splits ONE open-loop schedule:
    one ``--load-rate``, no closed loops, one engine process (more processes: more shards)."""
    if shard is None and start_at is None:
        return None
    if shard is None:
        return "--load-start-at is the common start of shards: give --load-shard INDEX/COUNT too (0/1 for one)"
    if start_at is None:
        return (f"--load-shard {shard[0]}/{shard[1]} needs --load-start-at WHEN (the common start of every "
                "shard, epoch seconds or 2026-12-02T13:00:00Z)")
    if len(p.points) != 1 or p.points[0].rate_rps is None:
        return (f"--load-shard splits one open-loop schedule: give one --load-rate and no --load-concurrency "
                f"(the plan has {', '.join(x.id for x in p.points)})")
    if p.requests is not None and shard[1] > p.requests:
        return (f"--load-shard {shard[0]}/{shard[1]}: a schedule of {p.requests} requests has fewer arrivals "
                "than shards (some would send nothing)")
    if p.workers is not None and p.workers > 1:
        return (f"--load-shard runs its share in one client process: --load-workers {p.workers} is for an "
                "unsharded run (give more shards instead)")
    return None


def shard_problem_args(shard: Any, start_at: Any, *, mode: str, workers: int, n: int) -> str | None:
    """:func:`~pytest_inference.probes.load.measure_load`'s check of its ``shard``/``start_at``
    arguments (one line, or None)."""
    if shard is None or start_at is None:
        return "a shard needs both shard=(index, count) and start_at (epoch seconds)"
    if (not isinstance(shard, tuple) or len(shard) != 2 or not all(isinstance(x, int) for x in shard)
            or not 0 <= shard[0] < shard[1]):
        return f"shard must be (index, count) with 0 <= index < count, not {shard!r}"
    if mode != "open":
        return "a shard splits an open-loop schedule: give rate_rps, not concurrency"
    if workers > 1:
        return "a shard runs its share in one client process (workers=1): give more shards instead"
    if shard[0] >= n:
        return f"shard {shard[0]}/{shard[1]} of a {n}-arrival schedule has no arrival: give fewer shards"
    if isinstance(start_at, bool) or not isinstance(start_at, (int, float)) or not math.isfinite(start_at):
        return f"start_at must be epoch seconds, not {start_at!r}"
    return None


def _argtype(parse):
    import argparse

    def convert(text: str):
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = parse.__name__
    return convert


def add_options(group: Any) -> None:
    """The load options into the plugin's option group (help states each default from the settings)."""
    from .settings import add_options as add_setting_options

    add_setting_options(group, OPTIONS)
    group.addoption("--load-shard", dest="load_shard", type=_argtype(parse_shard), metavar="INDEX/COUNT",
                    default=None, help="send only the arrivals of the load schedule whose index %% COUNT == INDEX "
                    "(0-based), at their offsets from --load-start-at: COUNT such processes (an Indexed Job) offer "
                    "the one schedule together; pytest-inference merge pools their samples (default: the whole "
                    "schedule).")
    group.addoption("--load-start-at", dest="load_start_at", type=_argtype(parse_start_at), metavar="WHEN",
                    default=None, help="the shards' common start by the wall clock: epoch seconds or "
                    "2026-12-02T13:00:00Z (needs --load-shard; at most "
                    f"{MAX_LATE_START_S:g} s in the past).")
    group.addoption("--load-clock-url", dest="load_clock_url", metavar="URL", default=None,
                    help="an HTTP URL whose Date header is the shards' common clock reference (default: the "
                    "endpoint's /models): each shard measures its clock's offset against it.")
