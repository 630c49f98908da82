"""Arrival schedules for open-loop load (pure: numbers in, send offsets out).

A schedule is a list of send offsets in seconds from a common start, non-decreasing, the first at
0.0 (the first request goes at the start; each next one a gap later). Shapes:

* ``constant``: every gap is ``1 / rate``;
* ``poisson``: exponential gaps with mean ``1 / rate`` (seeded);
* ``gamma``: gamma-distributed gaps with mean ``1 / rate`` and coefficient of variation ``cv``
  (seeded): ``cv = 1`` is Poisson, ``cv > 1`` burstier (clumps and lulls), ``cv < 1`` smoother
  (shape ``k = 1 / cv**2``, scale ``1 / (rate * k)``, as ``vllm bench serve --burstiness`` with
  burstiness = ``1 / cv**2``).

Length by count (``n`` requests) or by ``duration_s`` (every arrival with offset < duration).
Bad input is one ``ValueError`` line. :func:`parse_arrival` reads an ``--arrival`` value
(``poisson``, ``constant``, ``gamma:CV``).
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from typing import Callable

__all__ = ["SHAPES", "schedule_sha256", "constant", "poisson", "gamma", "schedule", "offered_rate", "parse_arrival", "MAX_REQUESTS"]

SHAPES = ("constant", "poisson", "gamma")
#: the most arrivals one schedule may hold (a typo such as rate 1e9 must not eat the memory)
MAX_REQUESTS = 2_000_000


def _check(rate: float, n: int | None, duration_s: float | None) -> None:
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not math.isfinite(rate) or rate <= 0:
        raise ValueError(f"arrival rate must be a finite number > 0 requests/s, not {rate!r}")
    if (n is None) == (duration_s is None):
        raise ValueError("give the schedule's length as exactly one of n (requests) or duration_s (seconds)")
    if n is not None:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"request count n must be an integer >= 1, not {n!r}")
        if n > MAX_REQUESTS:
            raise ValueError(f"request count n={n} is more than {MAX_REQUESTS} arrivals in one schedule")
    else:
        if (isinstance(duration_s, bool) or not isinstance(duration_s, (int, float))
                or not math.isfinite(duration_s) or duration_s <= 0):
            raise ValueError(f"duration_s must be a finite number of seconds > 0, not {duration_s!r}")
        if rate * duration_s > MAX_REQUESTS:
            raise ValueError(f"rate {rate:g}/s for {duration_s:g} s is more than {MAX_REQUESTS} arrivals "
                             "in one schedule")


def _build(gap: Callable[[], float], n: int | None, duration_s: float | None) -> list[float]:
    out = [0.0]
    t = 0.0
    if n is not None:
        for _ in range(n - 1):
            t += gap()
            out.append(t)
        return out
    while True:
        t += gap()
        if t >= duration_s or len(out) >= MAX_REQUESTS:  # type: ignore[operator]
            return out
        out.append(t)


def constant(rate: float, *, n: int | None = None, duration_s: float | None = None) -> list[float]:
    """Offsets ``0, 1/rate, 2/rate, ...`` (computed as ``i / rate``: no drift from summing)."""
    _check(rate, n, duration_s)
    if n is None:
        n = max(1, math.ceil(duration_s * rate - 1e-9))  # type: ignore[operator]
    return [i / rate for i in range(n)]


def poisson(rate: float, *, n: int | None = None, duration_s: float | None = None, seed: int = 0) -> list[float]:
    """A Poisson process: exponential gaps of mean ``1 / rate``, reproducible from ``seed``."""
    _check(rate, n, duration_s)
    rng = random.Random(seed)
    return _build(lambda: rng.expovariate(rate), n, duration_s)


def gamma(rate: float, cv: float = 1.0, *, n: int | None = None, duration_s: float | None = None,
          seed: int = 0) -> list[float]:
    """Gamma gaps of mean ``1 / rate`` and coefficient of variation ``cv`` (> 0; 1 = Poisson)."""
    if isinstance(cv, bool) or not isinstance(cv, (int, float)) or not math.isfinite(cv) or not 0.01 <= cv <= 100:
        raise ValueError(f"burstiness cv (the gaps' coefficient of variation) must be a number in "
                         f"[0.01, 100] (1 = Poisson, > 1 burstier), not {cv!r}")
    _check(rate, n, duration_s)
    k = 1.0 / (cv * cv)
    theta = 1.0 / (rate * k)
    rng = random.Random(seed)
    return _build(lambda: rng.gammavariate(k, theta), n, duration_s)


def schedule(shape: str, rate: float, *, n: int | None = None, duration_s: float | None = None,
             seed: int = 0, cv: float = 1.0, exact_rate: bool = False) -> list[float]:
    """The schedule of a named ``shape`` (one of :data:`SHAPES`).

    ``exact_rate`` (with ``n``): the random gaps are scaled so the schedule offers exactly ``rate``
    (:func:`offered_rate`, ``(n - 1) / span``): a seeded Poisson sample of 48 arrivals at 64 req/s
    otherwise offers anywhere from ~50 to ~80 req/s, and a load run labelled "64 req/s" would have
    asked for something else. The gaps keep their shape (a Poisson schedule conditioned on its
    count and span: the arrival times are uniform order statistics)."""
    if shape == "constant":
        return constant(rate, n=n, duration_s=duration_s)
    if shape == "poisson":
        offs = poisson(rate, n=n, duration_s=duration_s, seed=seed)
    elif shape == "gamma":
        offs = gamma(rate, cv, n=n, duration_s=duration_s, seed=seed)
    else:
        raise ValueError(f"arrival shape must be one of {', '.join(SHAPES)}, not {shape!r}")
    if exact_rate and n is not None and len(offs) >= 2 and offs[-1] > 0:
        scale = (len(offs) - 1) / rate / offs[-1]
        offs = [x * scale for x in offs]
    return offs


def offered_rate(offsets: list[float] | tuple[float, ...]) -> float | None:
    """The rate a schedule asks for: ``(n - 1) / (last - first)`` arrivals per second (None for
    fewer than 2 arrivals or a zero span)."""
    if len(offsets) < 2:
        return None
    span = offsets[-1] - offsets[0]
    return (len(offsets) - 1) / span if span > 0 else None


#: the gaps' coefficient of variation a gamma schedule may have (see :func:`gamma`)
CV_RANGE = (0.01, 100.0)


def parse_arrival(text: str) -> tuple[str, float]:
    """An ``--arrival`` value -> ``(shape, cv)`` for :func:`schedule`: ``poisson`` (cv 1),
    ``constant`` (cv 1, unused) or ``gamma:CV`` (``gamma:2`` burstier than Poisson, ``gamma:0.5``
    smoother; CV in [0.01, 100]). Case and surrounding blanks are ignored; anything else is one
    ``ValueError`` line naming ``--arrival``."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"--arrival {text!r}: give poisson, constant or gamma:CV (e.g. gamma:2)")
    s = text.strip().lower()
    shape, colon, rest = s.partition(":")
    shape = shape.strip()
    if shape in ("poisson", "constant"):
        if colon:
            raise ValueError(f"--arrival {text!r}: {shape} takes no parameter (only gamma:CV does)")
        return shape, 1.0
    if shape != "gamma":
        raise ValueError(f"--arrival {text!r}: the shape must be poisson, constant or gamma:CV (e.g. gamma:2)")
    if not colon or not rest.strip():
        raise ValueError(f"--arrival {text!r}: gamma needs its coefficient of variation, e.g. gamma:2 "
                         "(1 = Poisson, > 1 burstier)")
    try:
        cv = float(rest.strip())
    except ValueError:
        raise ValueError(f"--arrival {text!r}: the gamma CV {rest.strip()!r} is not a number") from None
    lo, hi = CV_RANGE
    if not math.isfinite(cv) or not lo <= cv <= hi:
        raise ValueError(f"--arrival {text!r}: the gamma CV must be in [{lo:g}, {hi:g}] "
                         "(1 = Poisson, > 1 burstier)")
    return "gamma", cv


def schedule_sha256(definition: dict, offsets: list[float] | tuple[float, ...], max_tokens: list | tuple) -> str:
    """SHA-256 over what defines a schedule: ``definition`` (shape, rate, seed, length, workload
    content hash, api, model, max_tokens ...), every arrival's offset (to the nanosecond) and every
    request's max_tokens. Two shards with the same hash offer parts of one schedule."""
    body = json.dumps({"definition": definition, "offsets_ns": [round(x * 1e9) for x in offsets],
                       "max_tokens": list(max_tokens)}, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()
