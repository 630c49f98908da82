"""The harness micro-benchmarks (benchmarks/test_harness_speed.py, pytest-benchmark) keep working.

Run once each with --benchmark-disable: no timing is asserted (speed lives in benchmarks, not tests),
but every benchmark's own correctness assertions run, so a renamed API or a broken fixture shows here.
"""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_harness_benchmarks_run_and_check_their_results(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", str(ROOT / "benchmarks" / "test_harness_speed.py"), "-q",
         "-p", "no:cacheprovider", "--benchmark-disable", "--rootdir", str(ROOT),
         "--inference-report", str(tmp_path / "reports")],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert re.search(r"^10 passed\b", proc.stdout, re.M), proc.stdout[-2000:]
