"""The harness micro-benchmarks (benchmarks/test_harness_speed.py, pytest-benchmark) keep working.

Run once each with --benchmark-disable: no timing is asserted (speed lives in benchmarks, not tests),
but every benchmark's own correctness assertions run, so a renamed API or a broken fixture shows here.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

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


# ------------------------------------------------ benchmarks/bench_openloop.py: the engine beside vllm bench serve

sys.path.insert(0, str(ROOT / "benchmarks"))
import _vllm_bench  # noqa: E402


def _openloop(tmp_path, env: dict, *args: str):
    out = tmp_path / "rows.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_openloop.py"), "--rates", "20", "--seconds", "1",
         "--servers", "ttft-20ms", "--json", str(out), *args],
        capture_output=True, text=True, timeout=300, cwd=ROOT, env={**os.environ, **env},
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "Traceback" not in proc.stdout + proc.stderr
    return proc.stdout, json.loads(out.read_text())


def _check_against_truth(r: dict) -> None:
    """What any honest row holds whatever the box's load: every request compared with the server's
    own record, none failed, and causality — a client's TTFT starts before the server read the
    request and ends after it wrote the first token, so it is never below the true TTFT; the server
    reads a request only after the client sent it, so scheduled -> read dominates scheduled -> sent."""
    assert r["failed"] == 0, r
    assert r["matched"] == r["n"] > 0, r
    assert r["err_min_ms"] >= 0.0 and r["err_p50_ms"] <= r["err_p99_ms"], r
    assert r["lag_p99_ms"] is not None and r["lag_p99_ms"] >= 0.0, r
    assert r["read_p99_ms"] >= r["lag_p99_ms"], r
    assert r["cpu_ms"] > 0 and 0 < r["share"] <= 1.5, r


def test_openloop_bench_without_vllm_says_so_in_one_line_and_still_runs_the_engine(tmp_path):
    gone = tmp_path / "no-venv"
    stdout, data = _openloop(tmp_path, {"PYTEST_INFERENCE_VLLM_VENV": str(gone)}, "--workers", "1,2")
    said = [ln for ln in stdout.splitlines() if "vllm bench serve" in ln and "not run" in ln]
    assert len(said) == 1 and str(gone) in said[0] and said[0].startswith("vllm bench serve: not run:"), stdout
    assert data["vllm_missing"] and str(gone) in data["vllm_missing"]
    assert [r["client"] for r in data["rows"]] == ["engine x1", "engine x2"], data["rows"]
    for r in data["rows"]:
        _check_against_truth(r)
        assert r["server"] == "ttft-20ms" and r["rate"] == 20
    assert any("vllm bench serve's: not measured (no vllm bench serve figures)" in g for g in data["goals"]) \
        or any("not measured (no rate the server held)" in g for g in data["goals"]), data["goals"]


def test_openloop_bench_runs_vllm_bench_serve_beside_the_engine(tmp_path):
    why = _vllm_bench.missing()
    if why:  # the path without it is the test above; this one needs the real thing
        pytest.skip(f"needs vllm bench serve: {why}")
    stdout, data = _openloop(tmp_path, {}, "--workers", "1")
    assert "not run" not in stdout, stdout
    by = {r["client"]: r for r in data["rows"]}
    assert set(by) == {"engine x1", "vllm bench serve"}, stdout
    for r in by.values():
        _check_against_truth(r)
    v = by["vllm bench serve"]
    assert v["n"] == by["engine x1"]["n"]  # the same rate and request count
    assert v["note"] is None  # vLLM's schedule was derived, and no send came before it
    # the CPU window leaves the start-up out: it is a part of the child's whole rusage
    assert 0 < v["cpu_ms"] * v["n"] / 1e3 < v["cpu_total_s"] and v["cpu_startup_s"] < v["cpu_total_s"]
    assert any(g.startswith("engine CPU/request") for g in data["goals"]) or \
        any("no rate the server held" in g for g in data["goals"]), data["goals"]


def test_openloop_bench_bad_input_is_one_line(tmp_path):
    for args in (["--rates", "0"], ["--rates", "x"], ["--servers", "nope"]):
        proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_openloop.py"), *args],
                              capture_output=True, text=True, timeout=60, cwd=ROOT)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        assert proc.stderr.strip().splitlines()[-1].startswith("bench_openloop.py: error: "), proc.stderr


def test_vllm_bench_runs_only_against_loopback():
    for url in ("http://10.0.0.1:8000/v1", "https://127.0.0.1:8000/v1", "http://example.com:80/v1",
                "http://127.0.0.1/v1"):
        with pytest.raises(ValueError, match="loopback"):
            _vllm_bench.check_loopback(url)
    assert _vllm_bench.check_loopback("http://127.0.0.1:8123/v1") == ("127.0.0.1", 8123, "/v1")
