"""The one-page HTML summary: self-contained, escaped, verdicts as colour and text; looked at in Chromium."""

from __future__ import annotations

import json
import re

import pytest

from pytest_inference.testing.browser import chromium, run_headless
from bundle_helpers import claim, load_records, lognormal, write_report

from pytest_inference import cli
from pytest_inference.bundle.pack import PAGE, pack, verify
from pytest_inference.bundle.page import build_page
from pytest_inference.report.charts import VERDICT_COLOURS


def _claims():
    ttft = lognormal(40, 120.0, 0.2, seed=5)
    return [
        claim("warm.ttft_median_ms", ttft, op="<", threshold=200, unit="ms"),                          # pass
        claim("warm.ttft_spread_ms", [40.0, 47.5, 42.0, 44.0], stat="spread", op="<", threshold=5, unit="ms"),  # fail
        claim("load.ttft_p99_ms", ttft, stat="p99", op="<", threshold=300, unit="ms"),                # inconclusive
        claim("warm.output_tok_s", lognormal(20, 500, 0.1, seed=6), stat="mean", unit="tok/s"),        # measured
    ]


@pytest.fixture
def report(tmp_path):
    ttft = lognormal(80, 120.0, 0.25, seed=7)
    return write_report(tmp_path / "reports", _claims(), target="h200-qual",
                        records={"load-4rps": load_records(ttft), "capacity-probe-1-8rps": load_records(ttft[:20])})


def test_page_is_self_contained_and_complete(report):
    summary = json.loads((report / "summary.json").read_text())
    page = build_page(summary, records={"load-4rps": load_records(lognormal(80, 120.0, 0.25, seed=7))})
    assert not re.search(r"""(?i)\b(src|href)\s*=|url\(|@import|<script|<link""", page)  # nothing to fetch
    assert 'id="target">h200-qual<' in page and "<title>pytest-inference: h200-qual</title>" in page
    for verdict in ("pass", "fail", "inconclusive", "measured"):
        assert f'data-verdict="{verdict}"' in page
        assert f'style="background:{VERDICT_COLOURS[verdict]}">{verdict}</span>' in page
    assert "nvidia NVIDIA H200 x1" in page and "CUDA 12.4" in page and "sha256 " + "ab" * 32 in page
    assert page.count("<svg ") == 4 + 3  # a chart per measured claim, TTFT/TPOT/e2e histograms
    assert "time to first token (ms)" in page and "n = 80" in page
    assert "warm.ttft_spread_ms = 7.5 ms over 4 samples" in page  # the claim's own message


def test_page_without_environment_or_records_still_renders():
    summary = {"schema": 1, "target": {"name": "<script>alert(1)</script>"}, "run": {},
               "claims": [claim("warm.ttft_median_ms", [], op="<", threshold=200)]}
    page = build_page(summary)
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "unknown (the run recorded no environment fingerprint)" in page
    assert "No per-request records in this run" in page
    assert "<svg " not in page  # nothing measured, nothing drawn; the table says so
    assert "not measured: no usable samples" in page


def test_page_only_from_a_folder_or_a_bundle(report, tmp_path, capsys):
    out = tmp_path / "page.html"
    assert cli.main(["bundle", str(report), "--page-only", "-o", str(out)]) == 0
    assert "capacity-probe-1-8rps" in out.read_text()  # drawn after the load run
    b = pack(report, tmp_path / "q.tar.gz", allure_html=False).path
    assert cli.main(["bundle", str(b), "--page-only", "-o", str(out)]) == 0
    text = out.read_text()
    assert "<h2>Bundle</h2>" in text and "records/load-4rps.jsonl" in text and "pytest-inference verify BUNDLE" in text


def test_chromium_shows_target_and_verdicts(report, tmp_path):
    browser = chromium()
    if browser is None:
        pytest.skip("chromium not installed (apt-get install -y chromium)")
    b = verify(pack(report, tmp_path / "q.tar.gz", allure_html=False).path)
    page = tmp_path / "summary.html"
    page.write_bytes(b.files[PAGE])  # the page inside the bundle
    shot = tmp_path / "shot.png"
    dom = run_headless(browser, "--dump-dom", page.as_uri())
    snap = run_headless(browser, "--window-size=1280,1600", f"--screenshot={shot}", page.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    text = dom.stdout
    assert 'id="target">h200-qual</span>' in text
    rows = re.findall(r'<tr data-verdict="(\w+)"><td><span class="v" style="background:(#\w+)">(\w+)</span>', text)
    assert sorted((v, t) for v, _, t in rows) == [("fail", "fail"), ("inconclusive", "inconclusive"),
                                                   ("measured", "measured"), ("pass", "pass")]
    assert all(colour == VERDICT_COLOURS[v] for v, colour, _ in rows)
    assert text.count("<svg") == 4 + 6  # the claims' charts and two records files' histograms survived parsing
    assert snap.returncode == 0 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
