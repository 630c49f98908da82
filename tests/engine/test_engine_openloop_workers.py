"""One open-loop schedule over several worker processes (engine/workers.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from pytest_inference.engine import EndpointUnreachable, RequestSpec, arrivals
from pytest_inference.engine.workers import run_open_loop_workers
from pytest_inference.testing.fake_openai import FakeOpenAIServer

pytestmark = pytest.mark.xdist_group("timing")


def test_two_workers_merge_every_request_once():
    n = 60
    offs = arrivals.poisson(60, n=n, seed=2)
    # each request asks for its own length: the merge must put every answer back at its index
    specs = [RequestSpec(model="fake-model", max_tokens=1 + i % 7, prompt=" ".join(["w"] * (1 + i % 5)))
             for i in range(n)]
    with FakeOpenAIServer(ttft_ms=10, token_ms=1) as s:
        run = run_open_loop_workers(s.base_url, specs, offs, workers=2, connections=4, warmup=1)
        truth = s.truth()
    assert run.workers == 2
    assert [r.index for r in run.results] == list(range(n))
    assert all(r.ok for r in run.results), [r.error for r in run.results if not r.ok]
    assert [r.output_tokens for r in run.results] == [1 + i % 7 for i in range(n)]
    assert [r.prompt_tokens for r in run.results] == [1 + i % 5 for i in range(n)]  # the fake counts words
    assert [r.worker for r in run.results] == [i % 2 for i in range(n)]
    assert len({r.response_id for r in run.results}) == n  # no request twice
    assert len(run.warmup_results) == 2
    # one common start: every scheduled time is start + offset, whichever process sent it
    assert [r.scheduled_ns - run.start_ns for r in run.results] == [round(x * 1e9) for x in offs]
    for r in run.results:
        assert r.dispatch_lag_ms is not None and r.dispatch_lag_ms >= 0
        assert r.ttft_ms - r.dispatch_lag_ms >= truth[r.response_id]["ttft_ms"] - 1e-6
    assert run.offered_rps == pytest.approx(arrivals.offered_rate(offs))
    assert run.achieved_rps is not None and run.dispatch_lag_p99_ms is not None
    assert run.concurrency >= 8 and run.client_cpu_s > 0  # 4 per worker, more if a burst found all busy
    s = run.summary()
    assert s["workers"] == 2 and s["completed"] == n


def test_more_workers_than_requests():
    with FakeOpenAIServer(ttft_ms=1, token_ms=0, tokens=1) as s:
        run = run_open_loop_workers(s.base_url, [RequestSpec(model="fake-model", max_tokens=1)] * 2,
                                    [0.0, 0.01], workers=3)
    assert run.workers == 2 and [r.index for r in run.results] == [0, 1] and all(r.ok for r in run.results)


def test_worker_error_is_one_line():
    import socket
    with socket.socket() as sk:
        sk.bind(("127.0.0.1", 0))
        port = sk.getsockname()[1]
    with pytest.raises(EndpointUnreachable) as e:
        run_open_loop_workers(f"http://127.0.0.1:{port}/v1", [RequestSpec(model="m")] * 2, [0.0, 0.1],
                              workers=2, timeout_s=2)
    assert "open-loop worker 0" in str(e.value) and "refused" in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("kw,fragment", [({"workers": 0}, "workers must be"), ({"workers": 1000}, "workers must be"),
                                         ({"max_lag_ms": -1}, "max_lag_ms")])
def test_bad_input(kw, fragment):
    with pytest.raises(ValueError, match=fragment):
        run_open_loop_workers("http://127.0.0.1:9/v1", [RequestSpec(model="m")] * 2, [0.0, 0.1], **kw)
    with pytest.raises(ValueError, match="non-decreasing"):
        run_open_loop_workers("http://127.0.0.1:9/v1", [RequestSpec(model="m")] * 2, [1.0, 0.1])


def test_workers_die_with_the_caller():
    """A caller killed (SIGKILL) mid-run: its workers go, and their connections with them."""
    with FakeOpenAIServer(ttft_ms=1, token_ms=0, tokens=1) as s:
        code = textwrap.dedent(f"""
            from pytest_inference.engine import RequestSpec, arrivals
            from pytest_inference.engine.workers import run_open_loop_workers
            run_open_loop_workers({s.base_url!r}, [RequestSpec(model="fake-model", max_tokens=1)] * 300,
                                  arrivals.constant(10, n=300), workers=2, connections=3)
        """)
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        caller = subprocess.Popen([sys.executable, "-c", code], cwd=root, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 20
            while s.stats()["requests"] < 4:  # both workers sending
                assert caller.poll() is None and time.monotonic() < deadline, "the run did not start"
                time.sleep(0.05)
            assert s.stats()["connections_open"] >= 6
            caller.send_signal(signal.SIGKILL)
            caller.wait(5)
            deadline = time.monotonic() + 5
            while s.stats()["connections_open"] > 1:  # the stats request's own connection
                assert time.monotonic() < deadline, f"workers outlived the caller: {s.stats()}"
                time.sleep(0.05)
        finally:
            if caller.poll() is None:
                caller.kill()
                caller.wait(5)
