"""Discovery: the endpoint lists its models in the OpenAI shape, serves the model under test, and
answers /health where it offers one."""

import pytest

pytestmark = pytest.mark.api


def test_model_list_shape(api_check):
    """API-DISC-001: GET /v1/models is {object: list, data: [{id, object: model}]}."""
    api_check("API-DISC-001")


def test_requested_model_is_served(api_check):
    """API-DISC-002: the model under test is among the ids the endpoint lists."""
    api_check("API-DISC-002")


def test_health_answers(api_check):
    """API-DISC-003: GET /health, where offered, answers 2xx on a ready server."""
    api_check("API-DISC-003")
