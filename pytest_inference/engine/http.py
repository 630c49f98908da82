"""HTTP/1.1 pieces for the raw-socket client: URL handling, request bytes, an
incremental response parser (status line, headers, chunked or Content-Length or
read-until-close bodies), and :func:`get` / :func:`get_text`, the one helper for untimed GETs
(``/v1/models``, ``/metrics``, ``/health``) with the engine's one-line errors.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from .errors import EndpointHTTPError, scrub
from .openai_stream import error_detail

MAX_HEAD = 64 * 1024


class ProtocolError(Exception):
    """The peer did not speak HTTP/1.x as expected."""


@dataclass(frozen=True)
class Origin:
    scheme: str  # "http" | "https"
    host: str
    port: int
    base_path: str  # e.g. "/v1" (no trailing slash), "" for the root

    @property
    def tls(self) -> bool:
        return self.scheme == "https"

    @property
    def host_header(self) -> str:
        default = 443 if self.tls else 80
        h = f"[{self.host}]" if ":" in self.host else self.host
        return h if self.port == default else f"{h}:{self.port}"

    @property
    def root_url(self) -> str:
        return f"{self.scheme}://{self.host_header}"

    @property
    def base_url(self) -> str:
        return self.root_url + self.base_path


def parse_base_url(url: str) -> Origin:
    parts = urlsplit(url.strip())
    scheme = (parts.scheme or "http").lower()
    if scheme not in ("http", "https"):
        raise ValueError(f"unsupported URL scheme {scheme!r} in {url!r} (use http:// or https://)")
    if not parts.hostname:
        raise ValueError(f"no host in URL {url!r}")
    port = parts.port or (443 if scheme == "https" else 80)
    return Origin(scheme, parts.hostname, port, parts.path.rstrip("/"))


def header_problem(value: str) -> str | None:
    """Why ``value`` cannot go into an HTTP/1.1 header line (None when it can). The text
    never quotes the value: it may be an API key."""
    if "\r" in value or "\n" in value:
        return "contains a line break (CR or LF)"
    try:
        value.encode("latin-1")
    except UnicodeEncodeError as e:
        return f"contains a character that is not Latin-1 (at position {e.start})"
    if any(ord(ch) < 32 and ch != "\t" or ord(ch) == 127 for ch in value):
        return "contains a control character"
    return None


def problem_free(text: str) -> str:
    return text.encode("ascii", "backslashreplace").decode()


def build_request(method: str, origin: Origin, path: str, body: bytes | None,
                  headers: dict[str, str]) -> bytes:
    """Request line, headers and body as one buffer (written with one send)."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {origin.host_header}"]
    for k, v in headers.items():
        problem = header_problem(k) or header_problem(str(v))
        if problem:  # the value may be a secret (Authorization): it is never quoted
            raise ValueError(f"header {k!r}: its value {problem}")
        lines.append(f"{k}: {v}")
    if body is not None or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body or b'')}")
    try:
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    except UnicodeEncodeError:  # the request line (path, host): never chain the head, it holds the key
        raise ValueError(f"the request line or Host header ({problem_free(lines[0])}) has a character "
                         "that is not Latin-1") from None
    return head + (body or b"")


def get(url: str, *, api_key: str | None = None, timeout_s: float = 10.0, verify: bool | str = True,
        headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """One untimed GET of an absolute ``url`` (``http://host:8000/metrics``,
    ``https://host/v1/models?x=1``) on its own connection: ``(status, headers, body)``, header
    names lower-case. ``api_key`` is sent as a bearer token and appears in no message.

    Raises, each with one line: :class:`~.errors.EndpointUnreachable` (no connection: refused,
    unresolvable, timed out, TLS), :class:`~.errors.EndpointAuthError` (401/403),
    :class:`~.errors.EndpointHTTPError` (no answer within ``timeout_s``, the connection broke),
    :class:`~.errors.NotOpenAIResponse` (not HTTP), ``ValueError`` (not an http(s) URL).
    Any other status is returned, not raised: see :func:`get_text`.
    """
    from .client import StreamClient  # the client is built on this module

    parts = urlsplit(url.strip())
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    client = StreamClient(url, api_key=api_key, timeout_s=timeout_s, verify=verify)
    try:
        return client.request("GET", path, headers=headers, root=True)
    finally:
        client.close()  # its sockets and its selector's descriptor


def get_text(url: str, *, api_key: str | None = None, timeout_s: float = 10.0, verify: bool | str = True,
             headers: dict[str, str] | None = None) -> str:
    """:func:`get` as text; a non-2xx status raises :class:`~.errors.EndpointHTTPError` with
    one line (``HTTP 404 from http://h:8000/metrics: Not Found``; the key scrubbed from the
    server's text)."""
    status, hdrs, body = get(url, api_key=api_key, timeout_s=timeout_s, verify=verify, headers=headers)
    return text_or_error(status, hdrs, body, url, api_key)


def text_or_error(status: int, headers: dict[str, str], body: bytes, url: str, api_key: str | None) -> str:
    """The body of a 2xx answer as text; otherwise :class:`~.errors.EndpointHTTPError`."""
    text = body.decode("utf-8", "replace")
    if not 200 <= status < 300:
        # servers echo keys in error bodies
        detail = scrub(error_detail(text, headers.get("content-type", "")), api_key)
        raise EndpointHTTPError(f"HTTP {status} from {scrub(url, api_key)}: {detail}", status, detail)
    return text


# parser states
HEAD, CL_BODY, CHUNK_SIZE, CHUNK_DATA, CHUNK_CRLF, TRAILER, UNTIL_CLOSE, DONE = range(8)


class ResponseParser:
    """Incremental HTTP/1.1 response parser.

    ``feed(data)`` returns the body bytes the data decoded (chunk framing removed).
    After the head is parsed ``status``, ``reason`` and ``headers`` (lower-case keys;
    repeated headers joined with ", ") are set and ``head_done`` is true. ``done`` is
    true once the body is complete. ``keep_alive`` says whether the connection may be
    reused afterwards.
    """

    __slots__ = ("state", "buf", "remaining", "status", "reason", "headers", "version",
                 "keep_alive", "head_only", "chunked", "framing")

    def __init__(self, head_only: bool = False) -> None:
        self.state = HEAD
        self.buf = b""
        self.remaining = 0
        self.status = 0
        self.reason = ""
        self.headers: dict[str, str] = {}
        self.version = ""
        self.keep_alive = True
        self.head_only = head_only  # response to HEAD: no body
        self.chunked = False
        #: how the body's end is signalled: "chunked" (a terminating chunk), "length"
        #: (Content-Length), "close" (only the connection closing: a cut looks like an end)
        self.framing = ""

    @property
    def head_done(self) -> bool:
        return self.state != HEAD

    @property
    def done(self) -> bool:
        return self.state == DONE

    def _parse_head(self, raw: bytes) -> None:
        text = raw.decode("latin-1")
        lines = text.split("\r\n")
        status_line = lines[0]
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/"):
            raise ProtocolError(f"not an HTTP response: {status_line[:80]!r}")
        try:
            self.status = int(parts[1])
        except ValueError:
            raise ProtocolError(f"bad HTTP status line: {status_line[:80]!r}") from None
        self.version = parts[0]
        self.reason = parts[2] if len(parts) > 2 else ""
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if not line:
                continue
            k, sep, v = line.partition(":")
            if not sep:
                raise ProtocolError(f"bad header line: {line[:80]!r}")
            k = k.strip().lower()
            v = v.strip()
            headers[k] = f"{headers[k]}, {v}" if k in headers else v
        self.headers = headers
        conn = headers.get("connection", "").lower()
        if self.version == "HTTP/1.0":
            self.keep_alive = "keep-alive" in conn
        else:
            self.keep_alive = "close" not in conn

    def feed(self, data: bytes) -> bytes:
        buf = self.buf + data if self.buf else data
        out: list[bytes] = []
        while True:
            st = self.state
            if st == CHUNK_SIZE:
                i = buf.find(b"\r\n")
                if i < 0:
                    if len(buf) > 1024:
                        raise ProtocolError("chunk size line too long")
                    break
                line = buf[:i].split(b";", 1)[0].strip()
                try:
                    size = int(line, 16)
                except ValueError:
                    raise ProtocolError(f"bad chunk size {line[:20]!r}") from None
                buf = buf[i + 2:]
                if size == 0:
                    self.state = TRAILER
                else:
                    self.remaining = size
                    self.state = CHUNK_DATA
            elif st == CHUNK_DATA:
                n = len(buf)
                if n == 0:
                    break
                r = self.remaining
                if n <= r:
                    out.append(buf)
                    buf = b""
                    self.remaining = r - n
                    if r == n:
                        self.state = CHUNK_CRLF
                    break
                out.append(buf[:r])
                buf = buf[r:]
                self.remaining = 0
                self.state = CHUNK_CRLF
            elif st == CHUNK_CRLF:
                if len(buf) < 2:
                    break
                if buf[:2] != b"\r\n":
                    raise ProtocolError("chunk not followed by CRLF")
                buf = buf[2:]
                self.state = CHUNK_SIZE
            elif st == HEAD:
                i = buf.find(b"\r\n\r\n")
                if i < 0:
                    if len(buf) > MAX_HEAD:
                        raise ProtocolError("response head larger than 64 KiB")
                    if buf and not b"HTTP/".startswith(buf[:5]) and not buf.startswith(b"HTTP/"):
                        raise ProtocolError(f"not an HTTP response: {buf[:40]!r}")
                    break
                self._parse_head(buf[:i])
                buf = buf[i + 4:]
                if 100 <= self.status < 200:  # 1xx interim response: skip it
                    self.status = 0
                    continue
                te = self.headers.get("transfer-encoding", "").lower()
                if self.head_only or self.status in (204, 304):
                    self.state = DONE
                elif "chunked" in te:
                    self.chunked = True
                    self.framing = "chunked"
                    self.state = CHUNK_SIZE
                elif "content-length" in self.headers:
                    try:
                        self.remaining = int(self.headers["content-length"].split(",")[0])
                    except ValueError:
                        raise ProtocolError("bad Content-Length") from None
                    self.framing = "length"
                    self.state = CL_BODY if self.remaining > 0 else DONE
                else:
                    self.state = UNTIL_CLOSE
                    self.framing = "close"
                    self.keep_alive = False
            elif st == CL_BODY:
                n = len(buf)
                if n == 0:
                    break
                r = self.remaining
                if n < r:
                    out.append(buf)
                    buf = b""
                    self.remaining = r - n
                    break
                out.append(buf[:r])
                buf = buf[r:]
                self.remaining = 0
                self.state = DONE
            elif st == TRAILER:
                i = buf.find(b"\r\n")
                if i < 0:
                    break
                line = buf[:i]
                buf = buf[i + 2:]
                if not line:
                    self.state = DONE
            elif st == UNTIL_CLOSE:
                if buf:
                    out.append(buf)
                    buf = b""
                break
            else:  # DONE: extra bytes (pipelining is never used) are dropped
                self.keep_alive = self.keep_alive and not buf
                buf = b""
                break
        self.buf = buf
        if not out:
            return b""
        return out[0] if len(out) == 1 else b"".join(out)

    def feed_eof(self) -> None:
        """The peer closed. Completes a read-until-close body; otherwise it is an error."""
        if self.state == UNTIL_CLOSE:
            self.state = DONE
            return
        if self.state != DONE:
            raise ProtocolError("connection closed before the response was complete")
