"""Detect burst-delivered samples (a starved sender), which must not be read as TTFT."""

from __future__ import annotations

from statistics import median
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:  # the results module calls this one: no import circle at run time
    from .results import RequestResult

MIN_EVENTS = 4
SAME_READ_SHARE = 0.8
GAP_FRACTION = 0.25


def mark_bursts(results: Sequence[RequestResult], reference_tpot_ms: float | None = None) -> int:
    """Set ``burst`` on each result whose stream arrived in one late burst; return how many.

    The signature (seen on a loaded machine against a real vLLM): the server's sending
    process was starved, so the whole stream — first token to last — reaches the client
    at once and late. Its "TTFT" then measures the starvation, not the server.

    A result is marked when it is ok, has at least 4 token events, and either

    1. at least 80% of its token events arrived in the same socket read as the first
       token (``first_read_token_events / content_events >= 0.8``), or
    2. its first→last token gap is below 25% of ``(events − 1) × reference``, where
       ``reference`` is ``reference_tpot_ms`` (e.g. the server's own inter-token-latency
       histogram mean over the run) or, when not given, the median over the run's
       results of their mean per-event gap ``(last − first) / (events − 1)``.

    Rule 2 with the run's own median only works while fewer than half the samples are
    bursts; pass the server's figure when it is available. Results that are not marked
    have ``burst`` reset to False, so calling this twice is safe.
    """
    ref = reference_tpot_ms
    if ref is None:
        gaps = [(r.token_times_ms[-1] - r.token_times_ms[0]) / (len(r.token_times_ms) - 1)
                for r in results if r.ok and len(r.token_times_ms) >= MIN_EVENTS]
        ref = median(gaps) if gaps else None
    n_marked = 0
    for r in results:
        r.burst = False
        n = len(r.token_times_ms)
        if not r.ok or n < MIN_EVENTS:
            continue
        if r.first_read_token_events >= SAME_READ_SHARE * n:
            r.burst = True
        elif ref and ref > 0 and (r.token_times_ms[-1] - r.token_times_ms[0]) < GAP_FRACTION * (n - 1) * ref:
            r.burst = True
        n_marked += r.burst
    return n_marked
