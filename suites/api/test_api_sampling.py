"""Sampling parameters do what they say: stop sequences, n choices, seeds and greedy decoding,
logprobs."""

import pytest

pytestmark = pytest.mark.api

APIS = ["chat", "completions"]


@pytest.mark.parametrize("api", APIS)
def test_stop_sequences_stop_and_are_not_returned(api_check, api):
    """API-STOP-001: a stop string from the greedy answer ends generation before it, finish_reason stop."""
    api_check("API-STOP-001", api)


def test_n_choices(api_check):
    """API-N-001: n = 3 gives three choices indexed 0..2, streamed and not."""
    api_check("API-N-001")


def test_n_above_one_is_supported(api_check):
    """API-N-002: n > 1 is served (a clean 4xx is a finding a target may allow)."""
    api_check("API-N-002")


def test_greedy_and_seeded_answers_repeat(api_check):
    """API-SEED-001: temperature 0, and a seed at temperature 1, repeat their tokens."""
    api_check("API-SEED-001")


@pytest.mark.parametrize("api", APIS)
def test_logprobs_shape(api_check, api):
    """API-LOGP-001: asked for, logprobs come one entry per token with the alternatives asked for."""
    api_check("API-LOGP-001", api)
