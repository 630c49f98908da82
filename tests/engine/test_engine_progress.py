"""StreamClient.progress(): the public view of a running client, read from another thread."""

from __future__ import annotations

import dataclasses
import threading
import time

import pytest

from pytest_inference.engine import Progress, RequestSpec, StreamClient
from pytest_inference.testing.fake_openai import fake_headers


def test_progress_read_from_another_thread_during_a_run(fake):
    # 6 streams of 40 tokens, 20 ms apart (~0.8 s each), 3 at a time: two waves
    specs = [RequestSpec(model="fake-model", max_tokens=40, ignore_eos=True,
                         headers=fake_headers(token_ms=20, ttft_ms=10)) for _ in range(6)]
    client = StreamClient(fake.base_url, timeout_s=10)
    seen: list[tuple[Progress, Progress]] = []
    box: dict = {}

    def drive() -> None:
        box["run"] = client.run(specs, concurrency=3, warmup=0)

    try:
        assert client.progress() == Progress(streaming=0, in_flight=0, not_sent=0)
        th = threading.Thread(target=drive)
        th.start()
        while th.is_alive():
            seen.append((client.progress(), client.progress(min_tokens=10_000)))
            time.sleep(0.002)
        th.join()
        after = client.progress()
    finally:
        client.close()
    run = box["run"]
    assert all(r.ok for r in run.results), [r.error for r in run.results]
    views = [p for p, _ in seen]
    # zeros until the run has its requests (connections are opened first)
    first = next(i for i, p in enumerate(views) if p.in_flight or p.not_sent)
    assert all(p == Progress(0, 0, 0) for p in views[:first])
    views = views[first:]
    assert len(views) > 20
    # every view is one consistent moment: never more in flight than the concurrency, a request is
    # never counted twice or lost between "not sent" and "in flight" (the sum only goes down)
    for p in views:
        assert 0 <= p.streaming <= p.in_flight <= 3
        assert 0 <= p.not_sent <= 6 and p.in_flight + p.not_sent <= 6
    remaining = [p.in_flight + p.not_sent for p in views]
    assert remaining == sorted(remaining, reverse=True)
    not_sent = [p.not_sent for p in views]
    assert not_sent == sorted(not_sent, reverse=True)
    # both waves were seen streaming: 3 in flight with 3 waiting, then 3 in flight with none left
    assert any(p == Progress(streaming=3, in_flight=3, not_sent=3) for p in views)
    assert any(p.streaming == 3 and p.in_flight == 3 and p.not_sent == 0 for p in views)
    # no request ever got 10,000 token events
    assert all(q.streaming == 0 for _, q in seen)
    assert after == Progress(streaming=0, in_flight=0, not_sent=0)


def test_progress_is_a_frozen_value():
    p = Progress(streaming=1, in_flight=2, not_sent=3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.streaming = 5  # type: ignore[misc]
