"""What the server says it can hold, beside what it held: recorded vLLM pages and logs, the fake
server over HTTP under a real load with a real :class:`MetricsWatch`, and hostile servers.

Ground truth for the HTTP tests is the fake server's own: ``--kv-cache-tokens N`` makes its
``vllm:kv_cache_usage_perc`` the tokens its running streams hold / N (prompt words + tokens
written so far), so no sample can exceed ``concurrency x (prompt + max_tokens) / N``; every
stream it counts as a preemption (``--preempt-above``) is marked ``"preempted"`` in ``/_truth``.
"""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path

import pytest

from pytest_inference.engine import EndpointUnreachable, RequestSpec, StreamClient, prometheus
from pytest_inference.engine.errors import EndpointHTTPError
from pytest_inference.probes.server_capacity import (
    FROM_LOG,
    FROM_METRICS,
    GIB,
    MIN_INTERVAL_S,
    Announced,
    MetricsWatch,
    _samples,
    announced,
    memory_note,
    metrics_getter,
)
from pytest_inference.testing.fake_openai import FakeOpenAIServer
from pytest_inference.vllm.startup_log import parse_log

ROOT = Path(__file__).resolve().parents[1]
IDLE = (ROOT / "engine" / "data" / "vllm_0.32_cpu_metrics_idle.txt").read_text(encoding="utf-8")
BUSY = (ROOT / "server" / "data" / "drain_vllm_0.32_cpu_metrics_busy.txt").read_text(encoding="utf-8")
COLD = ROOT / "coldstart" / "data"


def _mi300x_facts() -> dict:
    pairs = []
    for raw in (COLD / "mi300x_gpt-oss-120b_0.33.tsv").read_text(encoding="utf-8").splitlines():
        if raw.startswith("#"):
            continue
        t, _, line = raw.partition("\t")
        pairs.append((float(t), line))
    return parse_log(pairs).facts


class Scripted:
    """A ``get_text`` whose answers we choose: ``before`` for the scrape in ``start()``, the
    ``during`` answers in turn on the watch's thread (the last one repeated), ``after`` for the
    scrape in ``stop()``. An answer that is an exception is raised."""

    def __init__(self, before, during=(), after=None):
        self.before, self.during, self.after = before, list(during), after if after is not None else before
        self.main_calls = 0
        self.calls = 0  # on the watch's thread

    def __call__(self) -> str:
        if threading.current_thread() is threading.main_thread():
            a = self.before if self.main_calls == 0 else self.after
            self.main_calls += 1
        else:
            a = self.during[min(self.calls, len(self.during) - 1)] if self.during else self.before
            self.calls += 1
        if isinstance(a, BaseException):
            raise a
        return a


def _page(*, preemptions=None, kv=None, running=None, waiting=None, info=None, kv_name="vllm:kv_cache_usage_perc"):
    lab = 'engine="0",model_name="m"'
    out = ["# HELP python_info x", "# TYPE python_info gauge", 'python_info{version="3.11"} 1.0']
    if info is not None:
        out.append("vllm:cache_config_info{" + ",".join(f'{k}="{v}"' for k, v in info.items()) + "} 1.0")
    if kv is not None:
        out += [f"# TYPE {kv_name} gauge", f"{kv_name}{{{lab}}} {kv}"]
    if preemptions is not None:
        out += ["# TYPE vllm:num_preemptions_total counter", f"vllm:num_preemptions_total{{{lab}}} {preemptions}"]
    if running is not None:
        out.append(f"vllm:num_requests_running{{{lab}}} {running}")
    if waiting is not None:
        out.append(f"vllm:num_requests_waiting{{{lab}}} {waiting}")
    return "\n".join(out) + "\n"


def _watch_over(get_text, n_during: int, interval_s: float = MIN_INTERVAL_S, **kw) -> dict:
    """start(), wait until the thread scraped ``n_during`` times, stop()."""
    w = MetricsWatch(get_text, interval_s, **kw)
    w.start()
    deadline = time.monotonic() + 30
    while getattr(get_text, "calls", 0) < n_during and time.monotonic() < deadline:
        time.sleep(0.02)
    return w.stop()


# --------------------------------------------------------------------------- recorded vLLM 0.32 pages and logs


def test_announced_from_the_recorded_vllm_0_32_page():
    a = announced(IDLE)
    assert (a.kv_cache_tokens, a.max_concurrency, a.kv_cache_bytes, a.block_size) == (524288, 1024.0, 1073741824.0,
                                                                                      128)
    assert type(a.kv_cache_tokens) is int and type(a.block_size) is int
    assert a.max_concurrency_tokens is None and a.weights_bytes is None  # /metrics states neither: not made up
    assert a.source == {"kv_cache_tokens": FROM_METRICS, "max_concurrency": FROM_METRICS,
                        "kv_cache_bytes": FROM_METRICS, "block_size": FROM_METRICS}
    assert a.problem is None
    # the page's own blocks agree with its token count: 4096 blocks of 128 tokens
    assert a.kv_cache_tokens == 4096 * a.block_size


def test_recorded_page_and_recorded_startup_log_agree():
    facts = parse_log((COLD / "cpu_0.32_server.log").read_bytes()).facts
    a = announced(IDLE, facts)
    assert a.problem is None  # 524,288 tokens, 1024x, 1.0 GiB on both
    assert a.max_concurrency_tokens == 512 and a.source["max_concurrency_tokens"] == FROM_LOG
    assert a.kv_cache_bytes == 1.0 * GIB and a.source["kv_cache_bytes"] == FROM_METRICS
    # the log alone says the same
    b = announced(None, facts)
    assert (b.kv_cache_tokens, b.max_concurrency, b.kv_cache_bytes) == (a.kv_cache_tokens, a.max_concurrency,
                                                                         a.kv_cache_bytes)
    assert set(b.source.values()) == {FROM_LOG}


def test_mi300x_log_memory_beside_the_seed():
    """The composed MI300X gpt-oss-120b start (0.33 wording, the seed's figures): 65.97 GiB of
    weights, 103.55 GiB reserved as KV cache for 1,508,320 tokens, 11.51 requests of 131,072."""
    a = announced(None, _mi300x_facts())
    assert a.kv_cache_tokens == 1508320 and a.max_concurrency == 11.51 and a.max_concurrency_tokens == 131072
    assert a.weights_bytes == 65.97 * GIB and a.kv_cache_bytes == 103.55 * GIB
    assert a.reserved_bytes == pytest.approx((65.97 + 103.55) * GIB)
    assert memory_note(a) == "70.8 GB weights + 111.2 GB KV cache reserved = 182.0 GB"
    assert a.to_dict()["memory_note"] == memory_note(a)
    # the concurrency vLLM states is its token budget over the request length
    assert a.kv_cache_tokens / a.max_concurrency_tokens == pytest.approx(a.max_concurrency, abs=0.005)
    # seed: most of what is in use beyond the weights is KV cache reserved up front
    assert a.kv_cache_bytes > a.weights_bytes


def test_recorded_busy_page_during_a_scripted_run():
    """Before: the idle page; during: the busy page vLLM 0.32 served with 32 streams in flight;
    after: idle again. The figures are the busy page's own."""
    busy = prometheus.parse(BUSY)
    kv_busy = next(s.value for s in busy if s.name == "vllm:kv_cache_usage_perc")
    d = _watch_over(Scripted(IDLE, [BUSY], IDLE), 2)
    assert d["kv_usage_max"] == kv_busy == 0.007814407814407787 and d["kv_usage_mean"] == kv_busy
    assert d["running_max"] == 32.0 and d["waiting_max"] == 0.0
    assert d["preemptions"] == 0.0  # a counter read before and after: a measured zero, not None
    assert d["problem"] is None and d["finding"] is None and d["missing"] == []
    assert d["scrapes"] == d["scrapes_during"] + 2 and d["scrapes_during"] >= 2
    assert d["announced"]["kv_cache_tokens"] == 524288 and d["announced"]["max_concurrency"] == 1024.0


def test_recorded_page_over_http_costs_the_measuring_process_little():
    """The busy vLLM 0.32 page (52 kB, 611 lines) served over loopback, scraped every 0.2 s: what
    the watch's thread spends per scrape (HTTP + selecting + parsing) is its own CPU time."""
    import http.server

    body = BUSY.encode()

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            self.send_response(200 if self.path == "/metrics" else 404)
            self.send_header("content-type", "text/plain; version=0.0.4")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        w = MetricsWatch(metrics_getter(f"http://127.0.0.1:{srv.server_address[1]}"), MIN_INTERVAL_S)
        w.start()
        time.sleep(6 * MIN_INTERVAL_S)
        d = w.stop()
    finally:
        srv.shutdown()
        srv.server_close()
    assert d["problem"] is None and d["running_max"] == 32.0 and d["announced"]["kv_cache_tokens"] == 524288
    assert d["scrapes_during"] >= 1
    # the watch took under a tenth of one core while it ran (measured here: ~1.5 ms per scrape)
    assert 0 < d["scrape_cpu_s"] < 0.1 * d["scrapes_during"] * MIN_INTERVAL_S


def test_only_the_watched_lines_are_parsed_and_that_is_cheaper():
    full = {(s.name, tuple(sorted(s.labels.items())), s.value) for s in prometheus.parse(BUSY)}
    mine = {(s.name, tuple(sorted(s.labels.items())), s.value) for s in _samples(BUSY)}
    assert mine and mine <= full  # the same samples the whole-page parse gives
    assert {n for n, _, _ in mine} == {"vllm:cache_config_info", "vllm:kv_cache_usage_perc",
                                       "vllm:num_preemptions_total", "vllm:num_requests_running",
                                       "vllm:num_requests_waiting"}

    def best(f) -> float:
        out = math.inf
        for _ in range(5):
            t = time.perf_counter()
            f(BUSY)
            out = min(out, time.perf_counter() - t)
        return out

    # relation, not a figure: the scrape's parse costs the measuring process a fraction of a whole page
    assert best(_samples) < best(prometheus.parse) / 3


def test_older_vllm_names_and_blocks_only_info():
    """Older vLLM: ``gpu_cache_usage_perc`` and a cache_config_info with only blocks and block size
    (synthetic page in that shape: tokens = blocks x block size)."""
    info = {"block_size": "16", "num_gpu_blocks": "27932", "cache_dtype": "auto", "num_cpu_blocks": "2048"}
    a = announced(_page(info=info))
    assert a.kv_cache_tokens == 27932 * 16 and a.block_size == 16 and a.source["kv_cache_tokens"] == FROM_METRICS
    assert a.max_concurrency is None and a.kv_cache_bytes is None
    old = "vllm:gpu_cache_usage_perc"
    d = _watch_over(Scripted(_page(info=info, kv=0.0, preemptions=3, kv_name=old),
                             [_page(info=info, kv=0.42, preemptions=4, kv_name=old)],
                             _page(info=info, kv=0.0, preemptions=9, kv_name=old)), 1)
    assert d["kv_usage_max"] == 0.42 and d["preemptions"] == 6.0 and d["problem"] is None


def test_data_parallel_engines_add_up():
    two = _page(info={"engine": "0", "kv_cache_size_tokens": "1000", "kv_cache_max_concurrency": "2.5",
                      "block_size": "16"}) + \
        'vllm:cache_config_info{engine="1",kv_cache_size_tokens="3000",kv_cache_max_concurrency="7.5",' \
        'block_size="16"} 1.0\n'
    a = announced(two)
    assert a.kv_cache_tokens == 4000 and a.max_concurrency == 10.0
    # an engine that does not state it: no partial sum
    one_silent = two.replace('kv_cache_size_tokens="3000",', "")
    assert announced(one_silent).kv_cache_tokens is None


# --------------------------------------------------------------------------- the fake server over HTTP, under load


def _run_load(srv, n: int, concurrency: int, max_tokens: int, watch: MetricsWatch):
    spec = RequestSpec(model="fake-model", prompt="two words", max_tokens=max_tokens)
    with StreamClient(srv.base_url, timeout_s=30, pause_gc=False) as client:
        watch.start()
        try:
            run = client.run([spec] * n, concurrency=concurrency, warmup=2)
        finally:
            during = watch.stop()
    return run, during


def test_fake_over_http_usage_and_queue_bounded_by_ground_truth():
    n_tokens, kv_tokens, k, conc = 12, 400, 3, 6
    with FakeOpenAIServer(kv_cache_tokens=kv_tokens, capacity=k, ttft_ms=30, token_ms=15, max_model_len=100,
                          block_size=16) as srv:
        watch = MetricsWatch(metrics_getter(srv.url), MIN_INTERVAL_S)
        run, d = _run_load(srv, 36, conc, n_tokens, watch)
        truth = srv.truth()
    assert all(r.ok for r in run.results)
    a = d["announced"]
    assert (a["kv_cache_tokens"], a["max_concurrency"], a["block_size"]) == (kv_tokens, kv_tokens / 100, 16)
    assert a["source"]["kv_cache_tokens"] == FROM_METRICS and a["kv_cache_bytes"] is None
    # the load lasted several intervals: the thread scraped during it, and never more often than asked
    assert d["duration_s"] >= 3 * MIN_INTERVAL_S
    assert 1 <= d["scrapes_during"] <= d["duration_s"] / MIN_INTERVAL_S + 1
    assert d["problem"] is None and d["missing"] == []
    # ground truth: at most K streams hold tokens, each at most 2 prompt words + max_tokens
    bound = k * (2 + n_tokens) / kv_tokens
    assert 0 < d["kv_usage_max"] <= bound + 1e-12
    assert 0 < d["kv_usage_mean"] <= d["kv_usage_max"]
    assert 1 <= d["running_max"] <= k and d["waiting_max"] <= conc - k
    # no --preempt-above: the counter is there and stayed at zero
    assert d["preemptions"] == 0.0 and not any(t.get("preempted") for t in truth.values())
    assert d["finding"] is None
    assert watch._thread is not None and watch._thread.daemon and not watch._thread.is_alive()


def test_fake_preemptions_counted_exactly_and_huge_announced_cache_is_a_finding():
    """Hostile: /metrics announces a KV cache for a billion tokens (488,281 requests of 2,048)
    while its preemption counter rises with 4 streams running."""
    with FakeOpenAIServer(kv_cache_tokens=10 ** 9, preempt_above=1, ttft_ms=20, token_ms=10,
                          kv_cache_bytes=2 * 10 ** 12) as srv:
        watch = MetricsWatch(metrics_getter(srv.url), 0.25)
        run, d = _run_load(srv, 24, 4, 20, watch)
        truth = srv.truth()
    assert all(r.ok for r in run.results)
    preempted = sum(1 for t in truth.values() if t.get("preempted"))
    assert preempted > 0
    assert d["preemptions"] == preempted  # the counter's rise over the run is the server's own count
    assert d["announced"]["max_concurrency"] == 10 ** 9 / 2048 and d["announced"]["kv_cache_bytes"] == 2e12
    assert d["announced"]["memory_note"] == "2000.0 GB KV cache reserved (weights not stated)"
    assert d["running_max"] is not None and d["running_max"] <= 4
    assert d["finding"] is not None and d["finding"].startswith(f"preempted {preempted} times with at most")
    assert "488281" in d["finding"] and "\n" not in d["finding"]


def test_fake_without_kv_metrics_gives_none_not_zeros():
    """The default fake exposes the request gauges but no KV cache or preemption figures."""
    with FakeOpenAIServer(ttft_ms=30, token_ms=20) as srv:
        watch = MetricsWatch(metrics_getter(srv.url), MIN_INTERVAL_S)
        run, d = _run_load(srv, 24, 4, 12, watch)
    assert d["kv_usage_max"] is None and d["kv_usage_mean"] is None and d["preemptions"] is None
    assert d["missing"] == ["vllm:cache_config_info", "vllm:kv_cache_usage_perc", "vllm:num_preemptions_total"]
    assert d["problem"] is None  # nothing went wrong: the server does not say it
    assert d["scrapes_during"] >= 1 and d["running_max"] is not None and 1 <= d["running_max"] <= 4
    assert d["announced"]["kv_cache_tokens"] is None and d["announced"]["source"] == {}
    assert d["announced"]["memory_note"] is None


def test_fake_without_metrics_404_is_a_problem_and_no_figures():
    with FakeOpenAIServer(metrics="none", ttft_ms=10, token_ms=5) as srv:
        get = metrics_getter(srv.url)
        with pytest.raises(EndpointHTTPError):
            get()
        watch = MetricsWatch(get, MIN_INTERVAL_S)
        run, d = _run_load(srv, 8, 2, 4, watch)
    assert all(r.ok for r in run.results)  # the load itself is untouched
    assert d["problem"].startswith("the endpoint exposes no /metrics (HTTP 404")
    assert "\n" not in d["problem"]
    for k in ("kv_usage_max", "kv_usage_mean", "preemptions", "running_max", "waiting_max"):
        assert d[k] is None, k
    assert d["scrapes"] == 0 and watch._thread is None  # one try, then no thread at all


def test_fake_html_metrics_page_is_a_problem():
    with FakeOpenAIServer(metrics="html") as srv:
        d = _watch_over(metrics_getter(srv.url), 0)
    assert d["problem"] == "GET /metrics answered an HTML page, not Prometheus text"
    assert d["kv_usage_max"] is None and d["preemptions"] is None and d["scrapes"] == 0


# --------------------------------------------------------------------------- hostile pages and callers


def test_counter_that_goes_back_is_a_problem_not_a_count():
    get = Scripted(_page(preemptions=5, kv=0.1), [_page(preemptions=7, kv=0.5), _page(preemptions=0, kv=0.2)],
                   _page(preemptions=1, kv=0.0))
    d = _watch_over(get, 2)
    assert d["preemptions"] is None
    assert "vllm:num_preemptions_total went back from 7 to 0" in d["problem"] and "restart" in d["problem"]
    assert d["kv_usage_max"] == 0.5  # the gauges are still what was read


def test_failed_scrapes_are_counted_and_the_rest_still_measures():
    get = Scripted(_page(preemptions=1, kv=0.0, running=0),
                   [EndpointUnreachable("cannot connect to http://127.0.0.1:9/v1: refused"),
                    _page(preemptions=2, kv=0.3, running=5)], _page(preemptions=4, kv=0.0, running=0))
    d = _watch_over(get, 2)
    assert d["scrapes_failed"] == 1 and d["preemptions"] == 3.0 and d["kv_usage_max"] == 0.3
    assert d["problem"].startswith("1 of ") and "refused" in d["problem"]


def test_callers_get_text_raising_anything_never_kills_the_watch():
    get = Scripted(_page(kv=0.0), [OSError("boom\nsecond line"), _page(kv=0.25)], _page(kv=0.0))
    d = _watch_over(get, 2)
    assert "OSError: boom second line" in d["problem"] and "\n" not in d["problem"]
    assert d["kv_usage_max"] == 0.25


@pytest.mark.parametrize("value", ["37.0", "-0.5", "NaN", "+Inf"])
def test_kv_usage_out_of_range_is_ignored_with_a_problem(value):
    d = _watch_over(Scripted(_page(kv=0.0), [_page(kv=value)], _page(kv=0.0)), 1)
    assert d["kv_usage_max"] is None and d["kv_usage_mean"] is None
    assert "vllm:kv_cache_usage_perc is" in d["problem"] and "not a fraction 0..1" in d["problem"]


def test_preemption_counter_not_a_number_is_ignored():
    d = _watch_over(Scripted(_page(preemptions=0), [_page(preemptions="NaN")], _page(preemptions=3)), 1)
    assert d["preemptions"] == 3.0 and "vllm:num_preemptions_total is nan" in d["problem"]


def test_prometheus_page_of_another_server_is_a_problem():
    d = _watch_over(Scripted(_page()), 0)
    assert "not a vLLM server" in d["problem"] and d["scrapes"] == 0


def test_run_shorter_than_the_interval_says_so():
    w = MetricsWatch(Scripted(_page(kv=0.0, preemptions=0), after=_page(kv=0.0, preemptions=2)), 5.0)
    w.start()
    d = w.stop()
    assert d["scrapes"] == 2 and d["scrapes_during"] == 0 and d["preemptions"] == 2.0
    assert d["kv_usage_max"] is None and "no scrape fell inside the run" in d["problem"]


@pytest.mark.parametrize("labels", [
    {"kv_cache_size_tokens": "-5", "kv_cache_max_concurrency": "inf", "kv_cache_memory_bytes": "None"},
    {"kv_cache_size_tokens": "abc", "kv_cache_max_concurrency": "NaN", "block_size": "0"},
    {"kv_cache_size_tokens": "1e400", "num_gpu_blocks": "12.5", "block_size": "16"},
])
def test_hostile_info_labels_give_none(labels):
    a = announced(_page(info=labels))
    assert (a.kv_cache_tokens, a.max_concurrency, a.kv_cache_bytes) == (None, None, None)
    assert a.source.get("kv_cache_tokens") is None


@pytest.mark.parametrize("text,why", [
    ("", "an empty body"),
    ("<!DOCTYPE html><html><body>Sign in</body></html>", "an HTML page"),
    ('{"detail": "Not Found"}', "JSON"),
    ('vllm:kv_cache_usage_perc{engine="0"} zero\n', "cannot parse"),
])
def test_unreadable_pages_give_one_line_and_no_figures(text, why):
    a = announced(text, {"kv_cache_tokens": 10})
    assert why in a.problem and "\n" not in a.problem
    assert a.kv_cache_tokens == 10 and a.source == {"kv_cache_tokens": FROM_LOG}  # what the log said stays


def test_log_and_metrics_that_disagree_are_reported():
    a = announced(IDLE, {"kv_cache_tokens": 600000, "max_concurrency": 1024.0, "kv_cache_memory_gib": 1.0})
    assert a.kv_cache_tokens == 524288 and a.source["kv_cache_tokens"] == FROM_METRICS
    assert a.problem == "kv_cache_tokens: /metrics says 524288, the startup log 600000"


@pytest.mark.parametrize("facts", [{"kv_cache_tokens": True, "weights_memory_gib": "x"},
                                   {"kv_cache_tokens": -1, "max_concurrency": float("nan")}, {}, None])
def test_hostile_log_facts_give_none(facts):
    a = announced(None, facts)
    assert a == Announced() and memory_note(a) is None and a.to_dict()["reserved_bytes"] is None


def test_memory_note_with_one_figure():
    assert memory_note(Announced(weights_bytes=68e9)) == "68.0 GB weights (KV cache not stated)"
    assert memory_note(Announced(weights_bytes=68e9, kv_cache_bytes=105e9)) == (
        "68.0 GB weights + 105.0 GB KV cache reserved = 173.0 GB")
    assert memory_note(None) is None


@pytest.mark.parametrize("interval", [0.0, 0.1, -1, float("nan"), float("inf"), "fast", None])
def test_bad_interval_is_one_line(interval):
    with pytest.raises(ValueError, match=r"^interval_s must be a number >= 0.2 s") as e:
        MetricsWatch(Scripted(_page()), interval)
    assert "\n" not in str(e.value)


def test_misuse_is_one_line():
    with pytest.raises(ValueError, match="callable"):
        MetricsWatch("http://127.0.0.1:8000/metrics")  # type: ignore[arg-type]
    w = MetricsWatch(Scripted(_page(kv=0.0)))
    with pytest.raises(RuntimeError, match="before start"):
        w.stop()
    w.start()
    with pytest.raises(RuntimeError, match="already called"):
        w.start()
    w.stop()
    with pytest.raises(RuntimeError, match="already called"):
        w.stop()


def test_context_manager_and_a_hung_scrape_does_not_hold_stop():
    release = threading.Event()
    calls = []

    def get_text() -> str:
        calls.append(1)
        if len(calls) == 2:  # the thread's first scrape hangs
            release.wait(30)
        return _page(kv=0.9, preemptions=len(calls))

    with MetricsWatch(get_text, MIN_INTERVAL_S, stop_timeout_s=0.3) as w:
        while len(calls) < 2:
            time.sleep(0.01)
    t = time.monotonic()
    release.set()  # the hung scrape answers now, after stop(): it must not count
    w._thread.join(5)
    assert not w._thread.is_alive() and time.monotonic() - t < 5
    d = w.during.to_dict()
    assert d["scrapes"] == 2 and d["scrapes_during"] == 0  # before and after the run, nothing from the hang
    assert d["kv_usage_max"] is None and d["preemptions"] == 2.0  # the counter: 1 before, 3 after
    assert "a scrape was still hanging when the run ended" in d["problem"]


def test_preemptions_need_the_counter_before_and_after_the_run():
    """A count over part of the run would pass for a count over all of it: None instead."""
    down = EndpointUnreachable("cannot connect to http://127.0.0.1:9/v1: refused")
    d = _watch_over(Scripted(_page(preemptions=0, kv=0.0), [_page(preemptions=4, kv=0.5)], down), 1)
    assert d["preemptions"] is None and d["kv_usage_max"] == 0.5
    assert "was not read both before and after the run" in d["problem"] and "1 of " in d["problem"]
