"""Options of the measuring engine (timeouts, deadlines), registered by :mod:`pytest_inference.plugin`.

Kept here so the plugin module stays a list of hooks; values are read by the suites' probes.
"""

from __future__ import annotations

from ..settings import positive_number

#: default per-request deadline: a base for connection, queueing and prefill, plus a budget
#: per requested token (a server slower than 1 token/s is not being measured, it is stuck)
DEADLINE_BASE_S = 60.0
DEADLINE_PER_TOKEN_S = 1.0


_positive_seconds = positive_number("seconds")


def add_options(group) -> None:
    """Add the engine's options to the plugin's ``inference`` option group."""
    group.addoption(
        "--request-deadline-s",
        dest="inference_request_deadline_s",
        type=_positive_seconds,
        default=None,
        metavar="S",
        help=f"total deadline of one streamed request, send to end of response, besides the idle timeout "
             f"(a stream that never ends, a server sending only keep-alive comments). Default "
             f"{DEADLINE_BASE_S:g} s + {DEADLINE_PER_TOKEN_S:g} s per max token (64 tokens: 124 s). A run "
             f"whose first 2 requests all time out stops at once, saying why",
    )


def default_deadline_s(max_tokens: int | None) -> float:
    """The per-request deadline when ``--request-deadline-s`` is not given."""
    return DEADLINE_BASE_S + DEADLINE_PER_TOKEN_S * max(1, int(max_tokens or 1))


def request_deadline_s(config, max_tokens: int | None) -> float:
    """``--request-deadline-s``, else :func:`default_deadline_s` of ``max_tokens``."""
    v = config.getoption("inference_request_deadline_s", None)
    return float(v) if v is not None else default_deadline_s(max_tokens)
