"""The API rules are pure: judged here on answers recorded from the real CPU vLLM (all conformant) and on
hostile variants of them, each breaking one rule — the way a defective server would answer."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from pytest_inference.api import rules
from pytest_inference.api.probe import Exchange

DATA = json.loads((Path(__file__).parent / "data" / "vllm_exchanges.json").read_text())


def recorded(label: str) -> Exchange:
    e = next(x for x in DATA["exchanges"] if x["label"] == label)
    return Exchange(label=e["label"], method=e["method"], path=e["path"], sent=e["sent"], status=e["status"],
                    headers=dict(e["headers"]), body=e["body"].encode())


def variant(ex: Exchange, body: str | bytes, **kw) -> Exchange:
    return Exchange(label=ex.label + " (variant)", method=ex.method, path=ex.path, sent=ex.sent,
                    status=kw.get("status", ex.status), headers=kw.get("headers", dict(ex.headers)),
                    body=body if isinstance(body, bytes) else body.encode())


CHAT_STREAM = "chat stream: greedy, max_tokens 8, logprobs"
CMPL_STREAM = "completions stream: greedy, max_tokens 8, logprobs"
CHAT = "chat: greedy, max_tokens 8, logprobs"
CMPL = "completions: greedy, max_tokens 8, logprobs"


# --------------------------------------------------------------------------- vLLM's recorded answers hold


@pytest.mark.parametrize("label,chat", [(CHAT_STREAM, True), (CMPL_STREAM, False)])
def test_vllm_streams_hold_every_stream_rule(label, chat):
    ex = recorded(label)
    ans = rules.parse_answer(ex, chat=chat, stream=True)
    assert rules.sse_framing(ex) == []
    assert rules.stream_ids(ans) == []
    assert rules.role_chunk(ans) == []
    assert rules.finish_reason(ans, 8) == [] and rules.max_tokens_rule(ans, 8) == []
    assert rules.usage_present(ans, expected=True) == []
    assert rules.usage_count(ans) == ([], True)
    assert rules.logprobs_shape(ans, k=2) == []
    assert ans.choices[0].n_tokens == 8 and ans.choices[0].finish_reason == "length"


@pytest.mark.parametrize("label,chat", [(CHAT, True), (CMPL, False)])
def test_vllm_plain_answers_hold_the_shape_and_usage_rules(label, chat):
    ex = recorded(label)
    ans = rules.parse_answer(ex, chat=chat, stream=False)
    assert rules.response_shape(ex, chat=chat) == []
    assert rules.usage_present(ans, expected=True) == [] and rules.usage_count(ans) == ([], True)
    assert rules.logprobs_shape(ans, k=2) == [] and rules.max_tokens_rule(ans, 8) == []


def test_vllm_model_list_errors_and_n_hold():
    problems, ids = rules.models_shape(recorded("GET /v1/models"))
    assert problems == [] and ids == ["tiny-llama"]
    assert rules.error_answer(recorded("chat: a body cut in the middle of its JSON")) == []
    assert rules.error_answer(recorded("chat: a model that is not served"), expect=(404,)) == []
    for label, stream in (("chat: n 3", False), ("chat stream: n 3", True)):
        assert rules.n_choices(rules.parse_answer(recorded(label), chat=True, stream=stream), 3) == []


# --------------------------------------------------------------------------- hostile variants


def test_a_stream_without_done_breaks_framing_only():
    ex = recorded(CHAT_STREAM)
    cut = variant(ex, ex.text.replace("data: [DONE]\n\n", ""))
    assert rules.sse_framing(cut) == ["no final data: [DONE]"]
    ans = rules.parse_answer(cut, chat=True, stream=True)  # the content is still readable
    assert rules.usage_count(ans) == ([], True) and rules.finish_reason(ans, 8) == []


def test_events_without_blank_lines_break_framing():
    ex = recorded(CHAT_STREAM)
    joined = variant(ex, ex.text.replace("\n\n", "\n").rstrip("\n") + "\n\n")
    problems = rules.sse_framing(joined)
    assert any("blank line" in p for p in problems), problems
    # lenient reading still sees every chunk: one framing fault is one finding of one check
    assert rules.parse_answer(joined, chat=True, stream=True).choices[0].n_tokens == 8


def test_framing_faults_each_named():
    ex = recorded(CHAT_STREAM)
    assert any("content-type" in p for p in rules.sse_framing(variant(ex, ex.text, headers={"content-type": "application/json"})))
    assert any("events after" in p for p in rules.sse_framing(variant(ex, ex.text + 'data: {"x": 1}\n\n')))
    assert any("not a JSON object" in p for p in rules.sse_framing(variant(ex, "data: hello\n\n" + ex.text)))
    assert any("unterminated" in p for p in rules.sse_framing(variant(ex, ex.text.rstrip("\n"))))
    assert any("not an SSE field" in p for p in rules.sse_framing(variant(ex, "garbage line\n\n" + ex.text)))
    # comments (keep-alive pings) are allowed
    assert rules.sse_framing(variant(ex, ": ping\n\n" + ex.text)) == []


def test_mixed_ids_and_role_content_are_found():
    ex = recorded(CHAT_STREAM)
    n = iter(range(1000))
    mixed = variant(ex, re.sub(r'"id":"[^"]+"', lambda m: f'"id":"chatcmpl-{next(n)}"', ex.text))
    assert rules.stream_ids(rules.parse_answer(mixed, chat=True, stream=True))
    talky = variant(ex, ex.text.replace('"delta":{"role":"assistant","content":""}', '"delta":{"role":"assistant","content":"Hi"}', 1))
    assert rules.role_chunk(rules.parse_answer(talky, chat=True, stream=True)) == ["choice 0: the role chunk carries content 'Hi'"]


def test_wrong_usage_and_finish_reason_are_found():
    ex = recorded(CHAT_STREAM)
    more = variant(ex, ex.text.replace('"completion_tokens":8', '"completion_tokens":9'))
    ans = rules.parse_answer(more, chat=True, stream=True)
    found, judged = rules.usage_count(ans)
    assert judged and found == ["usage.completion_tokens 9, but the answer carried 8 tokens"]
    stop = variant(ex, ex.text.replace('"finish_reason":"length"', '"finish_reason":"stop"'))
    assert rules.finish_reason(rules.parse_answer(stop, chat=True, stream=True), 8)


def test_max_tokens_overrun_is_counted_from_logprobs_not_usage():
    ex = recorded(CHAT)
    ans = rules.parse_answer(ex, chat=True, stream=False)
    assert rules.max_tokens_rule(ans, 6) == ["choice 0: 8 tokens for max_tokens 6"]
    # a server that says 6 in usage still carried 8 tokens: usage is its claim, the logprobs its tokens
    lied = variant(ex, ex.text.replace('"completion_tokens":8', '"completion_tokens":6'))
    assert rules.max_tokens_rule(rules.parse_answer(lied, chat=True, stream=False), 6)


def test_error_answers_judged():
    ex = recorded("chat: a body cut in the middle of its JSON")
    assert rules.error_answer(variant(ex, ex.body, status=500)) == ["HTTP 500 (a server error for a client's mistake)"]
    assert "accepted" in rules.error_answer(variant(ex, b'{"choices": []}', status=200))[0]
    plain = rules.error_answer(variant(ex, b"bad request", status=400, headers={"content-type": "text/plain"}))
    assert len(plain) == 1 and "not an OpenAI error object" in plain[0]
    hung = Exchange(label="hang", method="POST", path="/chat/completions", sent=b"{", error="no complete answer within 3 s")
    assert rules.error_answer(hung) == ["no answer (no complete answer within 3 s)"]
    assert rules.error_answer(variant(ex, ex.body, status=400), expect=(404,))


def test_model_list_faults():
    ex = recorded("GET /v1/models")
    problems, ids = rules.models_shape(variant(ex, b'["tiny-llama"]'))
    assert problems and ids == []
    problems, ids = rules.models_shape(variant(ex, b'{"object": "list", "data": [{"id": "m", "object": "thing"}]}'))
    assert ids == ["m"] and problems == ["data[0] (m): object is 'thing', expected 'model'"]


def test_n_and_logprob_faults():
    ex = recorded("chat: n 3")
    obj = json.loads(ex.body)
    obj["choices"] = obj["choices"][:1]
    assert rules.n_choices(rules.parse_answer(variant(ex, json.dumps(obj)), chat=True, stream=False), 3)
    plain = recorded(CHAT)
    obj = json.loads(plain.body)
    obj["choices"][0]["logprobs"] = None
    assert rules.logprobs_shape(rules.parse_answer(variant(plain, json.dumps(obj)), chat=True, stream=False), k=2) == [
        "choice 0: no logprobs although they were asked for"]
    obj = json.loads(plain.body)
    obj["choices"][0]["logprobs"]["content"][3]["logprob"] = 0.5
    assert any("logprob 0.5" in p for p in rules.logprobs_shape(rules.parse_answer(variant(plain, json.dumps(obj)), chat=True, stream=False), k=2))


def test_foreign_tokens_tell_mixing_from_a_changed_answer():
    solo = [["a", "b", "c", "d"], ["w", "x", "y", "z"]]
    # a batch changed stream 0's answer after token 2: its own path, not request 1's
    assert rules.foreign_tokens([["a", "b", "q", "r"], ["w", "x", "y", "z"]], solo) == []
    # stream 0 carried request 1's tokens at positions 2 and 3
    assert rules.foreign_tokens([["a", "b", "y", "z"], ["w", "x", "y", "z"]], solo) == [
        "stream 0 carried 2 tokens of request 1's answer"]


def test_msp_metrics_recorded_have_every_gauge():
    from pytest_inference.engine import prometheus

    text = recorded("GET /metrics").text
    for name in ("vllm:num_requests_waiting", "vllm:num_requests_running", "vllm:kv_cache_usage_perc"):
        assert prometheus.has_metric(text, name)
