"""Options of the measuring engine (timeouts, deadlines), registered by :mod:`pytest_inference.plugin`.

Kept here so the plugin module stays a list of hooks; values are read by the suites' probes.
"""

from __future__ import annotations


def add_options(group) -> None:
    """Add the engine's options to the plugin's ``inference`` option group."""
    return None
