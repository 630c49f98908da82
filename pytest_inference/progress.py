"""Progress lines for long waits (a warm run of hundreds of requests, a cold start).

Written straight to pytest's terminal, past output capture; silent on xdist workers (no
terminal) and with ``-q -q``.
"""

from __future__ import annotations

import time

import pytest


class TerminalProgress:
    """``progress(done, total)`` → ``[warm] 12/20 requests, 4.1 s``, one line per call."""

    def __init__(self, config: pytest.Config, label: str, unit: str = "requests") -> None:
        self._tr = config.pluginmanager.get_plugin("terminalreporter")
        if self._tr is not None and config.get_verbosity() < -1:
            self._tr = None
        self.label, self.unit = label, unit
        self._t0 = time.monotonic()
        self.lines: list[str] = []

    def __call__(self, done: int, total: int) -> None:
        line = f"[{self.label}] {done}/{total} {self.unit}, {time.monotonic() - self._t0:.1f} s"
        self.lines.append(line)
        if self._tr is not None:
            self._tr.write_line(line)
