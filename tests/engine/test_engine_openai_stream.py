"""engine.openai_stream: OpenAI chunk payloads -> token events, finish_reason, usage, errors, [DONE]
(pure, no server). Payloads in the shapes vLLM / OpenAI send them, and the hostile ones the engine
tests meet over a socket (HTML, other JSON, broken shapes)."""

from __future__ import annotations

import json

import pytest

from pytest_inference.engine.openai_stream import (
    CONTENT,
    REASONING,
    TOOL,
    ChunkError,
    StreamDecoder,
    describe_non_sse,
    end_problem,
    error_detail,
)
from pytest_inference.engine.results import RequestResult


def ev(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


BASE = {"id": "chatcmpl-abc", "object": "chat.completion.chunk", "created": 1, "model": "tiny"}
# a vLLM chat stream: role-only opening chunk, 3 tokens, finish chunk, usage-only chunk, [DONE]
VLLM_CHAT = [
    ev({**BASE, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                             "finish_reason": None}]}),
    ev({**BASE, "choices": [{"index": 0, "delta": {"content": "Hel"}, "logprobs": None, "finish_reason": None}]}),
    ev({**BASE, "choices": [{"index": 0, "delta": {"content": "lo"}, "logprobs": None, "finish_reason": None}]}),
    ev({**BASE, "choices": [{"index": 0, "delta": {"content": "!"}, "logprobs": None, "finish_reason": "length",
                             "stop_reason": None}]}),
    ev({**BASE, "choices": [], "usage": {"prompt_tokens": 7, "total_tokens": 10, "completion_tokens": 3}}),
    b"[DONE]",
]


def feed_all(payloads) -> tuple[StreamDecoder, list[int]]:
    d = StreamDecoder()
    return d, [d.feed(p) for p in payloads]


def test_vllm_chat_stream():
    d, kinds = feed_all(VLLM_CHAT)
    assert kinds == [0, CONTENT, CONTENT, CONTENT, 0, 0]  # role chunk and usage chunk are no tokens
    assert d.text == "Hello!" and d.finish_reason == "length" and d.done
    assert (d.output_tokens, d.prompt_tokens, d.usage_reported) == (3, 7, True)
    assert d.response_id == "chatcmpl-abc" and d.error is None
    res = RequestResult()
    d.fill(res)
    assert (res.text, res.finish_reason, res.output_tokens, res.prompt_tokens, res.done_marker,
            res.response_id) == ("Hello!", "length", 3, 7, True, "chatcmpl-abc")


def test_completions_stream_and_no_usage():
    d, kinds = feed_all([ev({"id": "cmpl-1", "choices": [{"index": 0, "text": " a", "finish_reason": None}]}),
                         ev({"id": "cmpl-1", "choices": [{"index": 0, "text": "", "finish_reason": None}]}),
                         ev({"id": "cmpl-1", "choices": [{"index": 0, "text": " b", "finish_reason": "stop"}]}),
                         b"[DONE]"])
    assert kinds == [CONTENT, 0, CONTENT, 0] and d.text == " a b" and d.finish_reason == "stop"
    assert d.output_tokens is None and not d.usage_reported  # never guessed from chunk counts
    res = RequestResult()
    d.fill(res)
    assert res.output_tokens is None and not res.usage_reported


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
def test_reasoning_then_content(field):
    d, kinds = feed_all([ev({"choices": [{"delta": {field: "think"}}]}),
                         ev({"choices": [{"delta": {field: "ing", "content": "ans"}}]}),
                         ev({"choices": [{"delta": {"content": "wer"}}]})])
    assert kinds == [REASONING, REASONING | CONTENT, CONTENT]
    assert d.reasoning_text == "thinking" and d.text == "answer"


def test_tool_call_text_is_a_token_and_empty_pieces_are_not():
    d, kinds = feed_all([
        ev({"choices": [{"delta": {"tool_calls": [{"index": 0, "id": "c1", "type": "function",
                                                   "function": {"name": "get_weather", "arguments": ""}}]}}]}),
        ev({"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\""}}]}}]}),
        ev({"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {}}]}}]}),
        ev({"choices": [{"delta": {"tool_calls": [{"index": 0}]}, "finish_reason": "tool_calls"}]}),
    ])
    assert kinds == [TOOL, TOOL, 0, 0] and d.tool_text == 'get_weather{"city"'
    assert d.finish_reason == "tool_calls" and d.text == ""


def test_usage_on_every_chunk_keeps_the_last_count():
    d, kinds = feed_all([ev({"choices": [{"delta": {"content": "a"}}], "usage": {"completion_tokens": 1}}),
                         ev({"choices": [{"delta": {"content": "b"}}], "usage": {"completion_tokens": 2}}),
                         ev({"choices": [], "usage": None})])
    assert kinds == [CONTENT, CONTENT, 0] and d.output_tokens == 2


def test_error_event_is_kept_as_one_line():
    d = StreamDecoder()
    assert d.feed(ev({"error": {"message": "CUDA out of memory", "code": 500}})) == 0
    assert d.error == "error event in the stream: CUDA out of memory (500)"
    d2 = StreamDecoder()
    d2.feed(ev({"error": "overloaded"}))
    assert d2.error == "error event in the stream: overloaded"


@pytest.mark.parametrize("payload, why", [
    (b"<html><body>502 Bad Gateway</body></html>", "a stream event is not JSON: '<html>"),
    (b"[1, 2]", "a stream event is not a JSON object: '[1, 2]'"),
    (b'"text"', "a stream event is not a JSON object"),
    (b'{"object": "something else"}', "a stream event is not an OpenAI chunk"),
    (b'{"choices": {"0": {}}}', "a stream event is not an OpenAI chunk"),
    (b'{"choices": ["x"]}', "a stream event is not an OpenAI chunk"),
    (b'{"choices": [{"delta": "x"}]}', "a stream event is not an OpenAI chunk"),
    (b'{"choices": [], "usage": {"completion_tokens": "many"}}', "a stream event is not an OpenAI chunk"),
    (b'{"choices": [{"delta": {"tool_calls": [{"function": "f"}]}}]}', "a stream event is not an OpenAI chunk"),
])
def test_hostile_payloads_are_one_line(payload, why):
    with pytest.raises(ChunkError) as ei:
        StreamDecoder().feed(payload)
    msg = str(ei.value)
    assert msg.startswith(why) and "\n" not in msg and len(msg) < 160


def test_a_long_payload_is_cut_in_the_message():
    with pytest.raises(ChunkError, match="…'$"):
        StreamDecoder().feed(b"x" * 5000)


def test_done_rule():
    # [DONE] ends any stream
    assert end_problem(True, None, "close", 3, False) is None
    # chunked / Content-Length framing ends it when a choice said why it stopped
    assert end_problem(False, "stop", "chunked", 3, True) is None
    assert end_problem(False, "length", "length", 3, True) is None
    # a close-framed body ends the same way whether the server finished or was cut: only [DONE]
    assert end_problem(False, "stop", "close", 3, True) == (
        "stream ended without [DONE]: the server closed the connection (no chunked encoding, no "
        "Content-Length) after 3 token events, finish_reason=stop, usage reported")
    assert end_problem(False, None, "chunked", 2, False) == (
        "stream ended without [DONE]: the chunked body ended after 2 token events, finish_reason=None, "
        "usage absent")


def test_error_bodies_are_one_short_line():
    assert error_detail('{"error": {"message": "bad\\n model", "type": "invalid_request"}}', "application/json") \
        == "bad model (invalid_request)"
    assert error_detail('{"detail": "Not Found"}', "") == "Not Found"
    assert error_detail("<html><title>502 Bad\nGateway</title></html>", "text/html") == "an HTML page ('502 Bad Gateway')"
    assert error_detail("  ", "") == "(empty body)"
    assert len(error_detail("x " * 1000, "text/plain")) == 300
    assert describe_non_sse("application/json", b'{"choices": []}') == (
        "with a non-streaming JSON completion: the endpoint ignored stream=true")
    assert describe_non_sse("text/html", b"<html></html>").startswith("with an HTML page (an HTML page)")
    assert describe_non_sse("", b"hello").startswith("with no content type ('hello')")
    assert describe_non_sse("application/json", b'{"a": 1}').startswith("with JSON of another shape")
