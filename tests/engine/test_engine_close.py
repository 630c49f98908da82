"""A closed client holds no descriptor: its sockets and its selector's epoll descriptor are closed at
close(), not when the garbage collector gets to it (the drain's /metrics polls make a client per poll)."""

from __future__ import annotations

import gc
import os

from pytest_inference.engine import RequestSpec, StreamClient


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_close_releases_every_descriptor_and_the_client_still_works_after(fake):
    gc.disable()  # only close() may release them here
    try:
        before = _fds()
        clients = []
        for _ in range(5):
            c = StreamClient(fake.base_url, timeout_s=10)
            c.get_text("/metrics")
            c.close()
            clients.append(c)  # kept alive: nothing is collected
        assert _fds() <= before
        # a closed client is reusable: a new selector and connection on demand
        again = clients[0]
        run = again.run([RequestSpec(model="m", prompt="hi", max_tokens=4)], warmup=0)
        assert run.results[0].ok
        again.close()
        assert _fds() <= before
    finally:
        gc.enable()
