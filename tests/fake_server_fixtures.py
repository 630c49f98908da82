"""Fixtures shared by the test folders that drive the engine against the fake OpenAI server
(tests/engine, tests/workloads): each folder's conftest imports what it uses, e.g.
``from fake_server_fixtures import client, fake  # noqa: F401``. (``tests/`` is on ``sys.path``
because tests/conftest.py lives there; a module, not tests/conftest.py, so the other folders do
not get fixtures named as generically as ``client``.)"""

from __future__ import annotations

import pytest

from pytest_inference.engine import StreamClient
from pytest_inference.testing.fake_openai import FakeOpenAIServer


@pytest.fixture(scope="session")
def fake():
    """A shared fake server: 10 ms TTFT, 1 ms per token (tests override per request)."""
    with FakeOpenAIServer(ttft_ms=10, token_ms=1, tokens=8) as s:
        yield s


@pytest.fixture
def client(fake):
    c = StreamClient(fake.base_url, timeout_s=10)
    yield c
    c.close()


@pytest.fixture
def start_fake():
    """Start extra fake servers with their own command-line options; all stopped after the test."""
    servers: list[FakeOpenAIServer] = []

    def start(**opts) -> FakeOpenAIServer:
        s = FakeOpenAIServer(**opts).start()
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.stop()
