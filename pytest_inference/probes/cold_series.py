"""N cold starts of a local server, each timed launch → first token, with its log phases.

Cache state is explicit: ``fresh`` gives every start a new compile cache (truly cold);
``warm`` keeps one cache across the starts and primes it with an uncounted start first.
The floor is the time the weights alone need at the model path's measured read bandwidth
(page cache excluded): cold start ÷ floor says how far startup is from I/O-bound.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..storage.read import read_bandwidth, weight_bytes
from ..vllm.startup_log import VllmLogParser
from .coldstart import ColdStartRun, floor_ratio, floor_s, spread_s


@dataclass
class ColdSeries:
    runs: list[ColdStartRun]
    cache_state: str
    weight_bytes: int | None = None
    read: dict[str, Any] | None = None
    floor_s: float | None = None
    primed: bool = False
    logs: list[str] = field(default_factory=list)

    @property
    def totals(self) -> list[float]:
        return [r.total_s for r in self.runs if r.total_s is not None]

    @property
    def health(self) -> list[float]:
        return [r.health_s for r in self.runs if r.health_s is not None]

    @property
    def spread_s(self) -> float | None:
        return spread_s(self.runs)

    def phase_durations(self) -> dict[str, list[float]]:
        """Per phase name, its duration in every run that logged it."""
        out: dict[str, list[float]] = {}
        for r in self.runs:
            for p in r.phases:
                out.setdefault(p.name, []).append(p.duration_s)
        return out

    def floor_ratios(self) -> list[float]:
        if not self.floor_s:
            return []
        return [x for x in (floor_ratio(t, self.floor_s) for t in self.totals) if x is not None]

    def details(self) -> dict[str, Any]:
        return {
            "cache_state": self.cache_state,
            "primed_uncounted_start": self.primed,
            "runs": [r.to_dict() for r in self.runs],
            "weight_bytes": self.weight_bytes,
            "read_bandwidth": self.read,
            "floor_s": self.floor_s,
        }


def _one(servers, cache_dir: Path | None, cache_state: str, progress_factory, label: str) -> ColdStartRun:
    parser = VllmLogParser()
    handle = servers.cold(cache_dir=cache_dir, on_line=lambda line, t: parser.feed(line, t))

    def latest_phase() -> str | None:
        phases = parser.result().phases
        return phases[-1].name if phases else None

    progress = progress_factory(label, latest_phase) if progress_factory else None
    try:
        tl = handle.wait_ready(first_token=True, progress=progress)
    finally:
        handle.stop()
    return ColdStartRun.from_log(
        list(tl.lines),
        launched_at=tl.launched_at,
        port_open_s=tl.port_open_s,
        health_s=tl.health_s,
        first_token_s=tl.first_token_s,
        cache_state=cache_state,
        lock_wait_s=tl.lock_wait_s,
        facts={"command": tl.command, "pinning": tl.pinning, "first_request_ttft_ms": tl.ttft_ms},
    )


def measure_cold_starts(
    servers,
    runs: int,
    cache_state: str = "fresh",
    progress_factory: Callable[[str, Callable[[], str | None]], Any] | None = None,
    measure_floor: bool = True,
) -> ColdSeries:
    if cache_state not in ("fresh", "warm"):
        raise ValueError(f"cache_state must be fresh or warm, not {cache_state!r}")
    from ..local import new_run_dir

    shared_cache = None
    primed = False
    out = []
    try:
        if cache_state == "warm":  # one compile cache across the starts, removed after them
            shared_cache = new_run_dir(servers.local.state_dir, "warm-cache")
            _one(servers, shared_cache, "fresh", progress_factory, "coldstart: priming the compile cache (uncounted)")
            primed = True
        for i in range(runs):
            out.append(_one(servers, shared_cache, cache_state, progress_factory, f"coldstart {i + 1}/{runs}"))
    finally:
        if shared_cache is not None:
            shutil.rmtree(shared_cache, ignore_errors=True)
    series = ColdSeries(runs=out, cache_state=cache_state, primed=primed)
    if measure_floor:
        model_path = servers.local.model_path
        try:
            series.weight_bytes = weight_bytes(model_path)
            result = read_bandwidth(model_path)
        except (OSError, ValueError) as exc:
            series.read = {"error": str(exc)}
        else:
            series.read = result.to_dict()
            series.floor_s = floor_s(series.weight_bytes, result.MBps)
    return series
