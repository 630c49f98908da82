"""html.py: Allure 3 renders the results to one offline HTML file; Chromium shows the claims."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_inference.testing.browser import chromium, run_headless

from pytest_inference.report import html
from pytest_inference.report.html import ReportError, embedded_files, find_allure_cli, render_html, strip_analytics


@pytest.fixture(scope="session")
def allure_cli() -> list[str]:
    try:
        return find_allure_cli()
    except ReportError as exc:
        pytest.skip(f"Allure 3 CLI not installed (`npm ci` at the repository root installs it): {exc}")


@pytest.fixture(scope="session")
def rendered(allure_run, allure_cli, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("html")
    (out / "summary.json").write_text('{"ours": true}')  # Allure's own summary.json must not clobber it
    return render_html(allure_run.results, out)


def _isolate(monkeypatch, tmp_path):
    """No $PYTEST_INFERENCE_ALLURE, no node_modules here or at the 'repo root', no npx on PATH."""
    monkeypatch.delenv(html.ENV_VAR, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(html, "REPO_ROOT", tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))


def test_missing_cli_says_how_to_install(monkeypatch, tmp_path):
    _isolate(monkeypatch, tmp_path)
    with pytest.raises(ReportError) as err:
        find_allure_cli()
    message = str(err.value)
    assert "npm install allure@3" in message and "\n" not in message


def test_env_var_that_is_not_allure_3(monkeypatch, tmp_path):
    _isolate(monkeypatch, tmp_path)
    fake = tmp_path / "allure"
    fake.write_text("#!/bin/sh\necho 2.30.0\n")
    fake.chmod(0o755)
    monkeypatch.setenv(html.ENV_VAR, str(fake))
    with pytest.raises(ReportError, match=r"not an Allure 3 CLI \(version 2\.30\.0\)"):
        find_allure_cli()
    assert find_allure_cli(check=False) == [str(fake)]


def test_node_modules_in_cwd_is_found(monkeypatch, tmp_path):
    _isolate(monkeypatch, tmp_path)
    binary = tmp_path / "node_modules" / ".bin" / "allure"
    binary.parent.mkdir(parents=True)
    binary.write_text("#!/bin/sh\necho 3.18.0\n")
    binary.chmod(0o755)
    assert find_allure_cli() == [str(binary)]


def test_results_dir_errors(tmp_path):
    with pytest.raises(ReportError, match="no Allure results directory"):
        render_html(tmp_path / "missing", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReportError, match=r"no Allure test results"):
        render_html(tmp_path / "empty", tmp_path / "out")


def test_strip_analytics():
    page = (
        '<body><div id="app"></div>\n'
        '<script async src="https://www.googletagmanager.com/gtag/js?id=G-X"></script>\n'
        "<script>\n window.dataLayer = window.dataLayer || [];\n function gtag(){dataLayer.push(arguments);}\n"
        " gtag('js', new Date());\n gtag('config', 'G-X', {});\n</script>\n"
        '<script src="data:text/javascript;base64,AAAA"></script>\n<script>window.x = 1;</script></body>'
    )
    out, removed = strip_analytics(page)
    assert removed == 2
    assert "googletagmanager" not in out and "gtag" not in out
    assert 'src="data:text/javascript;base64,AAAA"' in out and "window.x = 1;" in out


def test_render_html(rendered, allure_run):
    assert rendered.name == "index.html" and rendered.is_file()
    assert sorted(p.name for p in rendered.parent.iterdir()) == ["index.html", "summary.json"]
    assert json.loads((rendered.parent / "summary.json").read_text()) == {"ours": True}
    text = rendered.read_text(encoding="utf-8")
    assert "<title>" in text and "pytest-inference" in text
    assert "googletagmanager" not in text  # opening the file calls nowhere
    files = embedded_files(rendered)
    results = [json.loads(v) for k, v in files.items() if k.startswith("data/test-results/")]
    by_name = {r["name"]: r for r in results}
    assert set(by_name) == {"test_warm", "test_cold"}
    blob = b"".join(v for k, v in files.items() if k.startswith("data/test-results/"))
    assert b"warm.ttft_spread_ms" in blob and b"coldstart.ttft_s" in blob
    pngs = [v for k, v in files.items() if k.startswith("data/attachments/") and k.endswith(".png")]
    assert len(pngs) == 2 and all(p.startswith(b"\x89PNG") for p in pngs)


def test_chromium_renders_the_claims(rendered):
    browser = chromium()
    if browser is None:
        pytest.skip("chromium not installed (apt-get install -y chromium)")
    warm_id = next(json.loads(v)["id"] for k, v in embedded_files(rendered).items()
                   if k.startswith("data/test-results/") and json.loads(v)["name"] == "test_warm")
    proc = run_headless(browser, "--virtual-time-budget=15000", "--dump-dom", rendered.as_uri() + f"#/{warm_id}")
    dom = proc.stdout
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "warm.ttft_spread_ms: FAIL" in dom  # the claim's step title, rendered by the SPA
    assert "warm.ttft_ms chart" in dom and "warm.ttft_ms claim" in dom  # its attachments
    assert "127.0.0.1:8000" in dom  # a parameter


def test_cli_renders_with_relative_paths(tmp_path, monkeypatch):
    """`pytest-inference report` with its default relative folders (regression: cwd=tmp broke them)."""
    from pytest_inference import cli

    try:
        find_allure_cli()
    except ReportError as exc:
        pytest.skip(str(exc))
    results = tmp_path / "reports" / "allure-results"
    results.mkdir(parents=True)
    (results / "0-result.json").write_text(json.dumps({
        "uuid": "0", "name": "test_x", "fullName": "t#test_x", "status": "passed",
        "labels": [{"name": "metric", "value": "warm.ttft_median_ms"}], "start": 1, "stop": 2}))
    monkeypatch.chdir(tmp_path)
    assert cli.main(["report"]) == 0
    assert (tmp_path / "reports" / "html" / "index.html").stat().st_size > 100_000


FIGURE_MODULE = '''
from pytest_inference.claims import judge
from pytest_inference.report.allure_sink import attach_claim
from pytest_inference.report.figures import timeline, with_figures


def test_cold():
    rows = [["weights_load", 2.0, 30.0], ["launch → first token", 0.0, 41.2]]
    c = judge("coldstart.total_s", [41.2], unit="s",
              details=with_figures({}, timeline(rows, "cold start 1", name="cold start 1 timeline chart")))
    assert attach_claim(c, "coldstart", None)
'''


def test_html_report_shows_the_figures_a_claim_carries(allure_cli, tmp_path):
    """A figure is data in the claim; the Allure sink draws it and the HTML report embeds the PNG."""
    (tmp_path / "test_figure_module.py").write_text(FIGURE_MODULE)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_ADDOPTS", "PYTEST_XDIST_WORKER")}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:inference", "-p", "no:cacheprovider", "-q",
                           "--rootdir", str(tmp_path), f"--alluredir={tmp_path / 'results'}", "test_figure_module.py"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    files = embedded_files(render_html(tmp_path / "results", tmp_path / "html"))
    [result] = [json.loads(v) for k, v in files.items() if k.startswith("data/test-results/")]
    [step] = result["steps"]  # the claim's step holds its attachments (Allure 3: sub-steps of type attachment)
    links = [s["link"] for s in step["steps"] if s.get("type") == "attachment"]
    assert [(a["name"], a["contentType"]) for a in links] == [
        ("coldstart.total_s claim", "application/json"), ("cold start 1 timeline chart", "image/png")]
    png = files[f"data/attachments/{links[1]['id']}.png"]
    assert png.startswith(b"\x89PNG")
    # one sample: no samples chart, the timeline only
    assert [k for k in files if k.startswith("data/attachments/") and k.endswith(".png")] == [
        f"data/attachments/{links[1]['id']}.png"]
