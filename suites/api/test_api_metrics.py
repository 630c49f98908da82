"""The gauges the Gateway API Inference Extension's Model Server Protocol reads at /metrics."""

import pytest

pytestmark = pytest.mark.api


def test_model_server_protocol_gauges(api_check):
    """API-MSP-001: queued, running and KV-cache usage gauges, each found or missing."""
    api_check("API-MSP-001")
