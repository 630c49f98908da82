"""Parse vLLM's startup log into timed, nested phases.

Input is either ``(t_s, line)`` pairs — ``t_s`` being seconds since launch on the harness's
monotonic clock, taken when the harness *read* the line — or a whole log text without
harness times.  In the second case the clock is the log's own timestamps (vLLM's
``MM-DD HH:MM:SS``, one-second resolution, or an RFC 3339 stamp at the start of a line as
``kubectl logs --timestamps`` writes it), with 0 at the first timestamped line: *not* the
launch, which precedes the first log line by the Python imports.

Every recognised line becomes a :class:`Phase`.  Where the log states a duration
(``Loading weights took 23.41 seconds``) ``end_s`` is the time the line was read and
``start_s = end_s − duration`` (on the harness clock never before the launch: clamped to 0,
``attrs["clamped_s"]`` says by how much).  Where it states none, a phase runs from one marker
line to another and is marked ``method="markers"``:

- ``warmup``: ``Warming up model for the compilation...`` → ``Warming up done.`` (CPU runner);
- ``torch_compile`` on the CPU (whose compilation mode logs no ``torch.compile took``):
  ``Starting torch.compile`` or the warm-up line → ``saved AOT compiled function`` /
  ``Directly load AOT compilation``; dropped wherever a stated ``torch.compile took`` exists;
- ``model_load`` where no ``Model loading took`` line exists (CPU runner, V0):
  ``Starting to load model`` → the last load line of that process;
- ``api_server_start``: ``Starting vLLM server on URL`` → uvicorn's ``Application startup complete.``

The KV-cache lines (available GiB, tokens, maximum concurrency, blocks) make one instant
``kv_cache`` phase (``method="event"``).

Phases nest and must never be summed::

    model_load      ⊃ weights_load, model_init
    engine_init     ⊃ warmup (CPU) ⊃ torch_compile ⊃ dynamo_transform, inductor_compile,
                                                      compiled_graph_load
                    ⊃ profiling, kv_cache, graph_capture
    api_server_start

``parent`` is the nearest of those ancestors that the log actually shows (on a GPU, which
has no ``warmup`` phase, ``torch_compile``'s parent is ``engine_init``; a log cut before
``init engine … took`` leaves ``torch_compile`` top level).  :func:`top_level` and
:func:`total_covered_s` (the union of the top-level intervals) are the only sound ways to
add phases up.  Several tensor-parallel workers each log their own phases; they overlap,
and the union counts them once.

Facts (``StartupLog.facts``): ``version``, ``model``, ``served_model_name``,
``enforce_eager`` (from the config / args lines only), ``compilation_mode``,
``compile_cache`` (``"hit"``, ``"miss"``, ``"partial"`` or ``None`` when the log says
nothing: eager), ``compile_cache_load_failure``, ``weights_gib``, ``kv_cache_gib``,
``kv_cache_tokens``, ``max_concurrency``, ``compilation_s``, ``url``,
``process_first_line_s`` (when each process first wrote: the imports before it are in no phase).

What the server says it can hold (for :mod:`pytest_inference.probes.server_capacity`):
``kv_cache_tokens`` (int: ``GPU KV cache size: 1,508,320 tokens``), ``max_concurrency`` (float:
the ``11.51x`` of ``Maximum concurrency for 131,072 tokens per request``) with
``max_concurrency_tokens_per_request`` (int: the 131,072), ``kv_cache_memory_gib`` (float:
``Available KV cache memory``, the CPU worker's ``Explicitly/Auto set (1.0/9.21) GiB for KV
cache`` or V0's ``reserved for KV Cache is 55.35GiB``) and ``weights_memory_gib`` (float:
``Model loading took 65.97 GiB``, V0's ``Loading model weights took``). Both memory figures
are what the first worker that logs them states, i.e. one device's share under tensor
parallelism; ``kv_cache_gib`` and ``weights_gib`` are the older names of the same figures.

Wordings recognised: vLLM 0.33 and older (V1 and V0), see tests/coldstart/data/README.md.
Unknown or garbled lines are ignored; the parser never raises on text, harness times that
are negative or not finite count as missing, and every duration it returns is finite and
≥ 0 (stated durations above :data:`MAX_DURATION_S` are treated as garbled).
"""

from __future__ import annotations

import datetime as _dt
import math
import re
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Iterable, Iterator

#: canonical parent of each phase, nearest first; resolved to the nearest one present
HIERARCHY: dict[str, tuple[str, ...]] = {
    "model_load": (),
    "weights_load": ("model_load",),
    "model_init": ("model_load",),
    "engine_init": (),
    "warmup": ("engine_init",),
    "torch_compile": ("warmup", "engine_init"),
    "dynamo_transform": ("torch_compile", "warmup", "engine_init"),
    "inductor_compile": ("torch_compile", "warmup", "engine_init"),
    "compiled_graph_load": ("torch_compile", "warmup", "engine_init"),
    "profiling": ("warmup", "engine_init"),
    "kv_cache": ("engine_init",),
    "graph_capture": ("engine_init",),
    "api_server_start": (),
}
PHASE_NAMES = tuple(HIERARCHY)

#: a stated duration above this (11.6 days) is taken for garbage, not a phase
MAX_DURATION_S = 1e6
#: longer lines are cut before matching (vLLM's config line is ~3 kB)
MAX_LINE_CHARS = 65536

STATED, MARKERS, EVENT = "stated", "markers", "event"


@dataclass
class Phase:
    name: str
    start_s: float | None
    end_s: float | None
    duration_s: float
    parent: str | None = None
    source: str = ""  # the log line (prefix and colours removed) that ended the phase
    method: str = STATED  # stated | markers | event
    proc: str | None = None  # "EngineCore pid=123"
    attrs: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class StartupLog:
    phases: list[Phase]
    facts: dict[str, Any]
    clock: str | None  # "harness" | "log" | None (no times at all)
    lines: int = 0
    matched: int = 0
    errors: int = 0  # lines skipped because handling them raised (a parser bug; never raised to the caller)

    def top_level(self) -> list[Phase]:
        return top_level(self.phases)

    def total_covered_s(self) -> float:
        return total_covered_s(self.phases)

    def get(self, name: str) -> Phase | None:
        """The first phase of that name (in start order), or ``None``."""
        return next((p for p in self.phases if p.name == name), None)

    def all(self, name: str) -> list[Phase]:
        return [p for p in self.phases if p.name == name]

    def durations(self) -> dict[str, float]:
        """Per phase name the longest occurrence (tensor-parallel workers log in parallel)."""
        out: dict[str, float] = {}
        for p in self.phases:
            out[p.name] = max(out.get(p.name, 0.0), p.duration_s)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "clock": self.clock,
            "lines": self.lines,
            "matched": self.matched,
            "errors": self.errors,
            "facts": dict(self.facts),
            "phases": [p.to_dict() for p in self.phases],
            "total_covered_s": self.total_covered_s(),
        }


# --------------------------------------------------------------------------- helpers


def top_level(phases: Iterable[Phase]) -> list[Phase]:
    """The phases no other phase of the log contains."""
    return [p for p in phases if p.parent is None]


def _key(p: Phase) -> tuple:
    return (p.start_s is None, p.start_s if p.start_s is not None else 0.0, len(HIERARCHY.get(p.name, ())), p.name)


def tree_order(phases: Iterable[Phase]) -> list[Phase]:
    """Phases depth first: each top-level phase by start time, followed by what it contains.

    A child goes under the instance of its parent phase it overlaps most (several workers
    can each log a ``model_load``); phases whose parent is not in the list come out as roots.
    """
    items = list(phases)
    children: dict[int, list[Phase]] = {id(p): [] for p in items}
    roots: list[Phase] = []
    by_name: dict[str, list[Phase]] = {}
    for p in items:
        by_name.setdefault(p.name, []).append(p)
    for p in items:
        candidates = [q for q in by_name.get(p.parent or "", ()) if q is not p]
        if not candidates:
            roots.append(p)
            continue

        def overlap(q: Phase) -> float:
            if None in (p.start_s, p.end_s, q.start_s, q.end_s):
                return 0.0
            return min(p.end_s, q.end_s) - max(p.start_s, q.start_s)  # type: ignore[operator]

        children[id(max(candidates, key=overlap))].append(p)
    out: list[Phase] = []

    def walk(p: Phase, depth: int) -> None:
        if depth > len(HIERARCHY) + 1:  # a cycle cannot come from HIERARCHY; be safe anyway
            return
        out.append(p)
        for c in sorted(children[id(p)], key=_key):
            walk(c, depth + 1)

    for r in sorted(roots, key=_key):
        walk(r, 0)
    return out


def union_s(intervals: Iterable[tuple[float, float]]) -> float:
    """Length of the union of ``(start, end)`` intervals (overlaps counted once)."""
    spans = sorted((a, b) for a, b in intervals if b >= a)
    total = 0.0
    cur_a = cur_b = None
    for a, b in spans:
        if cur_b is None or a > cur_b:
            if cur_b is not None:
                total += cur_b - cur_a
            cur_a, cur_b = a, b
        elif b > cur_b:
            cur_b = b
    if cur_b is not None:
        total += cur_b - cur_a
    return total


def total_covered_s(phases: Iterable[Phase]) -> float:
    """Seconds covered by the top-level phases: the union of their intervals, never a sum.

    Phases without times (a log with neither harness times nor timestamps) are skipped.
    """
    return union_s((p.start_s, p.end_s) for p in top_level(phases) if p.start_s is not None and p.end_s is not None)


_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]{0,512}(?:\x07|\x1b\\)?|\x1b[@-_]")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_ISO = re.compile(r"^(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(?:[.,](\d{1,9}))?(Z|[+-]\d\d:?\d\d)?\s+")
_PROC = re.compile(r"^\(([^()]{0,80}?)\s*pid=(\d{1,10})[^()]{0,120}\)\s*")
_STAMP = re.compile(
    r"\b(DEBUG|INFO|WARNING|WARN|ERROR|CRITICAL)\s+(?:(\d{4})-)?(\d\d)-(\d\d)\s+(\d\d):(\d\d):(\d\d)(?:[.,](\d{1,6}))?"
    r"(?:\s+\[[^\]]{0,200}\]|\s+[\w.-]{1,100}:\d{1,6}\])?\s*"
)
_TAG = re.compile(r"^(?:\[[\w.-]{1,40}\]\s+)+")

_NUM = r"(\d{1,15}(?:,\d{3}){0,5}(?:\.\d{1,12})?|\.\d{1,12})"
_SECS = r"\s?s(?:ecs?|econds?)?\b"


def _num(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text.replace(",", ""))
    except (ValueError, OverflowError):
        return None
    if not math.isfinite(value) or value < 0:
        return None
    return value


def _dur(text: str | None) -> float | None:
    value = _num(text)
    if value is None or value > MAX_DURATION_S:
        return None
    return value


def _int(text: str | None) -> int | None:
    value = _num(text)
    if value is None or value > 1e15:
        return None
    return int(value)


def clean_line(line: Any) -> str:
    """A log line as text: bytes decoded, colours and control characters removed, cut to size."""
    if isinstance(line, (bytes, bytearray)):
        line = bytes(line).decode("utf-8", "replace")
    elif not isinstance(line, str):
        line = str(line)
    line = line[: MAX_LINE_CHARS * 2]
    if "\x1b" in line:
        line = _ANSI.sub("", line)
    line = _CONTROL.sub("", line)
    return line[:MAX_LINE_CHARS].strip()


def _finite(t: Any) -> float | None:
    if isinstance(t, bool) or t is None:
        return None
    try:
        value = float(t)
    except (TypeError, ValueError, OverflowError):
        return None
    return value if math.isfinite(value) else None


# --------------------------------------------------------------------------- patterns

_P = {
    "start_load": re.compile(r"Starting to load model (.{1,2000}?)\s*(?:\.\.\.)?\s*$"),
    "weights": re.compile(r"Loading weights took " + _NUM + _SECS),
    "model_loading": re.compile(
        r"Model loading took " + _NUM + r"\s?Gi?B(?: memory)? and " + _NUM + _SECS
    ),
    "old_weights_mem": re.compile(r"Loading model weights took " + _NUM + r"\s?Gi?B"),
    "model_init": re.compile(r"Initializing model took " + _NUM + _SECS),
    "dynamo": re.compile(r"Dynamo bytecode transform time: " + _NUM + _SECS),
    "compile_range": re.compile(
        r"Compiling a graph for (?:compile range (.{0,200}?)|(dynamic|general) shape|shape (\S{1,64})) takes "
        + _NUM + _SECS
    ),
    "graph_cache_hit": re.compile(
        r"Directly load the compiled graph(?:\(s\)|s)? for (.{0,200}?) from the cache, took " + _NUM + _SECS
    ),
    "aot_load": re.compile(r"Directly load AOT compilation from path"),
    "aot_fail": re.compile(r"Compiling model again due to a load failure(?:.{0,2000}?, reason: (.{0,500}))?"),
    "aot_saved": re.compile(r"saved AOT compiled function to"),
    "aot_unable": re.compile(r"unable to save AOT compiled function"),
    "graph_store": re.compile(r"Cache the graph of compile range .{0,200}? for later use"),
    "tc_and_prof": re.compile(r"torch\.compile and initial profiling/warmup run together took " + _NUM + _SECS),
    "torch_compile": re.compile(r"torch\.compile (?:took|takes) " + _NUM + r"\s?s in total"),
    "tc_start": re.compile(r"Starting torch\.compile\b"),
    "profiling": re.compile(r"Initial profiling/warmup run took " + _NUM + _SECS),
    "mem_profiling": re.compile(r"Memory profiling takes " + _NUM + _SECS),
    "kv_avail": re.compile(r"Available KV cache memory: " + _NUM + r"\s?GiB"),
    "kv_set": re.compile(r"(Explicitly|Auto) set \(" + _NUM + r"\s?/\s?" + _NUM + r"\)\s?GiB for KV cache"),
    "kv_size": re.compile(r"(?:(\w{1,16}(?: \+ \w{1,16})?) )?KV cache size: " + _NUM + r" tokens"),
    "max_conc": re.compile(r"Maximum concurrency for " + _NUM + r" tokens per request: " + _NUM + r"\s?x"),
    "blocks": re.compile(r"# (\w{1,10}) blocks: (\d{1,15})"),
    "graph": re.compile(r"Graph capturing finished in " + _NUM + _SECS + r"(?:, took " + _NUM + r"\s?GiB)?"),
    "init_engine": re.compile(
        r"init engine \(profile, create kv cache, warmup model\) took " + _NUM + _SECS
        + r"(?: \(compilation: " + _NUM + r"\s?s)?"
    ),
    "server": re.compile(r"Starting vLLM (?:API )?server(?: \d{1,4})? on (\S{1,500})"),
    "app_complete": re.compile(r"Application startup complete\."),
    "warmup_start": re.compile(r"Warming up model for the compilation"),
    "warmup_done": re.compile(r"Warming up done\."),
    "cache_dir": re.compile(r"Using cache directory: (\S{1,1000}) for vLLM's torch\.compile"),
}

#: cheap substring each pattern needs, checked before the regex
_NEEDS = {
    "start_load": "Starting to load model",
    "weights": "Loading weights took",
    "model_loading": "Model loading took",
    "old_weights_mem": "Loading model weights took",
    "model_init": "Initializing model took",
    "dynamo": "Dynamo bytecode transform",
    "compile_range": "Compiling a graph for",
    "graph_cache_hit": "Directly load the compiled graph",
    "aot_load": "Directly load AOT compilation",
    "aot_fail": "Compiling model again",
    "aot_saved": "saved AOT compiled function",
    "aot_unable": "unable to save AOT",
    "graph_store": "Cache the graph of compile range",
    "tc_and_prof": "torch.compile and initial profiling",
    "torch_compile": "in total",
    "tc_start": "Starting torch.compile",
    "profiling": "Initial profiling/warmup run took",
    "mem_profiling": "Memory profiling takes",
    "kv_avail": "Available KV cache memory",
    "kv_set": "GiB for KV cache",
    "kv_size": "KV cache size:",
    "max_conc": "Maximum concurrency for",
    "blocks": "blocks:",
    "graph": "Graph capturing finished",
    "init_engine": "init engine (profile",
    "server": "Starting vLLM",
    "app_complete": "Application startup complete",
    "warmup_start": "Warming up model for the compilation",
    "warmup_done": "Warming up done",
    "cache_dir": "Using cache directory",
}

_VERSION = (
    re.compile(r"Initializing an? (?:V\d )?LLM engine \(v(\d[\w.+-]{0,40})\)"),
    re.compile(r"vLLM (?:API server )?version v?(\d[\w.+-]{0,40})"),
    re.compile(r"█\s+version\s+v?(\d[\w.+-]{0,40})"),
)
_MODEL = (
    re.compile(r"with config: model='([^']{1,1000})'"),
    re.compile(r"'model': '([^']{1,1000})'"),
    re.compile(r"█\s+model\s+(\S{1,1000})"),
)
_EAGER = (re.compile(r"\benforce_eager=(True|False)\b"), re.compile(r"'enforce_eager': (True|False)\b"))
_SERVED = (
    re.compile(r"\bserved_model_name=([^,\s]{1,500})"),
    re.compile(r"'served_model_name': \['([^']{1,500})'"),
)
_COMP_MODE = re.compile(r"'mode': <CompilationMode\.(\w{1,40})")
#: V0's profiling summary: "... the rest of the memory reserved for KV Cache is 55.35GiB."
_KV_RESERVED = re.compile(r"reserved for KV Cache is " + _NUM + r"\s?GiB")


# --------------------------------------------------------------------------- parser


@dataclass
class _Line:
    t: float | None
    text: str  # without process / level prefixes
    proc: str | None
    pid: str | None


class VllmLogParser:
    """Incremental parser: ``feed(line, t_s)`` as lines arrive, ``result()`` at any time.

    ``t_s`` is the harness's monotonic seconds since launch for the moment the line was read.
    Once any line came with a harness time the log's own timestamps are ignored; a line
    without one then takes the previous line's time.
    """

    def __init__(self) -> None:
        self._phases: list[Phase] = []
        self._facts: dict[str, Any] = {}
        self._lines = 0
        self._matched = 0
        self._clock: str | None = None
        self._last_t: float | None = None
        # log clock
        self._stamp_kind: str | None = None
        self._t0: float | None = None
        self._year = 0
        self._last_month: int | None = None
        # open markers: (kind, pid) -> (t, line)
        self._open: dict[tuple[str, str | None], _Line] = {}
        self._load_starts: list[_Line] = []
        self._load_ends: list[_Line] = []  # V0's "Loading model weights took X GB": logged as the load returns
        self._kv: dict[str, Any] = {}
        self._kv_lines: list[_Line] = []
        self._hits = 0
        self._misses = 0
        self._first_line: dict[str, float] = {}
        self._errors = 0

    # ----------------------------------------------------------------- input

    def feed(self, line: Any, t_s: Any = None) -> None:
        """One line (or a chunk of lines sharing one read time)."""
        try:
            text = line.decode("utf-8", "replace") if isinstance(line, (bytes, bytearray)) else str(line)
        except Exception:  # noqa: BLE001 - a str() that raises is a garbled line
            return
        parts = text.splitlines() or [""]
        for part in parts:
            self._lines += 1
            try:
                t = _finite(t_s)
                self._feed_one(part, t if t is not None and t >= 0 else None)  # nothing precedes the launch
            except Exception:  # noqa: BLE001 - a line the patterns half-understood: skip it, never crash
                self._errors += 1  # counted, so the tests can insist it stays 0

    def feed_text(self, text: Any) -> None:
        """A whole log, times from its own timestamps."""
        if isinstance(text, (bytes, bytearray)):
            text = bytes(text).decode("utf-8", "replace")
        for part in str(text).splitlines():
            self.feed(part)

    def feed_pairs(self, pairs: Iterable[tuple[Any, Any]]) -> None:
        for item in pairs:
            try:
                t_s, line = item
            except (TypeError, ValueError):
                continue
            self.feed(line, t_s)

    # ----------------------------------------------------------------- clock

    def _log_time(self, raw: str) -> tuple[float | None, str]:
        """(seconds on the log's own clock or None, line without the RFC 3339 stamp)."""
        iso = _ISO.match(raw)
        if iso:
            rest = raw[iso.end():]
            if self._stamp_kind in (None, "iso"):
                y, mo, d, h, mi, s = (int(iso.group(i)) for i in range(1, 7))
                frac = float("0." + iso.group(7)) if iso.group(7) else 0.0
                try:
                    stamp = _dt.datetime(y, mo, d, h, mi, s)
                except ValueError:
                    return None, rest
                tz = iso.group(8)
                offset = 0.0
                if tz and tz != "Z":
                    sign = -1 if tz[0] == "-" else 1
                    digits = tz[1:].replace(":", "")
                    offset = sign * (int(digits[:2]) * 3600 + int(digits[2:4]) * 60)
                self._stamp_kind = "iso"
                return (stamp - _dt.datetime(1970, 1, 1)).total_seconds() + frac - offset, rest
            return None, rest
        if self._stamp_kind in (None, "vllm"):
            m = _STAMP.search(raw, 0, 400)
            if m:
                year = int(m.group(2)) if m.group(2) else None
                mo, d, h, mi, s = (int(m.group(i)) for i in range(3, 8))
                if year is None:
                    # no year in vLLM's default format: count year ends ourselves
                    if self._last_month is not None and mo < self._last_month - 6:
                        self._year += 1
                    self._last_month = mo
                    year = 2000 + self._year  # 2000 is a leap year: 02-29 parses
                try:
                    stamp = _dt.datetime(year, mo, d, h, mi, s)
                except ValueError:
                    return None, raw
                frac = float("0." + m.group(8)) if m.group(8) else 0.0
                self._stamp_kind = "vllm"
                return (stamp - _dt.datetime(1970, 1, 1)).total_seconds() + frac, raw
        return None, raw

    # ----------------------------------------------------------------- one line

    def _feed_one(self, raw_line: str, t_s: float | None) -> None:
        raw = clean_line(raw_line)
        if not raw:
            return
        log_t, raw = self._log_time(raw)
        if t_s is not None:
            self._clock = "harness"
            t = t_s
        elif self._clock == "harness":
            t = self._last_t
        elif log_t is not None:
            if self._t0 is None:
                self._t0 = log_t
            self._clock = "log"
            t = log_t - self._t0
        else:
            t = self._last_t
        if t is not None:
            self._last_t = t

        proc = pid = None
        m = _PROC.match(raw)
        if m:
            name = m.group(1).strip()
            pid = m.group(2)
            proc = f"{name} pid={pid}" if name else f"pid={pid}"
            raw = raw[m.end():]
        m = _STAMP.match(raw)
        if m:
            raw = raw[m.end():]
        m = _TAG.match(raw)
        tag = None
        if m:
            tag = m.group(0).strip()
            raw = raw[m.end():]
        line = _Line(t, raw, proc, pid)
        if t is not None:
            key = (proc.rsplit(" pid=", 1)[0] or "?") if proc else "(no prefix)"
            self._first_line.setdefault(key, t)
        if self._facts_from(raw):
            self._matched += 1
        for key, needle in _NEEDS.items():
            if needle in raw:
                match = _P[key].search(raw)
                if match and getattr(self, "_on_" + key)(line, match, tag) is not False:
                    self._matched += 1
                    return

    # ----------------------------------------------------------------- facts

    def _facts_from(self, text: str) -> bool:
        found = False
        if "version" in text or "LLM engine (v" in text:
            for rx in _VERSION:
                m = rx.search(text)
                if m and "version" not in self._facts:
                    self._facts["version"] = m.group(1).rstrip(".,)")
                    found = True
        if "model" in text:
            for rx in _MODEL:
                m = rx.search(text)
                if m and "model" not in self._facts:
                    self._facts["model"] = m.group(1)
                    found = True
        if "enforce_eager" in text and ("with config:" in text or "args:" in text):
            for rx in _EAGER:
                m = rx.search(text)
                if m:
                    self._facts["enforce_eager"] = m.group(1) == "True"
                    found = True
                    break
        if "served_model_name" in text:
            for rx in _SERVED:
                m = rx.search(text)
                if m and "served_model_name" not in self._facts and m.group(1) != "None":
                    self._facts["served_model_name"] = m.group(1)
                    found = True
        if "Enforce eager set" in text:
            self._facts["enforce_eager"] = True
            found = True
        if "reserved for KV Cache is" in text:
            m = _KV_RESERVED.search(text)
            gib = _num(m.group(1)) if m else None
            if gib is not None:
                self._facts.setdefault("kv_cache_memory_gib", gib)
                found = True
        if "CompilationMode." in text:
            m = _COMP_MODE.search(text)
            if m:
                self._facts["compilation_mode"] = m.group(1)
                found = True
        return found

    # ----------------------------------------------------------------- phase builders

    def _stated(self, name: str, line: _Line, duration: float | None, **attrs: Any) -> Phase | None:
        if duration is None:
            return None
        end = line.t
        start = None if end is None else end - duration
        if start is not None and self._clock == "harness" and start < 0:
            attrs["clamped_s"] = -start  # nothing starts before the launch
            start = 0.0
        phase = Phase(name, start, end, duration, None, line.text, STATED, line.proc,
                      {k: v for k, v in attrs.items() if v is not None})
        self._phases.append(phase)
        return phase

    def _markers(self, name: str, start: _Line, end: _Line, **attrs: Any) -> Phase | None:
        if start.t is None or end.t is None or end.t < start.t:
            return None
        phase = Phase(name, start.t, end.t, end.t - start.t, None, end.text, MARKERS, end.proc or start.proc,
                      {"start_line": start.text, **{k: v for k, v in attrs.items() if v is not None}})
        self._phases.append(phase)
        return phase

    # ----------------------------------------------------------------- handlers

    def _on_start_load(self, line: _Line, m: re.Match, tag: str | None) -> None:
        self._load_starts.append(line)
        self._facts.setdefault("model", m.group(1).rstrip("."))

    def _on_weights(self, line: _Line, m: re.Match, tag: str | None) -> Any:
        return self._stated("weights_load", line, _dur(m.group(1))) or False

    def _on_model_loading(self, line: _Line, m: re.Match, tag: str | None) -> Any:
        gib = _num(m.group(1))
        if gib is not None:
            self._facts.setdefault("weights_gib", gib)
        return self._stated("model_load", line, _dur(m.group(2)), gib=gib) or False

    def _on_old_weights_mem(self, line: _Line, m: re.Match, tag: str | None) -> Any:
        gib = _num(m.group(1))
        if gib is None:
            return False
        self._facts.setdefault("weights_gib", gib)
        self._load_ends.append(line)

    def _on_model_init(self, line: _Line, m: re.Match, tag: str | None) -> Any:
        return self._stated("model_init", line, _dur(m.group(1))) or False

    def _on_dynamo(self, line: _Line, m: re.Match, tag: str | None) -> Any:
        return self._stated("dynamo_transform", line, _dur(m.group(1)), tag=tag) or False

    def _on_compile_range(self, line: _Line, m: re.Match, tag: str | None) -> Any:
        shape = m.group(1) or m.group(2) or m.group(3)
        phase = self._stated("inductor_compile", line, _dur(m.group(4)), compile_range=shape, tag=tag)
        if phase is None:
            return False
        self._misses += 1

    def _on_graph_cache_hit(self, line: _Line, m: re.Match, tag: str | None) -> Any:
        phase = self._stated("compiled_graph_load", line, _dur(m.group(2)), compile_range=m.group(1), tag=tag,
                             cache="hit")
        if phase is None:
            return False
        self._hits += 1

    def _on_aot_load(self, line: _Line, m: re.Match, tag: str | None) -> None:
        self._hits += 1
        self._close_compile(line, "hit", tag)

    def _on_aot_fail(self, line: _Line, m: re.Match, tag: str | None) -> None:
        self._misses += 1
        if m.group(1):
            self._facts.setdefault("compile_cache_load_failure", m.group(1).strip())

    def _on_aot_saved(self, line: _Line, m: re.Match, tag: str | None) -> None:
        self._misses += 1
        self._close_compile(line, "miss", tag)

    def _on_aot_unable(self, line: _Line, m: re.Match, tag: str | None) -> None:
        self._misses += 1
        self._close_compile(line, "miss", tag)

    def _on_graph_store(self, line: _Line, m: re.Match, tag: str | None) -> None:
        self._misses += 1

    def _on_tc_and_prof(self, line: _Line, m: re.Match, tag: str | None) -> Any:
        self._open.pop(("compile", line.pid), None)
        return self._stated("torch_compile", line, _dur(m.group(1)), includes_profiling=True, tag=tag) or False

    def _on_torch_compile(self, line: _Line, m: re.Match, tag: str | None) -> Any:
        self._open.pop(("compile", line.pid), None)
        return self._stated("torch_compile", line, _dur(m.group(1)), tag=tag) or False

    def _on_tc_start(self, line: _Line, m: re.Match, tag: str | None) -> None:
        self._open[("compile", line.pid)] = line

    def _close_compile(self, line: _Line, cache: str, tag: str | None) -> None:
        start = self._open.pop(("compile", line.pid), None)
        if start is not None:
            self._markers("torch_compile", start, line, cache=cache, tag=tag)

    def _on_profiling(self, line: _Line, m: re.Match, tag: str | None) -> Any:
        return self._stated("profiling", line, _dur(m.group(1)), tag=tag) or False

    def _on_mem_profiling(self, line: _Line, m: re.Match, tag: str | None) -> Any:
        return self._stated("profiling", line, _dur(m.group(1)), wording="memory profiling") or False

    def _kv_event(self, line: _Line, **attrs: Any) -> None:
        for k, v in attrs.items():
            if v is not None:
                self._kv.setdefault(k, v)
        self._kv_lines.append(line)

    def _on_kv_avail(self, line: _Line, m: re.Match, tag: str | None) -> Any:
        gib = _num(m.group(1))
        if gib is None:
            return False
        self._kv_event(line, gib=gib)

    def _on_kv_set(self, line: _Line, m: re.Match, tag: str | None) -> Any:
        gib = _num(m.group(2))
        if gib is None:
            return False
        self._kv_event(line, gib=gib, memory_total_gib=_num(m.group(3)), how=m.group(1).lower())

    def _on_kv_size(self, line: _Line, m: re.Match, tag: str | None) -> Any:
        tokens = _int(m.group(2))
        if tokens is None:
            return False
        conc = _P["max_conc"].search(line.text)
        self._kv_event(line, tokens=tokens, device=m.group(1),
                       max_concurrency=_num(conc.group(2)) if conc else None,
                       max_concurrency_tokens=_int(conc.group(1)) if conc else None)

    def _on_max_conc(self, line: _Line, m: re.Match, tag: str | None) -> Any:
        self._kv_event(line, max_concurrency=_num(m.group(2)), max_concurrency_tokens=_int(m.group(1)))

    def _on_blocks(self, line: _Line, m: re.Match, tag: str | None) -> Any:
        blocks = _int(m.group(2))
        if blocks is None:
            return False
        self._kv_event(line, **{f"{m.group(1).lower()}_blocks": blocks})

    def _on_graph(self, line: _Line, m: re.Match, tag: str | None) -> Any:
        return self._stated("graph_capture", line, _dur(m.group(1)), gib=_num(m.group(2))) or False

    def _on_init_engine(self, line: _Line, m: re.Match, tag: str | None) -> Any:
        compilation = _dur(m.group(2))
        if compilation is not None:
            self._facts["compilation_s"] = compilation
        return self._stated("engine_init", line, _dur(m.group(1)), compilation_s=compilation) or False

    def _on_server(self, line: _Line, m: re.Match, tag: str | None) -> None:
        url = m.group(1).rstrip(".,")
        self._facts.setdefault("url", url)
        self._open.setdefault(("server", None), line)

    def _on_app_complete(self, line: _Line, m: re.Match, tag: str | None) -> None:
        start = self._open.pop(("server", None), None)
        if start is not None:
            self._markers("api_server_start", start, line, url=self._facts.get("url"))
        self._facts["application_startup_complete"] = True

    def _on_warmup_start(self, line: _Line, m: re.Match, tag: str | None) -> None:
        self._open[("warmup", line.pid)] = line
        self._open.setdefault(("compile", line.pid), line)

    def _on_warmup_done(self, line: _Line, m: re.Match, tag: str | None) -> None:
        start = self._open.pop(("warmup", line.pid), None)
        if start is not None:
            self._markers("warmup", start, line)

    def _on_cache_dir(self, line: _Line, m: re.Match, tag: str | None) -> None:
        self._facts.setdefault("compile_cache_dir", m.group(1))

    # ----------------------------------------------------------------- result

    def result(self) -> StartupLog:
        """The phases and facts so far; may be called at any time (a fresh copy each call)."""
        phases = [replace(p, attrs=dict(p.attrs)) for p in self._phases]
        names = {p.name for p in phases}
        # the CPU runner states no "Model loading took": load start marker -> last load line
        if "model_load" not in names:
            for start in self._load_starts:
                if start.t is None:
                    continue

                def same_proc(proc: str | None) -> bool:
                    return start.pid is None or proc is None or proc.endswith(f"pid={start.pid}")

                kids = [p for p in phases if p.name in ("weights_load", "model_init") and p.end_s is not None
                        and p.end_s >= start.t and same_proc(p.proc)]
                ends = [(p.end_s, p.source, p.proc) for p in kids]
                ends += [(ln.t, ln.text, ln.proc) for ln in self._load_ends
                         if ln.t is not None and ln.t >= start.t and same_proc(ln.proc)]
                if ends:
                    end_t, source, proc = max(ends, key=lambda e: e[0])
                    # it began no later than its earliest child (the log clock has 1 s steps)
                    begin = min([start.t] + [p.start_s for p in kids if p.start_s is not None])
                    phases.append(Phase("model_load", begin, end_t, end_t - begin, None, source, MARKERS,
                                        proc or start.proc, {"start_line": start.text}))
        # torch.compile from markers only where the log states no torch.compile time
        if any(p.name == "torch_compile" and p.method == STATED for p in phases):
            phases = [p for p in phases if not (p.name == "torch_compile" and p.method == MARKERS)]
        # the server line without uvicorn's line (yet): an instant
        server = self._open.get(("server", None))
        if server is not None and not any(p.name == "api_server_start" for p in phases) and server.t is not None:
            phases.append(Phase("api_server_start", server.t, server.t, 0.0, None, server.text, EVENT, server.proc,
                                {"url": self._facts.get("url"), "complete": False}))
        if self._kv_lines:
            times = [ln.t for ln in self._kv_lines if ln.t is not None]
            start = min(times) if times else None
            end = max(times) if times else None
            last = self._kv_lines[-1]
            phases.append(Phase("kv_cache", start, end, (end - start) if times else 0.0, None, last.text, EVENT,
                                last.proc, dict(self._kv)))
        names = {p.name for p in phases}
        for p in phases:
            p.parent = next((a for a in HIERARCHY.get(p.name, ()) if a in names), None)
        phases = tree_order(phases)
        facts = dict(self._facts)
        if self._first_line:
            facts["process_first_line_s"] = dict(self._first_line)
        if self._kv:
            if "gib" in self._kv:
                facts["kv_cache_gib"] = self._kv["gib"]
            if "tokens" in self._kv:
                facts["kv_cache_tokens"] = self._kv["tokens"]
            if "max_concurrency" in self._kv:
                facts["max_concurrency"] = self._kv["max_concurrency"]
            if "max_concurrency_tokens" in self._kv:
                facts["max_concurrency_tokens_per_request"] = self._kv["max_concurrency_tokens"]
            if "gib" in self._kv:  # the V1 wordings win over V0's profiling summary
                facts["kv_cache_memory_gib"] = self._kv["gib"]
        if "weights_gib" in facts:
            facts["weights_memory_gib"] = facts["weights_gib"]
        facts["compile_cache_hits"] = self._hits
        facts["compile_cache_misses"] = self._misses
        if self._hits and self._misses:
            facts["compile_cache"] = "partial"
        elif self._hits:
            facts["compile_cache"] = "hit"
        elif self._misses:
            facts["compile_cache"] = "miss"
        else:
            facts["compile_cache"] = None
        return StartupLog(phases, facts, self._clock, self._lines, self._matched, self._errors)


def parse_log(log: Any) -> StartupLog:
    """Parse a whole log text (times from its own timestamps) or ``(t_s, line)`` pairs.

    ``log`` may be ``str``/``bytes`` (a whole log), an iterable of ``(t_s, line)`` pairs, or an
    iterable of lines without times.
    """
    parser = VllmLogParser()
    if isinstance(log, (str, bytes, bytearray)):
        parser.feed_text(log)
        return parser.result()
    try:
        items: Iterator[Any] = iter(log)
    except TypeError:
        parser.feed_text(str(log))
        return parser.result()
    for item in items:
        if isinstance(item, (tuple, list)) and len(item) == 2:
            parser.feed(item[1], item[0])
        else:
            parser.feed(item)
    return parser.result()
