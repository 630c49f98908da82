"""Fixtures of the fingerprint tests: fake tools on a PATH of their own (fakes.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fakes import write_tools
from pytest_inference.fingerprint import gather as gather_module


@pytest.fixture(autouse=True)
def fresh_cache(monkeypatch):
    """Each test sees the tools anew (the fingerprint caches the accelerator per process)."""
    monkeypatch.setattr(gather_module, "_cache", {})


@pytest.fixture
def tools(tmp_path):
    """``tools(spec, **env)`` -> (env for the fingerprint, the dev folder): a PATH of fake tools plus
    /usr/bin:/bin (sh, cat, sleep), and an empty device-node folder."""
    dev = tmp_path / "dev"
    dev.mkdir()

    def make(spec: dict, **env: str):
        folder = write_tools(tmp_path / "bin", spec)
        return {"PATH": f"{folder}:/usr/bin:/bin", **env}, dev

    return make
