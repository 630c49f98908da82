"""Prometheus text-format parsing and server-side cross-checks for a measured run.

A healthy client reads TTFT a little (≈1–5 ms) above the server's own histogram;
compare the client's mean against ``server_mean_ttft_ms(before, after)`` computed from
``/metrics`` scraped right before and right after the run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

TTFT_METRIC = "vllm:time_to_first_token_seconds"
#: server-side per-token latency histograms, in order of preference (names vary by vLLM version)
TPOT_METRICS = (
    "vllm:inter_token_latency_seconds",
    "vllm:time_per_output_token_seconds",
    "vllm:request_time_per_output_token_seconds",
)


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


#: what the text parser raises on a malformed page (it is a third-party parser: anything
#: but a clean parse means "not Prometheus text")
_PARSE_ERRORS = (ValueError, IndexError, KeyError, TypeError, AttributeError)


def _families(text: str):  # -> Iterator[prometheus_client.Metric]
    # lazily imported: never on the timed path, and not imported with the engine
    try:
        from prometheus_client.parser import text_string_to_metric_families
    except ImportError:
        raise ImportError("reading /metrics needs prometheus-client (pip install prometheus-client)") from None

    return text_string_to_metric_families(text)


def parse(text: str) -> list[Sample]:
    """All samples of a Prometheus text exposition, read by ``prometheus_client``'s parser
    (histogram/summary samples keep their ``_bucket``/``_sum``/``_count`` names; ``+Inf`` and
    ``NaN`` are floats). A page the parser rejects raises ``ValueError`` with one line naming
    the first line it cannot read."""
    try:
        return [Sample(s.name, dict(s.labels), float(s.value)) for fam in _families(text) for s in fam.samples]
    except _PARSE_ERRORS as e:
        raise ValueError(_first_bad_line(text, e)) from None


def _why(e: BaseException) -> str:
    return " ".join(str(e).split())[:120] or f"{type(e).__name__} from the parser"


def _first_bad_line(text: str, err: BaseException) -> str:
    """One line for a rejected page: the first line that does not parse on its own."""
    for lineno, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            for fam in _families(raw + "\n"):
                for s in fam.samples:
                    float(s.value)
        except _PARSE_ERRORS as e:
            return f"line {lineno}: cannot parse {raw[:120]!r}: {_why(e)}"
    return f"cannot parse the page: {_why(err)}"


def _match(labels: dict[str, str], where: dict[str, str] | None) -> bool:
    return not where or all(labels.get(k) == v for k, v in where.items())


def value_sum(text: str, name: str, where: dict[str, str] | None = None) -> float | None:
    """Sum of a counter or gauge over its label sets (optionally filtered); None if absent."""
    vals = [s.value for s in parse(text) if s.name == name and _match(s.labels, where)]
    return math.fsum(vals) if vals else None


def has_metric(text: str, name: str) -> bool:
    names = {s.name for s in parse(text)}
    return any(n in names for n in (name, name + "_count", name + "_sum", name + "_total"))


def histogram_sum_count(text: str, name: str, where: dict[str, str] | None = None
                        ) -> tuple[float, float] | None:
    """``(sum, count)`` of histogram ``name`` summed over all its label sets; None if absent."""
    s_sum = 0.0
    s_count = 0.0
    seen = False
    for s in parse(text):
        if s.name == name + "_sum" and _match(s.labels, where):
            s_sum += s.value
            seen = True
        elif s.name == name + "_count" and _match(s.labels, where):
            s_count += s.value
            seen = True
    return (s_sum, s_count) if seen else None


def histogram_delta_mean_ms(before: str, after: str, name: str,
                            where: dict[str, str] | None = None) -> float | None:
    """Mean of the observations histogram ``name`` gained between two scrapes, in ms.
    None when the metric is absent, nothing was observed, or the counters went back
    (a server restart between the scrapes)."""
    a = histogram_sum_count(before, name, where)
    b = histogram_sum_count(after, name, where)
    if a is None or b is None:
        return None
    d_sum, d_count = b[0] - a[0], b[1] - a[1]
    if not (math.isfinite(d_sum) and math.isfinite(d_count)):  # +Inf / NaN from a broken exporter
        return None
    if d_count <= 0 or d_sum < 0:
        return None
    return d_sum / d_count * 1000.0


def server_mean_ttft_ms(before: str, after: str, where: dict[str, str] | None = None) -> float | None:
    """The server's mean TTFT (``vllm:time_to_first_token_seconds``) over a run, in ms."""
    return histogram_delta_mean_ms(before, after, TTFT_METRIC, where)


def server_reference_tpot_ms(before: str, after: str, where: dict[str, str] | None = None
                             ) -> float | None:
    """The server's mean time per output token over a run, in ms, from whichever of
    :data:`TPOT_METRICS` the server exports (first that has observations)."""
    for name in TPOT_METRICS:
        v = histogram_delta_mean_ms(before, after, name, where)
        if v is not None:
            return v
    return None


@dataclass(frozen=True)
class ServerCheck:
    """The server's own figures over a run, from ``/metrics`` scraped before and after it.

    ``present``: the server exports the TTFT histogram at all (False: nothing to cross-check,
    e.g. not a vLLM server). ``problem``: it does, or /metrics answered, but the figure cannot
    be read (not Prometheus text, ``+Inf``/``NaN``, counters that went back, nothing
    observed) — the cross-check is then inconclusive, never a pass. ``tpot_ref_ms`` is only
    a finite, positive figure or None.
    """

    ttft_mean_ms: float | None = None
    tpot_ref_ms: float | None = None
    present: bool = False
    problem: str | None = None
    tpot_problem: str | None = None


def _describe_unparsable(text: str, err: Exception) -> str:
    head = text.lstrip()[:200].lower()
    if head.startswith(("<!doctype", "<html")) or "<html" in head:
        return "an HTML page, not Prometheus text"
    if not text.strip():
        return "an empty body"
    return f"not Prometheus text ({str(err)[:160]})"


def _delta_mean(before: list[Sample], after: list[Sample], name: str) -> tuple[float | None, str | None, bool]:
    """(mean ms, problem, present) of histogram ``name`` between two parsed scrapes."""
    def sc(samples: list[Sample]) -> tuple[float, float] | None:
        s_sum = s_count = 0.0
        seen = False
        for s in samples:
            if s.name == name + "_sum":
                s_sum += s.value
                seen = True
            elif s.name == name + "_count":
                s_count += s.value
                seen = True
        return (s_sum, s_count) if seen else None

    a, b = sc(before), sc(after)
    if a is None and b is None:
        return None, None, False
    if a is None or b is None:
        return None, f"{name} is in only one of the two scrapes", True
    for label, v in (("_sum", a[0]), ("_count", a[1]), ("_sum", b[0]), ("_count", b[1])):
        if not math.isfinite(v):
            return None, f"{name}{label} is {v!r} (not a finite number)", True
    d_sum, d_count = b[0] - a[0], b[1] - a[1]
    if d_count < 0 or d_sum < 0:
        return None, f"{name} went back between the scrapes (count {a[1]:g} -> {b[1]:g}: a server restart?)", True
    if d_count == 0:
        return None, f"{name} observed none of the run's requests (count stayed {b[1]:g})", True
    mean = d_sum / d_count * 1000.0
    if not math.isfinite(mean):
        return None, f"{name} gives a mean of {mean!r}", True
    return mean, None, True


def cross_check(before: str | None, after: str | None) -> ServerCheck:
    """Read the server's TTFT mean and per-token reference over a run; never raises.

    ``before``/``after`` are the ``/metrics`` bodies (None: the scrape failed, e.g. 404).
    """
    if before is None and after is None:
        return ServerCheck()
    if before is None or after is None:
        return ServerCheck(present=True, problem="GET /metrics answered only one of the two scrapes around the run")
    parsed = []
    for text in (before, after):
        try:
            parsed.append(parse(text))
        except (ValueError, IndexError) as e:
            return ServerCheck(present=True, problem=f"GET /metrics answered {_describe_unparsable(text, e)}")
    ttft, problem, present = _delta_mean(parsed[0], parsed[1], TTFT_METRIC)
    tpot = tpot_problem = None
    for name in TPOT_METRICS:
        v, p, here = _delta_mean(parsed[0], parsed[1], name)
        if here:
            tpot, tpot_problem = (v, p) if v is None or v > 0 else (None, f"{name} mean is {v!r}")
            break
    return ServerCheck(ttft_mean_ms=ttft, tpot_ref_ms=tpot, present=present, problem=problem,
                       tpot_problem=tpot_problem)
