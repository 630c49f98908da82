"""Incremental Server-Sent Events parser.

Network reads are not events: bytes are buffered until the blank line that ends an
event (``\\n\\n``, ``\\r\\n\\r\\n`` or ``\\r\\r``, mixed freely, split anywhere). Any split
of a byte stream into ``feed`` calls yields the same events in the same order; the
caller stamps each event with the time of the read that completed it.
"""

from __future__ import annotations


class SSEParser:
    """Feed bytes, get back the events they complete as ``(event_type, data_bytes)``.

    Follows the WHATWG rules that matter here: ``data:`` lines are joined with
    ``\\n``; one space after the colon is dropped; ``:`` lines are comments; an event
    without any ``data`` line is not dispatched; a leading UTF-8 BOM is ignored.
    """

    __slots__ = ("_buf", "_data", "_event", "_skip_lf", "_started")

    def __init__(self) -> None:
        self._buf = b""
        self._data: list[bytes] = []
        self._event: bytes | None = None
        self._skip_lf = False
        self._started = False

    def feed(self, chunk: bytes) -> list[tuple[str, bytes]]:
        if not chunk:
            return []
        if self._skip_lf:
            self._skip_lf = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
                if not chunk:
                    return []
        buf = self._buf + chunk if self._buf else chunk
        if not self._started:
            if len(buf) < 3 and b"\xef\xbb\xbf".startswith(buf):
                self._buf = buf
                return []
            self._started = True
            if buf[:3] == b"\xef\xbb\xbf":
                buf = buf[3:]
        if b"\r" in buf:
            if buf[-1:] == b"\r":
                # a CR ends a line now; an LF arriving next belongs to it
                self._skip_lf = True
            buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = buf.split(b"\n")
        self._buf = lines.pop()
        out: list[tuple[str, bytes]] = []
        data = self._data
        for line in lines:
            if not line:
                if data:
                    ev = self._event
                    out.append(("message" if ev is None else ev.decode("utf-8", "replace"),
                                data[0] if len(data) == 1 else b"\n".join(data)))
                    data = self._data = []
                self._event = None
                continue
            if line[:5] == b"data:":
                v = line[5:]
                data.append(v[1:] if v[:1] == b" " else v)
                continue
            if line[:1] == b":":
                continue
            name, sep, v = line.partition(b":")
            if v[:1] == b" ":
                v = v[1:]
            if name == b"data":  # "data" with no colon: an empty data line
                data.append(b"")
            elif name == b"event":
                self._event = v
            # id / retry / unknown fields are irrelevant here
        return out

    @property
    def pending(self) -> bytes:
        """Bytes of an unfinished line held back (for error messages)."""
        return self._buf
