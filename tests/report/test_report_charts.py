"""charts.py: valid, deterministic PNGs; matplotlib only imported when a chart is drawn."""

from __future__ import annotations

import os
import struct
import subprocess
import sys

import pytest

from pytest_inference.claims import Requirement, judge
from pytest_inference.report import charts

PNG = b"\x89PNG\r\n\x1a\n"


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG, "not a PNG"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert data.rstrip(b"\0").endswith(b"IEND\xaeB`\x82"), "PNG not terminated"
    return width, height


def ttft_samples(n: int = 24) -> list[float]:
    return [150.0 + (i * 37) % 90 for i in range(n)]


@pytest.mark.parametrize(
    "claim",
    [
        judge("warm.ttft_ms", ttft_samples(), requirement=Requirement("warm.ttft_ms", "<", 200, unit="ms", stat="p90")),
        judge("warm.ttft_ms", ttft_samples(), requirement=Requirement("warm.ttft_ms", "<", 500, unit="ms", stat="median")),
        judge("warm.ttft_spread_ms", [40, 47.9, 43, 41.5],
              requirement=Requirement("warm.ttft_spread_ms", "<", 5, unit="ms", stat="spread"), target="mi300x"),
        judge("warm.ttft_ms", [3.0, 3.0, 3.0], stat="spread", unit="ms"),  # zero spread
        judge("storage.read_gbps", [5.1, 4.8, 5.3], requirement=Requirement("storage.read_gbps", ">=", 5, unit="GB/s",
                                                                             stat="min")),
        judge("warm.tokens_per_s", [float(300 + (i % 17)) for i in range(250)], stat="mean", unit="tok/s"),  # dots
        judge("cold.total_s", [1.0, 2.5, 3.25], stat="sum", unit="s"),
        judge("drift", [-1.5, 0.5, 2.0, -0.25], stat="max"),  # negative values, no unit
        judge("warm.tokens_per_s", [280.0, 310.0], measured=295.0, unit="tok/s"),  # a value from elsewhere
    ],
    ids=["p90-fail", "median-pass", "spread", "zero-spread", "min-ge", "many-mean", "sum", "negative", "value"],
)
def test_claim_chart_is_a_png(claim):
    data = charts.claim_chart_png(claim)
    width, height = png_size(data)
    assert (width, height) == (900, 400)


def test_single_value_claims_have_no_chart():
    assert charts.claim_chart_png(judge("cold.ttft_s", [41.2], unit="s")) is None
    assert charts.claim_chart_png(judge("econ.crossover", measured=3.5, unit="$")) is None


def test_claim_chart_is_deterministic():
    claim = judge("warm.ttft_ms", ttft_samples(), requirement=Requirement("warm.ttft_ms", "<", 200, unit="ms", stat="p90"))
    assert charts.claim_chart_png(claim) == charts.claim_chart_png(claim)


def test_timeline_png():
    data = charts.timeline_png([("pull", 0, 12.5), ("load weights", 12.5, 40.2), ("first token", 40.2, 40.6)],
                               "cold start")
    width, height = png_size(data)
    assert width == 800 and height > 200
    assert charts.timeline_png([], "nothing") is None
    with pytest.raises(ValueError, match="ends"):
        charts.timeline_png([("backwards", 5, 1)], "bad")


def test_line_chart_png():
    data = charts.line_chart_png(
        {"gpu": ([0, 1e6, 2e6], [2500, 2500, 2500]), "serverless": ([0, 1e6, 2e6], [0, 1200, 2400])},
        "cost crossover", "requests / month", "$ / month",
        marks=[("break-even", 2.08e6, 2500), ("today", 1.2e6)],
    )
    png_size(data)
    assert charts.line_chart_png({"empty": ([], [])}, "t", "x", "y") is None
    with pytest.raises(ValueError, match="x values"):
        charts.line_chart_png({"bad": ([1, 2], [1])}, "t", "x", "y")
    with pytest.raises(ValueError, match="mark"):
        charts.line_chart_png({"ok": ([1, 2], [1, 2])}, "t", "x", "y", marks=[("only a label",)])


def _python(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env=env if env is not None else os.environ.copy())


def test_report_modules_import_neither_matplotlib_nor_allure():
    proc = _python(
        "import sys, pytest_inference.report.allure_sink, pytest_inference.report.charts, "
        "pytest_inference.report.figures, pytest_inference.report.html\n"
        "heavy = sorted(m for m in ('matplotlib', 'allure', 'allure_commons') if m in sys.modules)\n"
        "assert not heavy, heavy"
    )
    assert proc.returncode == 0, proc.stderr


def test_mplconfigdir_is_set_when_unset(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "MPLCONFIGDIR"}
    env["TMPDIR"] = str(tmp_path)
    proc = _python(
        "import os\n"
        "from pytest_inference.claims import judge\n"
        "from pytest_inference.report.charts import claim_chart_png\n"
        "assert claim_chart_png(judge('m', [1.0, 2.0, 3.0], stat='mean', unit='ms'))[:4] == b'\\x89PNG'\n"
        "print(os.environ['MPLCONFIGDIR'])",
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().startswith(str(tmp_path))
    assert "Matplotlib created a temporary cache directory" not in proc.stderr
