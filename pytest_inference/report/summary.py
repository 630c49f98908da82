"""``summary.json``, schema version 1: the machine-readable record of a run's claims."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ..supervise import write_text_atomic


def json_safe(obj: Any, where: str = "", notes: list[str] | None = None) -> Any:
    """``obj`` with every NaN/Infinity replaced by None (JSON has no such numbers), each noted as
    ``"claims[2].measured was -inf; written as null"`` in ``notes``."""
    if isinstance(obj, float) and not math.isfinite(obj):
        if notes is not None:
            notes.append(f"{where or 'value'} was {obj}; written as null")
        return None
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            key = str(k)
            out[key] = json_safe(v, f"{where}.{key}" if where else key, notes)
        return out
    if isinstance(obj, (list, tuple)):
        return [json_safe(v, f"{where}[{i}]", notes) for i, v in enumerate(obj)]
    return obj


class SummaryError(ValueError):
    """A file that is not a readable pytest-inference ``summary.json``; the message is one line."""


def parse_summary(data: bytes | str, where: str) -> dict[str, Any]:
    """The object of a ``summary.json`` (schema 1 with a claims list) whose text is ``data``;
    :class:`SummaryError` naming ``where`` when it is not one."""
    try:
        summary = json.loads(data.decode("utf-8") if isinstance(data, bytes) else data)
    except UnicodeDecodeError:
        raise SummaryError(f"{where} is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise SummaryError(f"{where} is not JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(summary, dict) or summary.get("schema") != 1 or not isinstance(summary.get("claims"), list):
        raise SummaryError(f"{where} is not a pytest-inference summary.json (schema 1 with a claims list)")
    return summary


def read_summary(path: str | Path, where: str | None = None) -> dict[str, Any]:
    """:func:`parse_summary` of the file ``path`` (``where`` names it in the error, default the path)."""
    where = where or str(path)
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise SummaryError(f"{where} not found") from None
    except OSError as exc:
        raise SummaryError(f"cannot read {where}: {exc.strerror or exc}") from None
    return parse_summary(data, where)


def write_summary_json(path: Path, summary: dict[str, Any]) -> Path:
    """Write atomically (temp file + rename), so a reader never sees half a file. Strict JSON:
    NaN/Infinity become null with a line in ``notes`` (``allow_nan=False`` proves none is left)."""
    notes: list[str] = []
    clean = json_safe(summary, "", notes)
    if notes:
        clean["notes"] = list(clean.get("notes") or []) + notes
    text = json.dumps(clean, indent=2, default=str, allow_nan=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, text + "\n", mode=0o644)  # the supervisor's one atomic writer
    return path


# --- the summary.json sink: an implementation of pytest_inference_report (hookspec.py) ---------------
def pytest_inference_report(session, summary, claims) -> None:
    """Write ``summary.json`` into the report folder; a failed write is one red line and exit status 3
    (unless the run already failed)."""
    import pytest

    from ..session import SESSION_KEY

    state = session.config.stash.get(SESSION_KEY, None)
    if state is None:
        return
    path = state.summary_path_hint()
    try:
        state.summary_path = write_summary_json(path, summary)
    except OSError as exc:
        session.config.get_terminal_writer().line(f"inference: could not write {path}: {exc.strerror or exc}", red=True)
        if session.exitstatus == 0:
            session.exitstatus = pytest.ExitCode.INTERNAL_ERROR
