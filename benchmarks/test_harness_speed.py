"""Micro-benchmarks of the harness's own pure hot paths, with pytest-benchmark.

These are the parts that run while (or right after) a measurement: the SSE parser sits on the timed
path of every streamed token, the judge runs once per claim, the parsers once per probe. They are
timed here, not asserted in the test suite (a noisy machine's wall clock is no test), and compared
run against run the pytest-benchmark way:

    python3 -m pytest benchmarks/test_harness_speed.py --benchmark-autosave          # store a run
    python3 -m pytest benchmarks/test_harness_speed.py --benchmark-compare            # against the last one
    python3 -m pytest benchmarks/test_harness_speed.py --benchmark-compare --benchmark-compare-fail=median:25%

Runs are stored under .benchmarks/<machine>/ (ignored by git). ``tests/bench`` runs this file once with
``--benchmark-disable`` so the benchmarks keep working.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_inference import claims, stats
from pytest_inference.engine import prometheus
from pytest_inference.engine.sse import SSEParser
from pytest_inference.node import parse as node_parse
from pytest_inference.vllm import startup_log as vllm_log

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests"


def _stream(tokens: int = 64) -> bytes:
    """A vLLM-shaped stream: role chunk, one event per token, usage chunk, [DONE]."""
    def event(obj: dict) -> bytes:
        return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"

    base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "tiny-llama"}
    out = [event({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})]
    for i in range(tokens):
        out.append(event({**base, "choices": [{"index": 0, "delta": {"content": f" tok{i}"}, "finish_reason": None}]}))
    out.append(event({**base, "choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": tokens,
                                                           "total_tokens": 12 + tokens}}))
    out.append(b"data: [DONE]\n\n")
    return b"".join(out)


STREAM = _stream()


def _parse_in_reads(data: bytes, size: int) -> int:
    p = SSEParser()
    n = 0
    for i in range(0, len(data), size):
        n += len(p.feed(data[i:i + size]))
    return n


@pytest.mark.parametrize("read_size", [64, 1500, 65536], ids=["64B-reads", "1500B-reads", "one-read"])
def test_sse_parser_64_token_stream(benchmark, read_size):
    """SSE events of one 64-token stream, fed as the network delivers it (tiny, MTU-sized, whole)."""
    events = benchmark(_parse_in_reads, STREAM, read_size)
    assert events == 64 + 3  # role, 64 tokens, usage, [DONE]


def test_judge_median_of_20(benchmark):
    """One quantile claim judged with the binomial rule (what every warm claim costs)."""
    req = claims.Requirement(metric="warm.ttft_median_ms", op="<=", threshold=25.0, unit="ms", stat="median")
    xs = [6.0 + 0.1 * i for i in range(20)]
    c = benchmark(claims.judge, "warm.ttft_median_ms", xs, requirement=req, confidence=0.99)
    assert c.verdict == claims.PASS


def test_judge_p99_of_1000(benchmark):
    req = claims.Requirement(metric="load.ttft_p99_ms", op="<=", threshold=400.0, unit="ms", stat="p99")
    xs = [100.0 + (i % 97) for i in range(1000)]
    c = benchmark(claims.judge, "load.ttft_p99_ms", xs, requirement=req, confidence=0.99)
    assert c.verdict == claims.PASS


def test_min_samples_for_p99(benchmark):
    n = benchmark(stats.min_samples_for_quantile, 0.99, 0.99)
    assert n == 459  # MLPerf LoadGen's early-stopping figure for a p99 with no miss


def test_prometheus_ttft_histogram_mean(benchmark):
    before = (DATA / "engine" / "data" / "vllm_metrics_before.txt").read_text()
    after = (DATA / "engine" / "data" / "vllm_metrics_after.txt").read_text()
    mean = benchmark(prometheus.server_mean_ttft_ms, before, after)
    assert mean is not None and mean > 0


def test_parse_mountinfo(benchmark):
    text = (DATA / "node" / "data" / "mountinfo_nfs.txt").read_text()
    mounts = benchmark(node_parse.parse_mountinfo, text)
    assert any(m.fstype.startswith("nfs") for m in mounts)


def test_parse_ss(benchmark):
    text = (DATA / "node" / "data" / "ss_nfs_recorded_lab.txt").read_text()
    conns = benchmark(node_parse.parse_ss, text)
    assert conns and all(c.mss for c in conns)


def test_parse_vllm_startup_log(benchmark):
    log = (DATA / "coldstart" / "data" / "cpu_0.32_server.log").read_text()
    parsed = benchmark(vllm_log.parse_log, log)
    assert parsed.phases
