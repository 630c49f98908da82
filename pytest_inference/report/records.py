"""Per-request records: one JSON object a line in ``<report>/records/<name>.jsonl``.

A load run's claims are statistics; the records are what they were computed from (each request's
scheduled time, dispatch lag, TTFT, tokens, error ...), so a reader can recompute a percentile or
look at the one request that missed. Written atomically (a reader sees the old file or the new one,
never half of one: :func:`pytest_inference.supervise.write_text_atomic`).

Values are plain JSON: numbers, text, true/false, null, lists and objects of them; a float that is
not finite (NaN, inf: a figure nobody measured) is written as null, never as the ``NaN`` that
strict JSON readers refuse. Dataclass records (an engine ``RequestResult``) are written as their
fields. Nothing that looks like a credential is written: the value of a key such as
``authorization`` or ``api_key`` (at any depth) becomes ``***``, and in every text a bearer token,
an OpenAI-style ``sk-...`` key, a URL's ``user:password@`` and the ``secrets`` the caller names
(with their base64 forms: :mod:`.redact`) are masked.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import math
import os
import re
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..supervise import json_object_lines, write_text_atomic
from .redact import redact_userinfo, secret_forms

__all__ = ["RECORDS_DIR", "SECRET_KEYS", "MASK", "record_path", "write_records", "read_records", "clean_record"]

RECORDS_DIR = "records"
MASK = "***"
#: keys whose values are credentials (compared lower-case, ``-`` read as ``_``)
SECRET_KEYS = frozenset({
    "authorization", "proxy_authorization", "api_key", "apikey", "x_api_key", "openai_api_key", "api_token",
    "access_token", "refresh_token", "bearer", "token_secret", "secret", "client_secret", "password", "passwd",
    "cookie", "set_cookie",
})
#: an Authorization header's bearer token quoted in free text (a server's echo, an error message)
_BEARER = re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]{8,}")
#: ... and a Basic one (masked when it decodes to ``user:password``, so "Basic English" stays)
_BASIC = re.compile(r"(?i)\b(basic)\s+([A-Za-z0-9+/]{8,}={0,2})")
_SK_KEY = re.compile(r"\bsk-[A-Za-z0-9_-]{16,}")
_NAME = re.compile(r"[^A-Za-z0-9._-]+")
#: the deepest nesting a record may have (a cycle or a runaway structure is an error, not a hang)
_MAX_DEPTH = 32


def record_path(report_dir: str | os.PathLike[str], name: str) -> Path:
    """``<report_dir>/records/<name>.jsonl`` with ``name`` made a plain file name (no folders, no
    leading dot); a name with nothing usable left is a one-line ValueError."""
    if not isinstance(name, str):
        raise ValueError(f"records name: {name!r} is not text")
    stem = name[:-len(".jsonl")] if name.endswith(".jsonl") else name
    stem = _NAME.sub("-", stem).strip("-.")[:120]
    if not stem:
        raise ValueError(f"records name {name!r} has no usable characters (letters, digits, . _ -)")
    return Path(report_dir) / RECORDS_DIR / f"{stem}.jsonl"


def _forms(secrets: str | Iterable[str]) -> list[str]:
    """Every text that gives one of ``secrets`` away (itself, its base64 forms), longest first."""
    names = [secrets] if isinstance(secrets, str) else [s for s in secrets if s]
    return sorted({f for s in names for f in secret_forms(s)}, key=len, reverse=True)


def _is_userinfo(b64: str) -> bool:
    try:
        return b":" in base64.b64decode(b64 + "=" * (-len(b64) % 4), validate=True)
    except ValueError:
        return False


def _mask_text(text: str, forms: list[str]) -> str:
    text = redact_userinfo(text)
    text = _BEARER.sub(lambda m: f"{m.group(1)} {MASK}", text)
    text = _BASIC.sub(lambda m: f"{m.group(1)} {MASK}" if _is_userinfo(m.group(2)) else m.group(0), text)
    text = _SK_KEY.sub(MASK, text)
    for form in forms:
        if form in text:
            text = text.replace(form, MASK)
    return text


def _clean(value: Any, where: str, secrets: list[str], depth: int) -> Any:
    if depth > _MAX_DEPTH:
        raise ValueError(f"{where}: nested deeper than {_MAX_DEPTH} levels (a cycle?)")
    if value is None or isinstance(value, bool) or isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        return _mask_text(value, secrets)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise ValueError(f"{where}: key {k!r} is not text (JSON object keys are)")
            key = _mask_text(k, secrets)
            if k.strip().lower().replace("-", "_") in SECRET_KEYS and v is not None:
                out[key] = MASK
            else:
                out[key] = _clean(v, f"{where}.{k}", secrets, depth + 1)
        return out
    if isinstance(value, (list, tuple)):
        return [_clean(v, f"{where}[{i}]", secrets, depth + 1) for i, v in enumerate(value)]
    raise ValueError(f"{where}: {type(value).__name__} {value!r:.60} is not JSON data")


def clean_record(record: Any, secrets: str | Iterable[str] = (), where: str = "record") -> dict[str, Any]:
    """``record`` (a mapping or a dataclass) as plain JSON data with credentials masked (see the
    module docstring); anything that is not JSON data is a one-line ValueError naming where."""
    if not (isinstance(record, Mapping) or (dataclasses.is_dataclass(record) and not isinstance(record, type))):
        raise ValueError(f"{where}: a record is a dict (or a dataclass), not {type(record).__name__}")
    return _clean(record, where, _forms(secrets), 0)


def write_records(report_dir: str | os.PathLike[str], name: str, records: Iterable[Any], *,
                  secrets: str | Iterable[str] = ()) -> Path:
    """Write ``records`` (dicts or dataclasses) to ``<report_dir>/records/<name>.jsonl``, one JSON
    object a line, atomically, creating the folders; returns the path. ``secrets``: texts (an API
    key) that must not appear, masked wherever they occur. Bad data is a one-line ValueError and
    leaves any earlier file as it was."""
    path = record_path(report_dir, name)
    if isinstance(records, (str, bytes, Mapping)) or not isinstance(records, Iterable):
        raise ValueError(f"records for {path.name}: an iterable of dicts, not {type(records).__name__}")
    forms = _forms(secrets)
    lines = []
    for i, r in enumerate(records):
        where = f"{path.stem} record {i}"
        if not (isinstance(r, Mapping) or (dataclasses.is_dataclass(r) and not isinstance(r, type))):
            raise ValueError(f"{where}: a record is a dict (or a dataclass), not {type(r).__name__}")
        lines.append(json.dumps(_clean(r, where, forms, 0), ensure_ascii=False, allow_nan=False,
                                separators=(",", ":")))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, "".join(line + "\n" for line in lines), mode=0o644)
    return path


def read_records(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The records of a ``.jsonl`` file (blank lines skipped). A file that cannot be read or a line
    that is not a JSON object is a one-line ValueError with the line number."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{p}: cannot read records ({type(exc).__name__}: {exc})") from None
    return [obj for _, obj in json_object_lines(text.splitlines(), str(p), "a record is")]
