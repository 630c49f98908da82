"""Answers across hardware: the endpoint's greedy answers to a fixed prompt set against a reference
recorded on a trusted backend (``--reference FILE``; ``--record-reference FILE`` records one)."""

import pytest

pytestmark = pytest.mark.api


def test_greedy_tokens_match_the_reference(api_check):
    """API-REF-001: the fraction of prompts whose first N greedy tokens match the reference."""
    api_check("API-REF-001")


def test_logprobs_match_the_reference(api_check):
    """API-REF-002: the largest logprob difference of the chosen tokens before a divergence."""
    api_check("API-REF-002")
