"""A real allure-pytest run, once per session, that the Allure sink and HTML tests read."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

SECRET = "sk-test-" + "q" * 24

#: a test module that judges three claims (inconclusive, fail, pass) and attaches them
CLAIMS_MODULE = textwrap.dedent(
    f'''
    import os
    import sys

    from pytest_inference.claims import Requirement, judge
    from pytest_inference.report.allure_sink import attach_claim

    SECRET = {SECRET!r}
    EXPECT = os.environ.get("EXPECT_ATTACHED", "1") == "1"
    SAMPLES = [150.0 + (i * 37) % 90 for i in range(24)]


    def test_warm(pytestconfig):
        """Warm TTFT of the endpoint."""
        p90 = judge("warm.ttft_ms", SAMPLES, target="h200",
                    requirement=Requirement("warm.ttft_ms", "<", 500, unit="ms", stat="p90"))
        assert p90.verdict == "inconclusive"  # 24 samples cannot support a p90
        done = attach_claim(p90, "warm", "h200", {{
            "requests": 24, "concurrency": 4, "max_tokens": 64, "api_key": SECRET,
            "endpoint": "http://user:pw@127.0.0.1:8000/v1?key=" + SECRET,
        }})
        assert done is EXPECT
        spread = judge("warm.ttft_spread_ms", [40.0, 47.5, 42.0, 44.0], target="h200",
                       requirement=Requirement("warm.ttft_spread_ms", "<", 5, unit="ms", stat="spread"))
        assert spread.verdict == "fail"
        assert attach_claim(spread, "warm", "h200", config=pytestconfig) is EXPECT
        if not EXPECT:
            assert "allure" not in sys.modules or os.environ.get("ALLURE_LOADED") == "1"


    def test_cold():
        claim = judge("coldstart.ttft_s", [41.2], unit="s", target="h200",
                      details={{"hf_token": SECRET, "image": "vllm/vllm-openai"}},
                      requirement=Requirement("coldstart.ttft_s", "<", 60, unit="s"))
        assert claim.verdict == "pass"
        assert attach_claim(claim, "coldstart", None) is EXPECT
    '''
)


@dataclass
class AllureRun:
    root: Path
    results: Path
    proc: subprocess.CompletedProcess

    def result(self, name: str) -> dict:
        for path in self.results.glob("*-result.json"):
            data = json.loads(path.read_text())
            if data["name"] == name:
                return data
        raise AssertionError(f"no Allure result named {name!r} in {self.results}")

    def attachment(self, source: str) -> bytes:
        return (self.results / source).read_bytes()


def run_claims_module(root: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run CLAIMS_MODULE with pytest in a subprocess, without the pytest-inference plugin."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "test_claims_module.py").write_text(CLAIMS_MODULE)
    full_env = {**os.environ, **(env or {})}
    full_env.pop("PYTEST_ADDOPTS", None)
    full_env.pop("PYTEST_XDIST_WORKER", None)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:inference", "-p", "no:cacheprovider", "-q",
         "--rootdir", str(root), *args, "test_claims_module.py"],
        cwd=root, capture_output=True, text=True, timeout=300, env=full_env,
    )
