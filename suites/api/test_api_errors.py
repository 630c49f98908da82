"""Bad requests get a 4xx with an OpenAI error body: never a 5xx, never a hang."""

import pytest

pytestmark = pytest.mark.api


def test_malformed_json(api_check):
    """API-ERR-001: a body that is not JSON."""
    api_check("API-ERR-001")


def test_missing_messages(api_check):
    """API-ERR-002: a chat request without messages."""
    api_check("API-ERR-002")


def test_negative_max_tokens(api_check):
    """API-ERR-003: max_tokens -1."""
    api_check("API-ERR-003")


def test_unknown_model(api_check):
    """API-ERR-004: a model the endpoint does not serve."""
    api_check("API-ERR-004")


def test_prompt_longer_than_the_context(api_check):
    """API-ERR-005: a prompt past the model's context length."""
    api_check("API-ERR-005")


def test_wrong_key_is_401(api_check):
    """API-ERR-006: a wrong API key, on an endpoint that uses keys."""
    api_check("API-ERR-006")
