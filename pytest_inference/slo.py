"""Service-level objectives for load: parse ``ttft_ms:400,tpot_ms:80,e2e_ms:5000``, decide per
request whether it met *every* bound, and the attainment (the share that did) of a run.

Pure: no pytest, no I/O. A request that failed (``ok`` false: an error status, a cut stream) or
timed out is a miss whatever its timings; so is one that lacks a figure a bound is set on (a
TPOT bound and a one-token answer: nothing says it met it). The attainment claim is judged by
:func:`pytest_inference.claims.judge` with ``stat="attainment"`` over :func:`met_samples`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable

#: the SLO keys and the request figure each bounds (ms, inclusive: ttft_ms <= bound meets it)
KEYS = {"ttft_ms": "ttft_ms", "tpot_ms": "tpot_ms", "e2e_ms": "e2e_ms"}


@dataclass(frozen=True)
class SLO:
    """Upper bounds in ms; None = not bounded."""

    ttft_ms: float | None = None
    tpot_ms: float | None = None
    e2e_ms: float | None = None

    def __post_init__(self) -> None:
        for k in KEYS:
            v = getattr(self, k)
            if v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise ValueError(f"SLO bound {k} must be a number > 0; got {v!r}")
        if not self.bounds():
            raise ValueError("an SLO needs at least one bound (ttft_ms, tpot_ms, e2e_ms)")

    def bounds(self) -> dict[str, float]:
        return {k: float(getattr(self, k)) for k in KEYS if getattr(self, k) is not None}

    def __str__(self) -> str:
        return ",".join(f"{k}:{_num(v)}" for k, v in self.bounds().items())


def _num(v: float) -> str:
    return str(int(v)) if v == int(v) else repr(v)


def parse(text: str) -> SLO:
    """``"ttft_ms:400,tpot_ms:80,e2e_ms:5000"`` → :class:`SLO` (any subset, any order; ``key=value``
    also reads). Bad input (empty, an unknown key, not a number, <= 0, a key twice) raises a
    one-line ValueError."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("--slo is empty; give bounds like ttft_ms:400,tpot_ms:80,e2e_ms:5000")
    seen: dict[str, float] = {}
    for part in text.split(","):
        part = part.strip()
        if not part:
            raise ValueError(f"--slo {text!r}: an empty item (two commas?)")
        key, sep, raw = part.partition(":")
        if not sep:
            sep_eq = "=" in part
            key, _, raw = part.partition("=") if sep_eq else (part, "", "")
            if not sep_eq:
                raise ValueError(f"--slo {text!r}: {part!r} is not key:value (e.g. ttft_ms:400)")
        key = key.strip().lower()
        if key not in KEYS:
            raise ValueError(f"--slo {text!r}: unknown key {key!r}; known: {', '.join(KEYS)}")
        if key in seen:
            raise ValueError(f"--slo {text!r}: {key} given twice")
        try:
            v = float(raw.strip())
        except ValueError:
            raise ValueError(f"--slo {text!r}: {key} is not a number: {raw.strip()!r}") from None
        if not math.isfinite(v) or v <= 0:
            raise ValueError(f"--slo {text!r}: {key} must be > 0 ms; got {raw.strip()}")
        seen[key] = v
    return SLO(**seen)


def _get(result: Any, name: str) -> Any:
    if isinstance(result, dict):
        return result.get(name)
    return getattr(result, name, None)


def miss_reason(result: Any, slo: SLO) -> str | None:
    """Why ``result`` (a :class:`~pytest_inference.engine.RequestResult` or a dict with the same
    names) missed the SLO, or None when it met every bound."""
    if _get(result, "timed_out"):
        return "timed out"
    if not _get(result, "ok"):
        return f"failed: {_get(result, 'error') or 'not ok'}"
    for key, bound in slo.bounds().items():
        v = _get(result, KEYS[key])
        if v is None:
            return f"no {key}"
        if float(v) > bound:
            return f"{key} {float(v):.1f} > {_num(bound)}"
    return None


def meets(result: Any, slo: SLO) -> bool:
    """True when the request succeeded and met every bound of ``slo``."""
    return miss_reason(result, slo) is None


def met_samples(results: Iterable[Any], slo: SLO) -> list[float]:
    """1.0 / 0.0 per request: the samples ``judge(..., stat="attainment")`` takes."""
    return [1.0 if meets(r, slo) else 0.0 for r in results]


def attainment(results: Iterable[Any], slo: SLO) -> float | None:
    """Share of ``results`` meeting every bound (errors and timeouts are misses); None for none."""
    xs = met_samples(results, slo)
    return sum(xs) / len(xs) if xs else None


def goodput_rps(results: Iterable[Any], slo: SLO, wall_s: float) -> float:
    """Requests per second that met the SLO over a run of ``wall_s`` seconds."""
    if not wall_s > 0:
        raise ValueError(f"wall_s must be > 0; got {wall_s!r}")
    return sum(met_samples(results, slo)) / wall_s
