"""Fixtures for the workload tests: the engine tests' fake OpenAI server and client
(tests/fake_server_fixtures.py)."""

from __future__ import annotations

from fake_server_fixtures import client, fake  # noqa: F401
