"""Shards of one load schedule run as separate local processes (the entrypoint the pods use), and
``pytest-inference merge`` on what they wrote: pooled samples, ground truth from the records, a
planted clock skew, and the bad inputs that are one line.

The fake OpenAI server sends no Date header, so the shards' clock reference here is a stdlib HTTP
server on loopback (``--load-clock-url``): it stamps each answer with ``time.time()``, the clock
the shards share unless ``PYTEST_INFERENCE_CLOCK_SKEW_S`` shifts one of them.
"""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from suite_runner import QUIET_PSI, QUIET_STAT, ROOT

from pytest_inference import stats
from pytest_inference.cli import main as cli_main
from pytest_inference.report.records import read_records
from pytest_inference.testing.fake_openai import FakeOpenAIServer

pytestmark = pytest.mark.xdist_group("timing")

TARGET = '''
name = "shard-test"
description = "shards of one schedule against the fake server"
confidence = 0.95
[load]
slo = "ttft_ms:500"
workload = "synthetic:input=16,output=4,n=60,seed=3"
rate_rps = "40"
requests = 120
arrival = "poisson"
warmup = 1
max_lag_ms = 50
[claims]
"load.slo_attainment" = { op = ">=", threshold = 0.5 }
"load.ttft_p99_ms" = { op = "<=", threshold = 2000 }
"load.e2e_p99_ms" = { op = "<=", threshold = 2000 }
'''


class _Quiet(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's name
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):  # noqa: D102 - silence
        pass


@pytest.fixture(scope="module")
def clock_url():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Quiet)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/"
    srv.shutdown()
    srv.server_close()


def _cmd(results: Path, pytest_args: list[str]) -> list[str]:
    """The pods' entrypoint and suite (pytest_inference.incluster.manifests: ``in-pod -- --pyargs ...``)."""
    return [sys.executable, "-m", "pytest_inference.cli", "in-pod", "--results-dir", str(results), "--", *pytest_args]


def run_shards(tmp_path, fake_url, clock_url, specs, *, lead_s=12.0):
    """Start one shard process per ``(index, count, seed, skew_s)`` of ``specs`` (one common start
    ``lead_s`` from now); their report folders when all have ended."""
    target = tmp_path / "shard-test.toml"
    target.write_text(TARGET)
    (tmp_path / "psi").write_text(QUIET_PSI)
    (tmp_path / "stat").write_text(QUIET_STAT)
    start_at = f"{time.time() + lead_s:.3f}"
    procs, dirs = [], []
    for n, (i, count, seed, skew) in enumerate(specs):
        d = tmp_path / f"shard{n}"
        args = ["--pyargs", "pytest_inference.suites.load", "-p", "no:cacheprovider", "-p", "no:randomly",
                "--endpoint", fake_url, "--target", str(target), f"--load-shard={i}/{count}",
                "--load-start-at", start_at, "--load-clock-url", clock_url, "-k", "not capacity and not announces",
                "--load-seed", str(seed)]
        env = {**os.environ, "PYTEST_INFERENCE_OWN_PIDS": str(os.getpid()),
               "PYTEST_INFERENCE_PSI_PATH": str(tmp_path / "psi"), "PYTEST_INFERENCE_STAT_PATH": str(tmp_path / "stat")}
        env.pop("PYTEST_INFERENCE_CLOCK_SKEW_S", None)
        if skew:
            env["PYTEST_INFERENCE_CLOCK_SKEW_S"] = str(skew)
        procs.append(subprocess.Popen(_cmd(d, args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                      env=env, cwd=tmp_path))
        dirs.append(d)
    outs = [p.communicate(timeout=120)[0] for p in procs]
    for p, d, out in zip(procs, dirs, outs):  # in-pod: 0 = results written (failed tests are results)
        assert p.returncode == 0 and (d / "summary.json").exists() and (d / "done").exists(), out[-3000:]
    return dirs, outs


@pytest.fixture(scope="module")
def fake():
    with FakeOpenAIServer(ttft_ms=20, token_ms=2, tokens=4) as srv:
        yield srv


@pytest.fixture(scope="module")
def runs(tmp_path_factory, fake, clock_url):
    """Six shard processes at once (one common start): three shards of one schedule; shard 0/2, shard
    1/2 with its clock 300 ms ahead, and shard 1/2 of another seed (another schedule)."""
    tmp = tmp_path_factory.mktemp("shards")
    specs = [(0, 3, 0, 0), (1, 3, 0, 0), (2, 3, 0, 0), (0, 2, 0, 0), (1, 2, 0, 0.3), (1, 2, 7, 0)]
    dirs, outs = run_shards(tmp, fake.base_url, clock_url, specs)
    return tmp, dirs, outs


@pytest.fixture(scope="module")
def three_shards(runs):
    tmp, dirs, outs = runs
    return tmp, dirs[:3], outs[:3]


@pytest.fixture(scope="module")
def skewed_and_reseeded(runs):
    tmp, dirs, _outs = runs
    return tmp, dirs[3:]


def _summary(d: Path) -> dict:
    return json.loads((d / "summary.json").read_text())


def _claims(summary) -> dict:
    return {(c["test"].split("::")[-1], c["metric"]): c for c in summary["claims"]}


def test_three_shards_offer_one_schedule_and_merge_pools_their_samples(three_shards, capsys):
    tmp, dirs, _ = three_shards
    blocks = [_summary(d)["run"]["shard"] for d in dirs]
    assert sorted(b["index"] for b in blocks) == [0, 1, 2]
    assert len({b["schedule_sha256"] for b in blocks}) == 1  # the same schedule, built three times
    assert sum(b["requests"] for b in blocks) == 120 and {b["schedule_requests"] for b in blocks} == {120}
    for b in blocks:  # each started on time and measured its clock against the reference
        assert b["first_send_lag_s"] is not None and abs(b["first_send_lag_s"]) < 0.5, b
        assert b["clock_offset_s"] is not None and abs(b["clock_offset_s"]) < 0.05, b
        assert b["clock_uncertainty_s"] < 0.05 and "Date" in b["clock_reference"], b
    # the shards' records interleave into the one schedule: indices 0..23 once each, offsets increasing
    recs = [r for d in dirs for f in (d / "records").glob("load-*.jsonl") for r in read_records(f)]
    assert sorted(r["index"] for r in recs) == list(range(120))

    out = tmp / "merged"
    rc = cli_main(["merge", *map(str, dirs), "--out", str(out)])
    printed = capsys.readouterr().out
    assert rc in (0, 1), printed
    assert "merged 3 shards" in printed and "bound 50 ms" in printed and "load.ttft_p99_ms" in printed
    merged = _summary(out)
    assert merged["schema"] == 1 and merged["merge"]["problem"] is None, merged["merge"]
    assert merged["merge"]["clock_spread_ms"] < 50
    pooled = read_records(out / "records" / "load-40rps.jsonl")
    assert [r["index"] for r in pooled] == list(range(120)) and {r["shard"] for r in pooled} == {0, 1, 2}
    m, shard_claims = _claims(merged), [_claims(_summary(d)) for d in dirs]
    for key in (("test_latency_p99[40rps-ttft]", "load.ttft_p99_ms"), ("test_latency_p99[40rps-e2e]", "load.e2e_p99_ms"),
                ("test_slo_attainment[40rps]", "load.slo_attainment")):
        c = m[key]
        # pooled: the sum of the shards' (every request of the schedule completed on the fake server)
        assert c["samples"] == sum(s[key]["samples"] for s in shard_claims) == 120, c
    # merged percentiles are percentiles of the pooled samples: the ground truth from the pooled records
    ttft = [r["ttft_ms"] for r in pooled if r["ok"]]
    assert m[("test_latency_p99[40rps-ttft]", "load.ttft_p99_ms")]["measured"] == pytest.approx(stats.compute("p99", ttft))
    e2e = [r["e2e_ms"] for r in pooled if r["ok"]]
    assert m[("test_latency_p99[40rps-e2e]", "load.e2e_p99_ms")]["measured"] == pytest.approx(stats.compute("p99", e2e))
    att = m[("test_slo_attainment[40rps]", "load.slo_attainment")]
    assert att["measured"] == pytest.approx(sum(1 for r in pooled if r["met"]) / 120)
    # a rate is summed over the common window, never a pooled "value"
    tok = m[("test_output_tokens_per_second[40rps]", "load.output_tok_s")]
    assert tok["details"]["merge"]["rule"].startswith("sum over the common window"), tok
    assert tok["measured"] == pytest.approx(sum(r["output_tokens"] for r in pooled if r["ok"])
                                            / tok["details"]["merge"]["window_s"], rel=1e-6)


def test_a_planted_clock_skew_makes_the_merged_latency_claims_inconclusive(skewed_and_reseeded, capsys):
    tmp_path, all_dirs = skewed_and_reseeded
    dirs = all_dirs[:2]
    blocks = [_summary(d)["run"]["shard"] for d in dirs]
    # shard 1's clock runs 300 ms ahead: it measured that against the reference, and started 300 ms early
    assert blocks[1]["clock_offset_s"] == pytest.approx(-0.3, abs=0.03) and blocks[1]["clock_skew_planted_s"] == 0.3
    assert blocks[0]["clock_offset_s"] == pytest.approx(0.0, abs=0.03)
    rc = cli_main(["merge", *map(str, dirs), "--out", str(tmp_path / "merged-skewed")])
    printed = capsys.readouterr().out
    assert rc == 1 and "clock offsets differ by up to" in printed, printed
    merged = _summary(tmp_path / "merged-skewed")
    assert merged["merge"]["clock_spread_ms"] == pytest.approx(300, abs=30)
    for c in merged["claims"]:
        if c["unit"] == "ms" or c["metric"] == "load.slo_attainment":
            assert c["verdict"] in ("inconclusive", "measured"), c
            if c["op"] is not None:
                assert "did not offer one schedule" in c["reason"] or c["reason"].startswith("shard "), c


def test_shards_of_different_schedules_or_a_missing_shard_are_one_line(three_shards, skewed_and_reseeded, tmp_path,
                                                                      capsys):
    _tmp, dirs, _ = three_shards
    # a missing shard
    assert cli_main(["merge", str(dirs[0]), str(dirs[2]), "--out", str(tmp_path / "m1")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "pytest-inference merge: missing shard 1 of 3: merging needs every shard of the schedule"
    # the same shard twice
    assert cli_main(["merge", str(dirs[0]), str(dirs[0]), str(dirs[1]), "--out", str(tmp_path / "m2")]) == 2
    assert "given twice" in capsys.readouterr().err
    # a malformed summary
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "summary.json").write_text("{not json")
    assert cli_main(["merge", str(dirs[0]), str(bad), "--out", str(tmp_path / "m3")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "malformed shard: " in err and "summary.json is not JSON" in err
    # shards of another schedule (shard 1/2 ran with another seed): one line, exit 2 (the real CLI)
    _skewed_tmp, other = skewed_and_reseeded
    proc = subprocess.run([sys.executable, "-m", "pytest_inference.cli", "merge", str(other[0]), str(other[2]),
                           "--out", str(tmp_path / "m4")], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2 and proc.stdout == "", proc
    assert proc.stderr.startswith("pytest-inference merge: shards of different schedules: schedule_sha256")
    assert proc.stderr.count("\n") == 1


def test_bad_shard_options_are_one_line(tmp_path, fake):
    target = tmp_path / "t.toml"
    target.write_text(TARGET)
    base = [sys.executable, "-m", "pytest", str(ROOT / "suites" / "load"), "-p", "no:cacheprovider", "--rootdir",
            str(ROOT), "--endpoint", fake.base_url, "--target", str(target)]
    soon = f"{time.time() + 30:.0f}"
    cases = [
        (["--load-shard", "3/2", "--load-start-at", soon], "the index must be 0 .. 1"),
        (["--load-shard=-1/4", "--load-start-at", soon], "the index must be 0 .. 3"),
        (["--load-shard", "x", "--load-start-at", soon], "give INDEX/COUNT"),
        (["--load-shard", "0/2"], "needs --load-start-at"),
        (["--load-shard", "0/2", "--load-start-at", f"{time.time() - 60:.0f}"], "in the past"),
        (["--load-shard", "0/2", "--load-start-at", "2026-12-02T13:00:00"], "give the time zone"),
        (["--load-shard", "0/2", "--load-start-at", soon, "--load-rate", "2,4"], "give one --load-rate"),
    ]
    for extra, said in cases:
        proc = subprocess.run(base + extra, capture_output=True, text=True, cwd=tmp_path, timeout=60)
        err = [line for line in (proc.stdout + proc.stderr).splitlines() if said in line]
        assert proc.returncode == 4 and err, (extra, proc.stdout[-1500:], proc.stderr[-1500:])
        assert "Traceback" not in proc.stdout + proc.stderr, extra
