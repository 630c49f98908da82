"""Chat and completions, streamed and not: the response objects, the SSE framing of a stream, its
chunks' id, the role chunk, finish_reason, max_tokens and usage."""

import pytest

pytestmark = pytest.mark.api

APIS = ["chat", "completions"]


@pytest.mark.parametrize("api", APIS)
def test_response_shape(api_check, api):
    """API-RESP-001: id, object, created, model, choices and a consistent usage."""
    api_check("API-RESP-001", api)


@pytest.mark.parametrize("api", APIS)
def test_sse_framing(api_check, api):
    """API-SSE-001: data: events, each ended by a blank line, JSON payloads, a final data: [DONE]."""
    api_check("API-SSE-001", api)


@pytest.mark.parametrize("api", APIS)
def test_one_id_per_stream(api_check, api):
    """API-SSE-002: every chunk of a stream carries the stream's id."""
    api_check("API-SSE-002", api)


def test_role_chunk_carries_no_content(api_check):
    """API-SSE-003: a chat stream's role-only opening chunk has no content."""
    api_check("API-SSE-003")


@pytest.mark.parametrize("api", APIS)
def test_finish_reason_says_why(api_check, api):
    """API-FIN-001: length exactly when max_tokens was reached, stop when a stop sequence ended it."""
    api_check("API-FIN-001", api)


@pytest.mark.parametrize("api", APIS)
def test_max_tokens_honoured(api_check, api):
    """API-MAXTOK-001: never more than max_tokens tokens; exactly max_tokens when ended by length."""
    api_check("API-MAXTOK-001", api)


@pytest.mark.parametrize("api", APIS)
def test_usage_reported(api_check, api):
    """API-USAGE-001: usage without streaming, and in a stream with stream_options.include_usage."""
    api_check("API-USAGE-001", api)


@pytest.mark.parametrize("api", APIS)
def test_usage_counts_the_tokens_sent(api_check, api):
    """API-USAGE-002: usage.completion_tokens equals the tokens the answer carried."""
    api_check("API-USAGE-002", api)
