"""Prometheus text parsing on vLLM-shaped /metrics pages, and the server-side cross-check."""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import pytest

from pytest_inference.engine import RequestSpec, StreamClient
from pytest_inference.engine import prometheus as prom

DATA = Path(__file__).parent / "data"
BEFORE = (DATA / "vllm_metrics_before.txt").read_text()
AFTER = (DATA / "vllm_metrics_after.txt").read_text()


def test_parse_fixture_samples_and_labels():
    samples = prom.parse(AFTER)
    names = {s.name for s in samples}
    assert "vllm:time_to_first_token_seconds_bucket" in names and "python_info" in names
    info = next(s for s in samples if s.name == "vllm:cache_config_info")
    assert info.labels["num_gpu_blocks"] == "106312" and info.value == 1.0
    inf_buckets = [s for s in samples if s.name == "vllm:time_to_first_token_seconds_bucket"
                   and s.labels["le"] == "+Inf"]
    assert len(inf_buckets) == 2 and sum(s.value for s in inf_buckets) == 80


def test_histogram_sum_count_sums_label_sets():
    s, n = prom.histogram_sum_count(AFTER, "vllm:time_to_first_token_seconds")
    assert n == 80 and 25 < s < 27
    s0, n0 = prom.histogram_sum_count(AFTER, "vllm:time_to_first_token_seconds", where={"engine": "0"})
    assert n0 == 40 and s0 < s
    assert prom.histogram_sum_count(AFTER, "vllm:no_such_metric") is None


def test_server_mean_ttft_and_tpot_over_a_run():
    assert prom.server_mean_ttft_ms(BEFORE, AFTER) == pytest.approx(322.583725, abs=1e-6)
    assert prom.server_reference_tpot_ms(BEFORE, AFTER) == pytest.approx(6.5)
    assert prom.server_mean_ttft_ms(AFTER, AFTER) is None  # nothing observed in between
    assert prom.server_mean_ttft_ms(AFTER, BEFORE) is None  # counters went back: restart


def test_gauges_and_counters():
    assert prom.value_sum(AFTER, "vllm:num_requests_running") == 1
    assert prom.value_sum(AFTER, "vllm:num_requests_waiting") == 2
    assert prom.value_sum(AFTER, "vllm:generation_tokens_total") == 12320
    assert prom.has_metric(AFTER, "vllm:inter_token_latency_seconds")
    assert not prom.has_metric(AFTER, "vllm:time_per_output_token_seconds")


def test_tpot_falls_back_to_older_metric_name():
    old_b = "vllm:time_per_output_token_seconds_sum 1.0\nvllm:time_per_output_token_seconds_count 100\n"
    old_a = "vllm:time_per_output_token_seconds_sum 3.0\nvllm:time_per_output_token_seconds_count 200\n"
    assert prom.server_reference_tpot_ms(old_b, old_a) == pytest.approx(20.0)


def test_parse_edge_cases():
    text = ('# comment\nm{a="x \\"q\\" \\\\ y",b="}{"} +Inf 1700000000000\n'
            'n NaN\no{} -Inf\np 1e-3\nq{le="0.5",} 7\n# EOF\n')
    got = {s.name: s for s in prom.parse(text)}
    assert got["m"].labels == {"a": 'x "q" \\ y', "b": "}{"} and got["m"].value == math.inf
    assert math.isnan(got["n"].value) and got["o"].value == -math.inf and got["p"].value == 0.001
    assert got["q"].labels == {"le": "0.5"}
    with pytest.raises(ValueError, match="line 1"):
        prom.parse("broken{a=1} 2\n")


def test_fake_server_histogram_agrees_with_client_and_truth(start_fake):
    s = start_fake(ttft_range="15:40", token_ms=2)
    with StreamClient(s.base_url) as c:
        c.run([RequestSpec(model="fake-model", max_tokens=6)], warmup=0)
        before = c.get_text("/metrics")
        s.reset()
        run = c.run([RequestSpec(model="fake-model", max_tokens=6)] * 12, concurrency=3, warmup=0)
        after = c.get_text("/metrics")
    truth = s.truth()
    server_ttft = prom.server_mean_ttft_ms(before, after)
    true_mean = statistics.mean(t["ttft_ms"] for t in truth.values())
    assert server_ttft == pytest.approx(true_mean, rel=1e-6)
    client_mean = statistics.mean(run.ttft_ms())
    # a healthy client reads a little above the server (unless this box starved one of them)
    starved = run.stalled(0.3) or [t for t in truth.values() if t["recv_stall_ms"] > 0.3
                                   or (t["write_stall_ms"] or 0) > 0.3]
    assert client_mean >= server_ttft
    assert client_mean - server_ttft < 2 or starved
    assert prom.server_reference_tpot_ms(before, after) == pytest.approx(2.0, abs=1.0)
    assert prom.value_sum(after, "vllm:num_requests_running") == 0


def test_recorded_real_vllm_page():
    """A page recorded from a real vLLM 0.32 CPU server (idle): the parser takes all of it,
    and the synthetic fixtures above follow its shape (label order, bucket bounds)."""
    real = (DATA / "vllm_0.32_cpu_metrics_idle.txt").read_text()
    samples = prom.parse(real)
    assert len(samples) > 300
    assert prom.histogram_sum_count(real, prom.TTFT_METRIC) == (0.0, 0.0)
    assert prom.value_sum(real, "vllm:num_requests_running") == 0
    assert prom.server_mean_ttft_ms(real, real) is None  # nothing observed: no figure, not 0
    assert prom.server_reference_tpot_ms(real, real) is None
    les = [s.labels["le"] for s in samples if s.name == prom.TTFT_METRIC + "_bucket"]
    synthetic = [s.labels["le"] for s in prom.parse(AFTER)
                 if s.name == prom.TTFT_METRIC + "_bucket" and s.labels["engine"] == "0"]
    assert les == synthetic
    for name in prom.TPOT_METRICS[:1] + prom.TPOT_METRICS[2:]:
        assert prom.has_metric(real, name)


@pytest.mark.parametrize("page, where", [
    ("a 1\n# TYPE x counterish\nx 1\n", "line 2: cannot parse '# TYPE x counterish': Invalid metric type: counterish"),
    ("ok 1\nok{a=\"1\",a=\"2\"} 3\n", "line 2: cannot parse 'ok{a=\"1\",a=\"2\"} 3'"),
    ("a 1 not-a-timestamp\n", "line 1: cannot parse 'a 1 not-a-timestamp'"),
    ("<!DOCTYPE html><html><title>Login</title></html>", "line 1: cannot parse '<!DOCTYPE html>"),
])
def test_a_rejected_page_is_one_line_naming_the_line(page, where):
    with pytest.raises(ValueError) as ei:
        prom.parse(page)
    assert str(ei.value).startswith(where) and "\n" not in str(ei.value)
    check = prom.cross_check(page, page)
    assert check.present and check.problem.startswith("GET /metrics answered ") and check.ttft_mean_ms is None


def test_the_text_parser_is_not_imported_with_the_engine():
    import subprocess
    import sys

    code = ("import sys, pytest_inference.engine as e; from pytest_inference.engine import prometheus; "
            "assert 'prometheus_client' not in sys.modules; prometheus.parse('a 1\\n'); "
            "assert 'prometheus_client' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
