"""Errors the engine raises: one readable line each, never carrying the API key."""

from __future__ import annotations


class EndpointError(Exception):
    """Base class: the endpoint could not be measured. ``str(e)`` is one readable line."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class EndpointUnreachable(EndpointError):
    """No TCP (or TLS) connection could be made: refused, unresolvable host, timeout."""


class EndpointTimeout(EndpointError):
    """The run was stopped early: its first requests all timed out (no data, or over the
    per-request deadline), so the rest would only have cost the same wait each."""


class EndpointAuthError(EndpointError):
    """HTTP 401/403: the endpoint rejected the API key (which no message ever contains)."""

    def __init__(self, message: str, status: int = 401):
        super().__init__(message)
        self.status = status


class NotOpenAIResponse(EndpointError):
    """HTTP 200 but not an SSE stream of OpenAI-shaped chunks (an HTML page, other JSON...)."""


class EndpointHTTPError(EndpointError):
    """Any other non-2xx status; ``status`` and the server's short error text are kept."""

    def __init__(self, message: str, status: int = 0, detail: str = ""):
        super().__init__(message)
        self.status = status
        self.detail = detail


def scrub(text: str, secret: str | None) -> str:
    """``text`` with every occurrence of ``secret`` (and its long fragments) masked."""
    if not secret or not text:
        return text
    out = text.replace(secret, "***")
    # servers echo keys partially ("sk-abc...wxyz"): mask any 8+ character piece of it
    if len(secret) >= 8:
        n = 8
        i = 0
        while i + n <= len(secret):
            piece = secret[i : i + n]
            if piece in out:
                out = out.replace(piece, "***")
            i += 1
    return out
