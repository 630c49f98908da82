"""Could the client time? Evidence of a loaded measuring host, and the judge that reads it.

Two readings per measured window:

* the host's CPU pressure, ``/proc/pressure/cpu`` (PSI): the ``some`` line's ``total``
  (µs during which at least one runnable task waited for a CPU) before and after the
  window gives the *stall share* of the window, and ``avg10`` at its end;
* the measuring thread's own run-queue wait (``/proc/thread-self/schedstat``, read by the
  engine around the window): how long the client itself, runnable, waited for a CPU. Every
  such wait while a response is arriving delays a timestamp by as much.

:func:`judge_client_timing` is a pure function of those readings (tested on recorded
ones). Its bounds (figures measured on the 2-core CI box, fake server, 20 × 32 tokens,
``python3 -c 'while 1: pass'`` pinned to each core for the loaded runs; see
tests/engine/test_engine_hostload.py):

* ``CLIENT_RUNQ_MS_PER_REQUEST`` = 1.0 ms: the client waited for a CPU more than 1 ms per
  measured request on average. Quiet: 0.00–0.05 ms per request; one busy loop per core:
  3–11 ms per request. 1 ms is the size of the effects the claims judge (a 5 ms spread, a
  1.5–5 ms client − server gap).
* ``PSI_SOME_SHARE`` = 0.30: tasks waited for a CPU during more than 30 % of the window.
  Quiet: 0.01–0.09; loaded: 0.7–1.0. A starved host delays the local server's sender too
  (the burst signature), which the client's own wait does not show.
"""

from __future__ import annotations

import time
from typing import Any

PSI_PATH = "/proc/pressure/cpu"
CLIENT_RUNQ_MS_PER_REQUEST = 1.0
PSI_SOME_SHARE = 0.30


def parse_pressure(text: str) -> dict[str, dict[str, float]]:
    """``{"some": {"avg10": .., "avg60": .., "avg300": .., "total": ..}, "full": {...}}``."""
    out: dict[str, dict[str, float]] = {}
    for line in text.splitlines():
        kind, _, rest = line.strip().partition(" ")
        if kind not in ("some", "full"):
            continue
        vals: dict[str, float] = {}
        for item in rest.split():
            k, sep, v = item.partition("=")
            if sep:
                try:
                    vals[k] = float(v)
                except ValueError:
                    pass
        out[kind] = vals
    return out


def read_pressure(path: str = PSI_PATH) -> dict[str, dict[str, float]] | None:
    try:
        with open(path, encoding="ascii") as f:
            p = parse_pressure(f.read())
    except (OSError, ValueError):
        return None
    return p if "some" in p and "total" in p["some"] else None


class CpuPressure:
    """``/proc/pressure/cpu`` over a window: create at its start, :meth:`window` at its end."""

    def __init__(self, path: str = PSI_PATH) -> None:
        self.path = path
        self.t0 = time.monotonic()
        self.p0 = read_pressure(path)

    def window(self) -> dict[str, Any] | None:
        p1 = read_pressure(self.path)
        wall_us = (time.monotonic() - self.t0) * 1e6
        if self.p0 is None or p1 is None or wall_us <= 0:
            return None
        some = max(0.0, p1["some"]["total"] - self.p0["some"]["total"])
        out: dict[str, Any] = {
            "window_s": round(wall_us / 1e6, 3),
            "some_share": round(min(1.0, some / wall_us), 4),
            "some_stall_ms": round(some / 1e3, 2),
            "some_avg10": p1["some"].get("avg10"),
        }
        if "full" in p1 and "full" in self.p0 and "total" in p1["full"]:
            out["full_share"] = round(min(1.0, max(0.0, p1["full"]["total"] - self.p0["full"]["total"]) / wall_us), 4)
        return out


def evidence(client_runq_ms: float | None, requests: int, cpu_pressure: dict[str, Any] | None
             ) -> dict[str, Any]:
    """The readings as they go into claim details and the summary."""
    per = client_runq_ms / requests if client_runq_ms is not None and requests > 0 else None
    return {
        "client_runq_ms": None if client_runq_ms is None else round(client_runq_ms, 3),
        "client_runq_ms_per_request": None if per is None else round(per, 3),
        "cpu_pressure": cpu_pressure,
        "bounds": {"client_runq_ms_per_request": CLIENT_RUNQ_MS_PER_REQUEST, "psi_some_share": PSI_SOME_SHARE},
    }


def judge_client_timing(ev: dict[str, Any]) -> str | None:
    """Why client-side timings of the window cannot be trusted (a loaded measuring host), or None.

    ``ev`` is :func:`evidence`'s dict. Readings that are absent (no PSI, no schedstat)
    judge nothing: the claims keep their other guards (burst detection)."""
    why = []
    per = ev.get("client_runq_ms_per_request")
    if per is not None and per > CLIENT_RUNQ_MS_PER_REQUEST:
        why.append(f"the client waited {per:.2f} ms per request for a CPU (run-queue, bound "
                   f"{CLIENT_RUNQ_MS_PER_REQUEST:g} ms)")
    psi = ev.get("cpu_pressure") or {}
    share = psi.get("some_share")
    if share is not None and share > PSI_SOME_SHARE:
        why.append(f"host CPU pressure: tasks waited for a CPU {share:.0%} of the window "
                   f"(/proc/pressure/cpu some, bound {PSI_SOME_SHARE:.0%})")
    if not why:
        return None
    return "the measuring host was loaded, the client could not time: " + "; ".join(why)
