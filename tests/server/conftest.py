"""Fixtures of the server-launcher tests; helpers live in server_helpers.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture
def lock_dir(tmp_path: Path) -> Path:
    """A private lock directory: these tests never wait for (or block) a real server on this machine."""
    d = tmp_path / "locks"
    d.mkdir()
    return d


@pytest.fixture
def kill_group_after():
    """Register process groups to SIGKILL at teardown, whatever the test did."""
    import signal

    pgids: list[int] = []
    yield pgids.append
    for g in pgids:
        try:
            os.killpg(g, signal.SIGKILL)
        except OSError:
            pass
