"""Fixtures for the report tests; the helpers live in report_helpers.py (a unique module name)."""

from __future__ import annotations

import pytest

from report_helpers import SECRET, AllureRun, run_claims_module  # noqa: F401


@pytest.fixture(scope="session")
def allure_run(tmp_path_factory) -> AllureRun:
    root = tmp_path_factory.mktemp("allure-run")
    results = root / "allure-results"
    proc = run_claims_module(root, f"--alluredir={results}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return AllureRun(root, results, proc)
