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
from suite_runner import ensure_tiny_model

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
    assert r["stamp_p99_ms"] >= 0.0, r  # the client stamps a first token after the server wrote it
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
    venv_python = _vllm_bench.venv_python()
    if venv_python.exists():  # its tokenizer is the tiny model's: made here when no earlier test made it
        ensure_tiny_model(venv_python)
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


def _fake_run(starts_ms, ttfts_ms, lats_ms):
    n = len(starts_ms)
    return _vllm_bench.VllmBenchRun(
        num_prompts=n, rate=10.0, max_concurrency=None, completed=n, failed=0, ttft_ms=list(ttfts_ms),
        latency_ms=list(lats_ms), start_ns=[round(x * 1e6) for x in starts_ms], errors=[""] * n, duration_s=1.0,
        cpu_s=None, cpu_startup_s=None, cpu_total_s=0.0, wall_s=1.0)


def _rec(recv_ms, first_ms, last_ms):
    return {"recv_ns": round(recv_ms * 1e6), "first_token_ns": round(first_ms * 1e6),
            "last_token_ns": round(last_ms * 1e6), "ttft_ms": first_ms - recv_ms}


def test_vllm_requests_match_the_server_records_by_causality_and_least_delay():
    # two requests 0.1 ms apart; the second's record (read at 0.15, first token at 30.15) is also a
    # causal candidate for the first (seen at 40.3) — least delay pairs each with its own
    run = _fake_run([0.0, 0.1], [40.3, 30.3], [40.5, 30.5])
    truth = {"warm": _rec(-5.0, -4.0, -3.9),  # read before every start: a warm-up, never matched
             "a": _rec(0.2, 40.2, 40.4), "b": _rec(0.15, 30.15, 30.35)}
    errs, pairs = _vllm_bench.ttft_errors_ms(run, truth)
    assert [i for i, _ in pairs] == [0, 1]
    assert [t["recv_ns"] for _, t in pairs] == [200_000, 150_000]
    assert errs == pytest.approx([40.3 - 40.0, 30.3 - 30.0])


def test_vllm_matching_never_drops_a_request_a_neighbour_could_do_without():
    # least delay alone gives record X to request 0 (1.25 ms of delay, against 1.85 for request 1)
    # and leaves request 1 nothing (Y was read before it started), though request 0 can also take
    # Y: the augmenting path matches both
    run = _fake_run([0.0, 1.0], [21.0, 20.8], [21.2, 21.0])
    truth = {"X": _rec(1.05, 20.9, 21.1), "Y": _rec(0.5, 15.0, 15.2)}
    errs, pairs = _vllm_bench.ttft_errors_ms(run, truth)
    assert dict((i, t["recv_ns"]) for i, t in pairs) == {0: 500_000, 1: 1_050_000}
    assert errs == pytest.approx([21.0 - 14.5, 20.8 - 19.85])
