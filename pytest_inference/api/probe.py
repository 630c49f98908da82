"""The API suite's probe: it talks to the endpoint and records what came back, byte for byte.

Every request is an :class:`Exchange` — what was sent, the status, headers and the whole body (the
transfer encoding undone, the SSE text untouched), or why no answer came (no answer within the
deadline, the connection broke). The rules (:mod:`.rules`) judge exchanges and never touch the
network, so they are tested on recorded answers; the checks (:mod:`.checks`) decide what to ask.

Each request runs on its own connection with a deadline for the *whole* answer, so a server that
hangs, or trickles bytes forever, costs at most ``timeout_s``. The API key is sent as a bearer token
and never stored in an exchange (its ``to_dict`` is what reaches reports).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

#: one request that no endpoint should know, for the unknown-field and wrong-key checks
UNKNOWN_FIELD = "x_pytest_inference_unknown_field"


@dataclass
class Exchange:
    """One request and what came back. ``status`` None: no answer (``error`` says why)."""

    label: str
    method: str
    path: str
    sent: Any                 # the JSON body sent (a dict), or the raw bytes when they were not JSON
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    error: str | None = None
    elapsed_s: float = 0.0

    @property
    def answered(self) -> bool:
        return self.status is not None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        """The body as JSON, or None when it is not JSON."""
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            return None

    def outcome(self) -> str:
        """One line: ``HTTP 400 (application/json, 180 bytes)`` or ``no answer: ...``."""
        if self.status is None:
            return f"no answer: {self.error}"
        return f"HTTP {self.status} ({self.content_type or 'no content-type'}, {len(self.body)} bytes)"

    def to_dict(self, body_chars: int = 600) -> dict[str, Any]:
        """What a finding or a record shows: the request, the outcome and the first characters of the body."""
        sent = self.sent
        if isinstance(sent, (bytes, bytearray)):
            sent = bytes(sent[:body_chars]).decode("utf-8", "replace")
        elif isinstance(sent, dict):
            sent = _shorten(sent)
        return {"label": self.label, "request": f"{self.method} {self.path}", "sent": sent,
                "status": self.status, "content_type": self.content_type, "error": self.error,
                "elapsed_s": round(self.elapsed_s, 3), "body": self.text[:body_chars]}


def _shorten(obj: Any, limit: int = 200) -> Any:
    """A JSON body with long strings cut (a context-overflow prompt is megabytes long)."""
    if isinstance(obj, str):
        return obj if len(obj) <= limit else f"{obj[:limit]}… ({len(obj)} chars)"
    if isinstance(obj, dict):
        return {k: _shorten(v, limit) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_shorten(v, limit) for v in obj[:20]]
    return obj


_UNSET = object()


class ApiProbe:
    """Requests to one OpenAI-compatible endpoint (``base_url`` ends in ``/v1``), each recorded.

    ``timeout_s`` bounds each whole answer. ``exchanges`` keeps every exchange of the session
    (the suite attaches them to its claims; keys are never in them)."""

    def __init__(self, base_url: str, *, api_key: str | None = None, timeout_s: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._key = api_key
        self.timeout_s = timeout_s
        self.exchanges: list[Exchange] = []

    @property
    def uses_key(self) -> bool:
        return bool(self._key)

    def client(self):
        """A plain client of the endpoint with the session's key (the caller closes it)."""
        from ..engine import StreamClient

        return StreamClient(self.base_url, api_key=self._key, timeout_s=self.timeout_s)

    def post(self, path: str, body: dict[str, Any] | bytes, *, label: str, key: Any = _UNSET,
             headers: dict[str, str] | None = None, timeout_s: float | None = None) -> Exchange:
        """POST ``body`` (a dict is sent as JSON, bytes exactly as given) to ``path`` under the base URL."""
        raw = body if isinstance(body, (bytes, bytearray)) else json.dumps(body).encode()
        return self._send("POST", path, bytes(raw), body, label, key, headers, timeout_s, root=False)

    def get(self, path: str, *, label: str, root: bool = False, timeout_s: float | None = None) -> Exchange:
        """GET ``path`` under the base URL, or under the server root with ``root=True`` (``/metrics``)."""
        return self._send("GET", path, None, None, label, _UNSET, None, timeout_s, root=root)

    def _send(self, method: str, path: str, raw: bytes | None, sent: Any, label: str, key: Any,
              headers: dict[str, str] | None, timeout_s: float | None, *, root: bool) -> Exchange:
        from ..engine import EndpointError, StreamClient
        from ..engine.errors import scrub

        timeout = self.timeout_s if timeout_s is None else timeout_s
        api_key = self._key if key is _UNSET else key
        ex = Exchange(label=label, method=method, path=path, sent=sent if sent is not None else raw)
        hdrs = {"Content-Type": "application/json"} if raw is not None else {}
        hdrs.update(headers or {})
        client = StreamClient(self.base_url, api_key=api_key, timeout_s=timeout)
        t0 = time.monotonic()
        try:
            status, hdr, body = client.request(method, path, raw, hdrs, root=root, deadline_s=timeout,
                                               raise_auth=False)
        except (EndpointError, ValueError) as exc:
            ex.error = scrub(str(exc), api_key)
        else:
            ex.status, ex.headers, ex.body = status, hdr, body
        finally:
            client.close()
            ex.elapsed_s = time.monotonic() - t0
        self.exchanges.append(ex)
        return ex
