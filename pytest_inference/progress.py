"""Progress lines for long waits (a warm run of hundreds of requests, a cold start).

Written straight to pytest's terminal, past output capture; silent on xdist workers (no
terminal) and with ``-q -q``.
"""

from __future__ import annotations

import contextlib
import time

import pytest


def _writer(config: pytest.Config):
    """A function writing one line to the real terminal, past fd-level output capture."""
    tr = config.pluginmanager.get_plugin("terminalreporter")
    if tr is None or config.get_verbosity() < -1:
        return None
    capman = config.pluginmanager.get_plugin("capturemanager")

    def write(line: str) -> None:
        ctx = capman.global_and_fixture_disabled() if capman is not None else contextlib.nullcontext()
        with ctx:
            tr.write_line(line)

    return write


class TerminalProgress:
    """``progress(done, total)`` → ``[warm] 12/20 requests, 4.1 s``, one line per call."""

    def __init__(self, config: pytest.Config, label: str, unit: str = "requests") -> None:
        self._write = _writer(config)
        self.label, self.unit = label, unit
        self._t0 = time.monotonic()
        self.lines: list[str] = []

    def __call__(self, done: int, total: int) -> None:
        line = f"[{self.label}] {done}/{total} {self.unit}, {time.monotonic() - self._t0:.1f} s"
        self.lines.append(line)
        if self._write is not None:
            self._write(line)


class StartProgress:
    """``progress(text, elapsed_s)`` from a server start → ``[coldstart 1/3] 12.3 s: waiting for /health``.

    Shows the newest startup phase the log has announced when a ``phase_of`` callable is
    given (the vLLM log parser's latest phase)."""

    def __init__(self, config: pytest.Config, label: str, phase_of=None) -> None:
        self._write = _writer(config)
        self.label = label
        self.phase_of = phase_of
        self.lines: list[str] = []

    def __call__(self, text: str, elapsed_s: float) -> None:
        phase = self.phase_of() if self.phase_of else None
        line = f"[{self.label}] {elapsed_s:5.1f} s: {text}" + (f" (phase: {phase})" if phase else "")
        self.lines.append(line)
        if self._write is not None:
            self._write(line[:200])
