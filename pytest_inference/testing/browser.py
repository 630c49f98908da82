"""Headless Chromium for the tests that look at a rendered page (the Allure report, the bundle's
one-page summary): where it is, and how to run it offline (no network, a throwaway profile)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

#: offline and quiet: no GPU, no QUIC, no background traffic, every host name unresolvable
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--host-resolver-rules=MAP * ~NOTFOUND")


def chromium() -> str | None:
    """The Chromium (or Chrome) on PATH, or None."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def run_headless(browser: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """``browser`` with :data:`FLAGS`, a fresh profile (also its HOME) and ``args``; text output."""
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run([browser, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                              text=True, timeout=timeout, env={**os.environ, "HOME": profile})
