"""Cold start: launch → first token, its phases, and the storage floor under it.

Pure observations (no server, no drawing):

- :class:`ColdStartRun` — one cold start: milestones in seconds since launch (port open,
  ``/health`` 200, first streamed token), the phases parsed from the server log
  (:mod:`pytest_inference.vllm.startup_log`), the cache state and the time spent waiting for a lock before the
  launch (not part of the cold start).  ``timeline_rows()`` are the timeline's rows as data; the report
  side draws them (:mod:`pytest_inference.report.figures`).
- :func:`floor_s` — the least time the weights can take to come off storage at a measured
  bandwidth (:func:`pytest_inference.storage.read.read_bandwidth`); :func:`floor_ratio` — cold start ÷ floor;
  :func:`spread_s` over several runs.
- :func:`timeline_json`.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from ..vllm.startup_log import HIERARCHY, Phase, StartupLog, parse_log, top_level, total_covered_s, tree_order

MB = 1_000_000
CACHE_STATES = ("fresh", "warm")

MILESTONES = (("port_open_s", "launch → port open"), ("health_s", "launch → /health 200"),
              ("first_token_s", "launch → first token"))


def _opt_float(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


# --------------------------------------------------------------------------- one run


@dataclass
class ColdStartRun:
    """One cold start.  Times are seconds since the launch on a monotonic clock.

    ``launched_at`` is the wall-clock time of the launch (epoch seconds or an ISO string),
    for the report only; it is never used for arithmetic.  ``lock_wait_s`` is time spent
    waiting for a lock *before* the launch (a shared GPU, a port): excluded from every figure.
    """

    launched_at: float | str | None = None
    port_open_s: float | None = None
    health_s: float | None = None
    first_token_s: float | None = None
    phases: list[Phase] = field(default_factory=list)
    cache_state: str = "fresh"
    lock_wait_s: float = 0.0
    facts: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.cache_state not in CACHE_STATES:
            raise ValueError(f"cache_state must be one of {CACHE_STATES}, not {self.cache_state!r}")

    @classmethod
    def from_log(cls, log: Any, **kwargs: Any) -> "ColdStartRun":
        """Parse ``log`` (``(t_s, line)`` pairs or a whole text) into ``phases`` and ``facts``."""
        parsed = log if isinstance(log, StartupLog) else parse_log(log)
        facts = dict(parsed.facts)
        facts["log_clock"] = parsed.clock
        facts.update(kwargs.pop("facts", {}) or {})
        return cls(phases=list(parsed.phases), facts=facts, **kwargs)

    @property
    def total_s(self) -> float | None:
        """Launch → first token: the cold start."""
        return _opt_float(self.first_token_s)

    @property
    def covered_s(self) -> float:
        """Seconds the log's top-level phases cover (union, never a sum)."""
        return total_covered_s(self.phases)

    @property
    def uncovered_s(self) -> float | None:
        """Cold start the log's phases do not explain (process start, imports, …)."""
        total = self.total_s
        return None if total is None else max(0.0, total - self.covered_s)

    def phase(self, name: str) -> Phase | None:
        return next((p for p in self.phases if p.name == name), None)

    def timeline_rows(self) -> list[tuple[str, float, float]]:
        """``(label, start_s, end_s)`` rows of the timeline (drawn by :func:`pytest_inference.report.figures.timeline`).

        The timed phases depth first, nested ones marked ``└ `` (``└── `` one level deeper) under their parent, then the
        milestones as bars from the launch (0) to the moment they were reached.
        """
        rows: list[tuple[str, float, float]] = []
        for phase, depth in _with_depth(self.phases):
            start, end = _opt_float(phase.start_s), _opt_float(phase.end_s)
            if start is None or end is None or end < start:
                continue
            # labels are right-aligned on the chart: depth shows as a longer branch, "└── " under "└ "
            label = ("└" + "──" * (depth - 1) + " " if depth else "") + phase.name
            rows.append((label, start, end))
        for attr, label in MILESTONES:
            t = _opt_float(getattr(self, attr))
            if t is not None and t >= 0:
                rows.append((label, 0.0, t))
        return rows

    def to_dict(self) -> dict[str, Any]:
        launched = self.launched_at
        out: dict[str, Any] = {
            "launched_at": launched,
            "port_open_s": _opt_float(self.port_open_s),
            "health_s": _opt_float(self.health_s),
            "first_token_s": _opt_float(self.first_token_s),
            "total_s": self.total_s,
            "cache_state": self.cache_state,
            "lock_wait_s": _opt_float(self.lock_wait_s),
            "covered_s": self.covered_s,
            "uncovered_s": self.uncovered_s,
            "phases": [p.to_dict() for p in self.phases],
            "top_level": [p.name for p in top_level(self.phases)],
            "facts": dict(self.facts),
        }
        if isinstance(launched, (int, float)) and not isinstance(launched, bool) and math.isfinite(launched):
            out["launched_at_iso"] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(launched)) + "Z"
        return out


def _with_depth(phases: Sequence[Phase]) -> list[tuple[Phase, int]]:
    present = {p.name for p in phases}
    out = []
    for p in tree_order(phases):
        depth, name, seen = 0, p.parent, set()
        while name and name in present and name not in seen:
            seen.add(name)
            depth += 1
            name = next((a for a in HIERARCHY.get(name, ()) if a in present), None)
        out.append((p, depth))
    return out


# --------------------------------------------------------------------------- pure math


def floor_s(weight_bytes: float, MBps: float) -> float:
    """Seconds to read ``weight_bytes`` at ``MBps`` (MB = 10**6 bytes): the storage floor."""
    b, rate = float(weight_bytes), float(MBps)
    if not math.isfinite(b) or b < 0:
        raise ValueError(f"weight_bytes must be finite and >= 0, not {weight_bytes!r}")
    if not math.isfinite(rate) or rate <= 0:
        raise ValueError(f"MBps must be finite and > 0, not {MBps!r}")
    return b / (rate * MB)


def floor_ratio(cold_start_s: float, floor: float) -> float | None:
    """Cold start ÷ storage floor (1.0 = the cold start is all storage); ``None`` without a floor."""
    c, f = _opt_float(cold_start_s), _opt_float(floor)
    if c is None or f is None or f <= 0 or c < 0:
        return None
    return c / f


def spread_s(runs: Iterable[ColdStartRun | float | None]) -> float | None:
    """max − min of the runs' cold starts (``first_token_s``, or plain numbers).

    Runs without a first token are left out; ``None`` when fewer than two remain.
    """
    values = []
    for r in runs:
        v = _opt_float(r.total_s if isinstance(r, ColdStartRun) else r)
        if v is not None:
            values.append(v)
    return max(values) - min(values) if len(values) >= 2 else None


# --------------------------------------------------------------------------- the timeline as data


def timeline_json(run: ColdStartRun) -> str:
    """The timeline as JSON: the chart's rows (phase or milestone, depth, parent) and the run."""
    rows = []
    for phase, depth in _with_depth(run.phases):
        rows.append({"kind": "phase", "name": phase.name, "start_s": phase.start_s, "end_s": phase.end_s,
                     "duration_s": phase.duration_s, "parent": phase.parent, "depth": depth,
                     "method": phase.method})
    for attr, label in MILESTONES:
        t = _opt_float(getattr(run, attr))
        if t is not None:
            rows.append({"kind": "milestone", "name": label, "start_s": 0.0, "end_s": t, "duration_s": t,
                         "parent": None, "depth": 0, "method": "harness"})
    return json.dumps({"rows": rows, "run": run.to_dict()}, indent=1, default=str, allow_nan=False)
