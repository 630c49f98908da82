"""Fixtures for the engine's own tests: fake OpenAI servers in their own processes
(tests/fake_server_fixtures.py, shared with tests/workloads)."""

from __future__ import annotations

from fake_server_fixtures import client, fake, start_fake  # noqa: F401
