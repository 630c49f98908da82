"""The whole path: two real pytest runs of the plugin write their report folders; each is bundled,
verified, and compared — the run whose TTFT was planted 30% slower is a regression (exit 1)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from pytest_inference import cli
from pytest_inference.bundle.pack import verify

MODULE = '''
import os
import random

import pytest


@pytest.mark.warm
def test_warm(claim):
    rng = random.Random(int(os.environ["E2E_SEED"]))
    scale = float(os.environ["E2E_SCALE"])
    claim("warm.ttft_median_ms", [100 * scale * rng.lognormvariate(0, 0.2) for _ in range(40)], unit="ms")
'''


def _run(tmp_path, name: str, seed: int, scale: float):
    report = tmp_path / name
    env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_ADDOPTS", "PYTEST_XDIST_WORKER")}
    env.update(E2E_SEED=str(seed), E2E_SCALE=str(scale))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path),
                           "test_e2e_module.py", "--target", "cpu-local", "--inference-report", str(report),
                           f"--alluredir={report / 'allure-results'}", f"--junitxml={report / 'junit.xml'}"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return report


def test_two_real_runs_bundled_and_compared(tmp_path, capsys):
    (tmp_path / "test_e2e_module.py").write_text(MODULE)
    old, new = _run(tmp_path, "old", 1, 1.0), _run(tmp_path, "new", 2, 1.3)
    bundles = []
    for report in (old, new):
        out = tmp_path / f"{report.name}.tar.gz"
        assert cli.main(["bundle", str(report), "-o", str(out), "--no-allure-html"]) == 0
        b = verify(out)
        assert {"summary.json", "junit.xml", "environment.json", "summary.html"} <= set(b.files)
        assert any(p.startswith("allure-results/") and p.endswith("-result.json") for p in b.files)
        summary = json.loads(b.files["summary.json"])
        if "environment" in summary:  # the run's fingerprint travels as environment.json too
            assert json.loads(b.files["environment.json"]) == summary["environment"]
        bundles.append(out)
        hardware = b.info["hardware"]
    capsys.readouterr()
    # same machine, so the same fingerprint; without one (a checkout before fingerprints) only with the override
    override = ["--allow-different-hardware"] if hardware == "unknown" else []
    code = cli.main(["compare", str(bundles[0]), str(bundles[1]), "--json", *override])
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert [(r["metric"], r["verdict"], r["better"]) for r in rows] == [("warm.ttft_median_ms", "regressed", "lower")]
    assert rows[0]["note"] == ("different hardware" if override else None)
    assert code == 1
