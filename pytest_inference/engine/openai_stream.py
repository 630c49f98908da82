"""OpenAI streaming chunks → token events, finish reason, usage and errors (pure: no socket, no clock).

The engine's timed loop hands every SSE ``data:`` payload of a response to
:meth:`StreamDecoder.feed`, which returns which kinds of token the chunk carried (a bitmask of
:data:`CONTENT`, :data:`REASONING`, :data:`TOOL`; 0: not a token event) and keeps the rest (text,
``finish_reason``, ``usage``, the response id, an ``error`` event, ``[DONE]``). The loop stamps the
token events; nothing here reads a clock. What counts as a token event is defined in
:mod:`.results`. :func:`end_problem` is the ``[DONE]`` rule: when a delivered stream counts as
ended. The error-body helpers (:func:`error_detail`, :func:`describe_non_sse`) turn what a server
sent instead of a stream into one short line.

One ``feed`` per event, one ``json.loads`` and no allocation beyond the text it keeps: it runs on
the timed path.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["CONTENT", "REASONING", "TOOL", "ChunkError", "StreamDecoder", "end_problem",
           "error_detail", "describe_non_sse", "err_text", "snip"]

#: token kinds :meth:`StreamDecoder.feed` reports (a bitmask)
CONTENT = 1
REASONING = 2
TOOL = 4

_loads = json.loads


class ChunkError(ValueError):
    """A stream event that is not an OpenAI chunk; ``str(e)`` says why in one line
    ("a stream event is not JSON: '<html>…'")."""


class StreamDecoder:
    """The state of one streamed response, fed its SSE ``data:`` payloads in order.

    ``parts`` / ``reasoning_parts`` / ``tool_parts``: the text pieces (content, reasoning,
    tool-call name + arguments); ``finish_reason``: the last one a choice carried;
    ``output_tokens`` / ``prompt_tokens``: from ``usage`` only (``usage_reported``);
    ``response_id``: the first chunk's ``id``; ``done``: ``data: [DONE]`` was seen; ``error``:
    one line for an ``{"error": ...}`` event (the stream then failed).
    """

    __slots__ = ("parts", "reasoning_parts", "tool_parts", "response_id", "finish_reason", "output_tokens",
                 "prompt_tokens", "usage_reported", "done", "error")

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.reasoning_parts: list[str] = []
        self.tool_parts: list[str] = []
        self.response_id: str | None = None
        self.finish_reason: str | None = None
        self.output_tokens: int | None = None
        self.prompt_tokens: int | None = None
        self.usage_reported = False
        self.done = False
        self.error: str | None = None

    def feed(self, data: bytes) -> int:
        """Decode one event's payload; return the token kinds it carried (0: none). Raises
        :class:`ChunkError` for a payload that is not an OpenAI chunk (not JSON, not an
        object, no ``choices`` and neither ``error`` nor ``usage``, wrong shapes)."""
        if data == b"[DONE]":
            self.done = True
            return 0
        try:
            obj = _loads(data)
        except ValueError:
            raise ChunkError(f"a stream event is not JSON: {snip(data)}") from None
        if not isinstance(obj, dict):
            raise ChunkError(f"a stream event is not a JSON object: {snip(data)}")
        try:
            choices = obj.get("choices")
            if choices is None:
                err = obj.get("error")
                if err is not None:
                    self.error = f"error event in the stream: {err_text(err)}"
                    return 0
                if "usage" not in obj:
                    raise TypeError("no choices")
                choices = ()
            elif not isinstance(choices, list):
                raise TypeError("choices is not a list")
            if self.response_id is None:
                rid = obj.get("id")
                if rid:
                    self.response_id = str(rid)
            usage = obj.get("usage")
            if usage:
                ct = usage.get("completion_tokens")
                if ct is not None:
                    self.usage_reported = True
                    self.output_tokens = int(ct)
                pt = usage.get("prompt_tokens")
                if pt is not None:
                    self.prompt_tokens = int(pt)
            if not choices:
                return 0
            kinds = 0
            for ch in choices:
                delta = ch.get("delta")
                if delta is not None:
                    x = delta.get("content")
                    if x:
                        kinds |= CONTENT
                        self.parts.append(x)
                    x = delta.get("reasoning_content") or delta.get("reasoning")
                    if x:
                        kinds |= REASONING
                        self.reasoning_parts.append(x)
                    tcs = delta.get("tool_calls")
                    if tcs:
                        for tc in tcs:
                            fn = tc.get("function") or {}
                            x = (fn.get("name") or "") + (fn.get("arguments") or "")
                            if x:
                                kinds |= TOOL
                                self.tool_parts.append(x)
                else:
                    x = ch.get("text")
                    if x:
                        kinds |= CONTENT
                        self.parts.append(x)
                fr = ch.get("finish_reason")
                if fr:
                    self.finish_reason = fr
            return kinds
        except (AttributeError, TypeError, ValueError):
            raise ChunkError(f"a stream event is not an OpenAI chunk: {snip(data)}") from None

    @property
    def text(self) -> str:
        return "".join(map(str, self.parts))

    @property
    def reasoning_text(self) -> str:
        return "".join(map(str, self.reasoning_parts))

    @property
    def tool_text(self) -> str:
        return "".join(map(str, self.tool_parts))

    def fill(self, res: Any) -> None:
        """Copy what the stream said onto a :class:`~.results.RequestResult`."""
        if self.response_id is not None:
            res.response_id = self.response_id
        res.finish_reason = self.finish_reason
        if self.usage_reported:
            res.usage_reported = True
            res.output_tokens = self.output_tokens
        if self.prompt_tokens is not None:
            res.prompt_tokens = self.prompt_tokens
        res.done_marker = self.done
        res.text = self.text
        res.reasoning_text = self.reasoning_text
        res.tool_text = self.tool_text


_FRAMING_END = {"chunked": "the chunked body ended", "length": "the Content-Length body ended",
                "close": "the server closed the connection (no chunked encoding, no Content-Length)"}


def end_problem(done: bool, finish_reason: str | None, framing: str, token_events: int,
                usage_reported: bool) -> str | None:
    """Why a stream the connection delivered did not end the way the protocol ends it, or None.

    Complete: ``data: [DONE]`` was seen, or the HTTP framing itself marked the end (the
    terminating chunk, or the whole Content-Length: ``framing`` "chunked" / "length") *and* a
    choice carried a ``finish_reason``. A body framed only by the connection closing ends the
    same way whether the server finished or was cut, so there only ``[DONE]`` counts.
    """
    if done:
        return None
    if framing in ("chunked", "length") and finish_reason:
        return None
    how = _FRAMING_END.get(framing, "the response ended")
    return (f"stream ended without [DONE]: {how} after {token_events} token events, "
            f"finish_reason={finish_reason}, usage {'reported' if usage_reported else 'absent'}")


def snip(data: bytes, n: int = 80) -> str:
    """The first ``n`` bytes of ``data`` as a quoted string (with … when cut)."""
    s = data[:n].decode("utf-8", "replace")
    return repr(s + ("…" if len(data) > n else ""))


def err_text(err: Any) -> str:
    """An OpenAI ``error`` value (object or string) as one short text."""
    if isinstance(err, dict):
        msg = err.get("message") or err.get("detail") or json.dumps(err)[:200]
        code = err.get("code") or err.get("type")
        return f"{msg} ({code})" if code else str(msg)
    return str(err)[:200]


def error_detail(text: str, ctype: str) -> str:
    """A server's error body as one short line: the OpenAI ``error``/``detail``/``message``,
    an HTML page's title, or the text squeezed to 300 characters."""
    text = text.strip()
    if not text:
        return "(empty body)"
    try:
        obj = json.loads(text)
    except ValueError:
        obj = None
    if isinstance(obj, dict):
        for k in ("error", "detail", "message"):
            if k in obj:
                return " ".join(err_text(obj[k]).split())[:300]
    if "html" in ctype.lower() or text.lstrip().lower().startswith(("<!doctype", "<html")):
        m = re.search(r"<title>(.*?)</title>", text, re.I | re.S)
        return f"an HTML page ({' '.join(m.group(1).split())[:100]!r})" if m else "an HTML page"
    return " ".join(text.split())[:300]


def describe_non_sse(ctype: str, body: bytes) -> str:
    """What a 2xx answer that is not an SSE stream was, as the end of one line."""
    text = body.decode("utf-8", "replace").strip()
    ct = ctype or "no content type"
    if "html" in ct.lower() or text.lower().startswith(("<!doctype", "<html")):
        return f"with an HTML page ({error_detail(text, 'text/html')}), not an OpenAI SSE stream"
    try:
        obj = json.loads(text)
    except ValueError:
        return f"with {ct} ({snip(body)}), not an OpenAI SSE stream"
    if isinstance(obj, dict) and "choices" in obj:
        return "with a non-streaming JSON completion: the endpoint ignored stream=true"
    return f"with JSON of another shape ({snip(body)}), not an OpenAI SSE stream"
