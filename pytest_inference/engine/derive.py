"""Per-request metrics from the engine's timestamps (pure: integers in, figures out).

The timed loop keeps only ``perf_counter_ns`` stamps: the send, one per token event, the first
content event, the end of the body. After the request these functions turn them into the
figures :mod:`.results` defines (TTFT, ITL, E2E, TPOT, ...). They run off the timed path.
"""

from __future__ import annotations

from typing import Sequence

from .results import RequestResult, token_count_problem

__all__ = ["fill_timings", "fill_stream_figures", "tpot_ms", "length_mismatch"]


def fill_timings(res: RequestResult, send_ns: int, token_ns: Sequence[int], content_ns: int = 0,
                 end_ns: int = 0) -> None:
    """Set the request's times, in ms from ``send_ns``: ``token_times_ms`` (one per token
    event), ``ttft_ms`` (the first), ``itl_ms`` (gaps between successive events, 0 for two in
    one read), ``ttft_content_ms`` (the first content event; 0: none), ``e2e_ms`` (the end of
    the body; 0: it never ended) and ``content_events``."""
    s = send_ns
    res.token_times_ms = [(x - s) / 1e6 for x in token_ns]
    res.content_events = len(token_ns)
    if token_ns:
        res.ttft_ms = (token_ns[0] - s) / 1e6
        res.itl_ms = [(b - a) / 1e6 for a, b in zip(token_ns, token_ns[1:])]
    if content_ns:
        res.ttft_content_ms = (content_ns - s) / 1e6
    if end_ns:
        res.e2e_ms = (end_ns - s) / 1e6


def tpot_ms(e2e_ms: float | None, ttft_ms: float | None, output_tokens: int | None) -> float | None:
    """(E2E − TTFT) / (output_tokens − 1); None unless both times and ≥ 2 tokens are known."""
    if output_tokens is None or output_tokens < 2 or ttft_ms is None or e2e_ms is None:
        return None
    return (e2e_ms - ttft_ms) / (output_tokens - 1)


def length_mismatch(output_tokens: int | None, max_tokens: int | None, ignore_eos: bool) -> bool:
    """The server ignored ``max_tokens`` (more tokens than asked) or, with ``ignore_eos``,
    stopped well short of it (fewer than 90%): ``ignore_eos`` was dropped. False when unknown."""
    if output_tokens is None or not max_tokens:
        return False
    return output_tokens > max_tokens or (ignore_eos and output_tokens < 0.9 * max_tokens)


def fill_stream_figures(res: RequestResult) -> None:
    """Set ``token_count_problem``, ``tpot_ms`` (only from a sound count) and
    ``length_mismatch`` of a finished stream (after :func:`fill_timings` and the usage)."""
    n = res.output_tokens
    res.token_count_problem = token_count_problem(n, res.content_events)
    if res.token_count_problem is None:
        res.tpot_ms = tpot_ms(res.e2e_ms, res.ttft_ms, n)
    if n is not None and res.requested_max_tokens:
        res.length_mismatch = length_mismatch(n, res.requested_max_tokens, res.ignore_eos)
