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


def _parse_value(s: str) -> float:
    s = s.strip()
    low = s.lower()
    if low in ("+inf", "inf"):
        return math.inf
    if low == "-inf":
        return -math.inf
    if low == "nan":
        return math.nan
    return float(s)


def _parse_labels(s: str, i: int) -> tuple[dict[str, str], int]:
    """Parse ``{a="x",b="y"}`` starting at s[i] == '{'; return labels and index after '}'."""
    labels: dict[str, str] = {}
    i += 1
    n = len(s)
    while True:
        while i < n and s[i] in " \t,":
            i += 1
        if i >= n:
            raise ValueError("unterminated label set")
        if s[i] == "}":
            return labels, i + 1
        j = s.index("=", i)
        name = s[i:j].strip()
        i = j + 1
        while s[i] in " \t":
            i += 1
        if s[i] != '"':
            raise ValueError(f"label {name!r} value not quoted")
        i += 1
        buf = []
        while True:
            ch = s[i]
            if ch == "\\":
                nxt = s[i + 1]
                buf.append({"n": "\n", "\\": "\\", '"': '"'}.get(nxt, "\\" + nxt))
                i += 2
            elif ch == '"':
                i += 1
                break
            else:
                buf.append(ch)
                i += 1
        labels[name] = "".join(buf)


def parse(text: str) -> list[Sample]:
    """All samples of a Prometheus (or OpenMetrics) text exposition. Comments, ``# HELP``
    and ``# TYPE`` lines are skipped; malformed lines raise ``ValueError``."""
    out: list[Sample] = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            brace = line.find("{")
            space = line.find(" ")
            if brace != -1 and (space == -1 or brace < space):
                name = line[:brace]
                labels, i = _parse_labels(line, brace)
                rest = line[i:].split()
            else:
                parts = line.split()
                name, labels, rest = parts[0], {}, parts[1:]
            if not rest:
                raise ValueError("no value")
            out.append(Sample(name.strip(), labels, _parse_value(rest[0])))
        except (ValueError, IndexError) as e:
            raise ValueError(f"line {lineno}: cannot parse {raw[:120]!r}: {e}") from None
    return out


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
