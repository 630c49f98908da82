"""The fake server's strict mode is a conformant OpenAI API server, and each ``--defect``
breaks exactly the rule it names: the API conformance suite (suites/api) is proven on it.

Every defect has a check here that says whether its rule is broken; each check is run on
the defect's server (broken) and on the strict server (kept)."""

from __future__ import annotations

import http.client
import json
import math
import re
import socket
import subprocess
import sys
import threading
from typing import Any, Callable

import pytest

from pytest_inference.testing.fake_openai import (
    DEFECTS, VOCAB, FakeOpenAIServer, cut_at_stop, logprob_of, top_logprobs)

KEY = "sk-fake-secret-123"
MODEL = "tiny"
CHAT = "/v1/chat/completions"
COMP = "/v1/completions"


def _opts(*extra: str) -> list[str]:
    return ["--api-key", KEY, "--model", MODEL, "--max-model-len", "64", "--ttft-ms", "1", "--token-ms", "1",
            *extra]


@pytest.fixture(scope="module")
def strict():
    with FakeOpenAIServer("--strict", *_opts()) as s:
        yield s


def call(s: FakeOpenAIServer, path: str, body: Any = None, method: str = "POST", key: str | None = KEY,
         timeout: float = 10.0) -> tuple[int, str, bytes]:
    """(status, content-type, body) of one request on its own connection."""
    c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=timeout)
    try:
        headers = {"content-type": "application/json"}
        if key is not None:
            headers["authorization"] = f"Bearer {key}"
        data = body if isinstance(body, (str, bytes)) or body is None else json.dumps(body)
        c.request(method, path, data, headers)
        r = c.getresponse()
        return r.status, r.getheader("content-type") or "", r.read()
    finally:
        c.close()


def ok_json(s: FakeOpenAIServer, path: str, body: dict[str, Any]) -> dict[str, Any]:
    status, ctype, data = call(s, path, body)
    assert status == 200, data
    assert ctype == "application/json"
    return json.loads(data)


def events(data: bytes) -> list[Any]:
    """The SSE data payloads of a stream (JSON-decoded; "[DONE]" kept as a string)."""
    out = []
    for block in data.decode().split("\n\n"):
        for line in block.split("\n"):
            if line.startswith("data: "):
                p = line[6:]
                out.append(p if p == "[DONE]" else json.loads(p))
    return out


def stream(s: FakeOpenAIServer, path: str, body: dict[str, Any]) -> list[Any]:
    status, ctype, data = call(s, path, {**body, "stream": True})
    assert status == 200, data
    assert ctype.startswith("text/event-stream")
    return events(data)


def chat_body(text: str = "tell me a story", **kw: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": text}], **kw}


def streamed_text(evs: list[Any], index: int = 0) -> str:
    out = ""
    for e in evs:
        if isinstance(e, dict):
            for ch in e["choices"]:
                if ch["index"] == index:
                    out += ch["delta"].get("content") or "" if "delta" in ch else ch["text"]
    return out


def finishes(evs: list[Any]) -> dict[int, str]:
    return {ch["index"]: ch["finish_reason"] for e in evs if isinstance(e, dict) for ch in e["choices"]
            if ch["finish_reason"]}


# ---------------------------------------------------------------------------------
# validation

BAD = [
    (CHAT, {"model": MODEL}, 400, "messages"),
    (CHAT, chat_body() | {"messages": []}, 400, "messages"),
    (CHAT, chat_body() | {"messages": ["hi"]}, 400, "messages"),
    (CHAT, chat_body() | {"messages": [{"role": 1, "content": "hi"}]}, 400, "messages"),
    (CHAT, chat_body() | {"messages": [{"role": "user", "content": 5}]}, 400, "messages"),
    (COMP, {"model": MODEL}, 400, "prompt"),
    (CHAT, chat_body(max_tokens=0), 400, "max_tokens"),
    (CHAT, chat_body(max_tokens="5"), 400, "max_tokens"),
    (CHAT, chat_body(max_completion_tokens=-1), 400, "max_completion_tokens"),
    (CHAT, chat_body(n=0), 400, "n"),
    (CHAT, chat_body(n=17), 400, "n"),
    (CHAT, chat_body(temperature=2.5), 400, "temperature"),
    (CHAT, chat_body(temperature="hot"), 400, "temperature"),
    (CHAT, chat_body(top_p=0), 400, "top_p"),
    (CHAT, chat_body(top_p=1.5), 400, "top_p"),
    (CHAT, chat_body(stream="yes"), 400, "stream"),
    (CHAT, chat_body(stop=["a", "b", "c", "d", "e"]), 400, "stop"),
    (CHAT, chat_body(stop=7), 400, "stop"),
    (CHAT, chat_body(seed=1.5), 400, "seed"),
    (COMP, {"model": MODEL, "prompt": "x", "temperature": float("nan")}, 400, "temperature"),
    (CHAT, chat_body(stop=json.loads("[" * 500 + "]" * 500)), 400, "stop"),
    (CHAT, chat_body(logprobs=True, top_logprobs=21), 400, "top_logprobs"),
    (CHAT, chat_body(top_logprobs=2), 400, "top_logprobs"),
    (COMP, {"model": MODEL, "prompt": "hi", "logprobs": 6}, 400, "logprobs"),
    (CHAT, chat_body(stream_options={"include_usage": True}), 400, "stream_options"),
    (CHAT, chat_body() | {"model": 3}, 400, "model"),
    (CHAT, chat_body() | {"model": "other-model"}, 404, "model"),
    (COMP, {"model": MODEL, "prompt": "w " * 65}, 400, "prompt"),
    (CHAT, chat_body("w " * 50, max_tokens=20), 400, "max_tokens"),
]


@pytest.mark.parametrize("path,body,status,param", BAD,
                         ids=[f"{p.rsplit('/', 1)[-1]}-{i}-{param}" for i, (p, _, _, param) in enumerate(BAD)])
def test_validation_error_status_and_body(strict, path, body, status, param):
    got, ctype, data = call(strict, path, body)
    assert (got, ctype) == (status, "application/json"), data
    err = json.loads(data)["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["type"] == ("NotFoundError" if status == 404 else "BadRequestError")
    assert (err["param"], err["code"]) == (param, status)
    assert isinstance(err["message"], str) and err["message"]


@pytest.mark.parametrize("raw", ["{not json", "[1, 2]", '"text"', '{"a": ' * 5000 + "1" + "}" * 5000],
                         ids=["broken", "list", "string", "too-deep"])
def test_a_body_that_is_not_a_json_object_is_400(strict, raw):
    got, ctype, data = call(strict, CHAT, raw)
    assert (got, ctype) == (400, "application/json")
    assert json.loads(data)["error"]["code"] == 400


def test_context_length_message_names_the_maximum(strict):
    _, _, data = call(strict, COMP, {"model": MODEL, "prompt": "w " * 60, "max_tokens": 10})
    assert "maximum context length is 64 tokens" in json.loads(data)["error"]["message"]
    # exactly at the limit is fine
    r = ok_json(strict, COMP, {"model": MODEL, "prompt": "w " * 54, "max_tokens": 10, "temperature": 0})
    assert r["usage"]["prompt_tokens"] + r["usage"]["completion_tokens"] == 64


def test_unknown_fields_are_ignored_and_model_may_be_left_out(strict):
    r = ok_json(strict, CHAT, {"messages": [{"role": "user", "content": "hi"}], "frobnicate": {"x": 1},
                               "max_tokens": 2})
    assert r["model"] == MODEL and r["choices"][0]["finish_reason"] == "length"


def test_api_key_is_required_and_not_echoed(strict):
    status, ctype, data = call(strict, CHAT, chat_body(), key="sk-wrong")
    assert (status, ctype) == (401, "application/json")
    assert KEY.encode() not in data
    assert call(strict, "/v1/models", method="GET")[0] == 200


# ---------------------------------------------------------------------------------
# generation


def test_greedy_is_deterministic_and_the_same_for_every_choice(strict):
    a = ok_json(strict, CHAT, chat_body(temperature=0, max_tokens=8, n=3))
    b = ok_json(strict, CHAT, chat_body(temperature=0, max_tokens=8))
    texts = {c["message"]["content"] for c in a["choices"]}
    assert texts == {b["choices"][0]["message"]["content"]}
    words = b["choices"][0]["message"]["content"].split()
    assert len(words) == 8 and set(words) <= set(VOCAB)
    other = ok_json(strict, CHAT, chat_body("another prompt entirely", temperature=0, max_tokens=8))
    assert other["choices"][0]["message"]["content"] != b["choices"][0]["message"]["content"]


def test_seed_is_deterministic_per_choice(strict):
    body = {"model": MODEL, "prompt": "once upon a time", "max_tokens": 10, "seed": 7, "temperature": 0.8, "n": 2}
    a, b = ok_json(strict, COMP, body), ok_json(strict, COMP, body)
    ta, tb = [c["text"] for c in a["choices"]], [c["text"] for c in b["choices"]]
    assert ta == tb
    assert ta[0] != ta[1]  # the choice index is part of the seed
    c = ok_json(strict, COMP, {**body, "seed": 8})
    assert [x["text"] for x in c["choices"]] != ta


def test_without_seed_sampling_differs_between_requests(strict):
    body = {"model": MODEL, "prompt": "once upon a time", "max_tokens": 10}
    texts = {ok_json(strict, COMP, body)["choices"][0]["text"] for _ in range(3)}
    assert len(texts) == 3


def test_stream_and_non_stream_greedy_agree(strict):
    body = chat_body(temperature=0, max_tokens=6)
    r = ok_json(strict, CHAT, body)
    evs = stream(strict, CHAT, body)
    assert streamed_text(evs) == r["choices"][0]["message"]["content"]
    assert evs[-1] == "[DONE]"
    assert evs[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert len({e["id"] for e in evs if isinstance(e, dict)}) == 1
    assert finishes(evs) == {0: "length"}


def test_max_tokens_ends_with_length_and_without_it_the_server_stops(strict):
    r = ok_json(strict, CHAT, chat_body(temperature=0, max_tokens=5))
    assert (r["choices"][0]["finish_reason"], r["usage"]["completion_tokens"]) == ("length", 5)
    r = ok_json(strict, CHAT, chat_body(temperature=0))
    assert (r["choices"][0]["finish_reason"], r["usage"]["completion_tokens"]) == ("stop", 16)
    r = ok_json(strict, CHAT, chat_body(temperature=0) | {"fake": {"eos_after": 3}})
    assert (r["choices"][0]["finish_reason"], r["usage"]["completion_tokens"]) == ("stop", 3)


def test_cut_at_stop_keeps_the_text_before_the_stop_string():
    assert cut_at_stop([" ab", " cd", " ef"], ["cd"]) == ([" ab", " "], True)
    assert cut_at_stop([" ab", " cd", " ef"], [" cd"]) == ([" ab"], True)
    assert cut_at_stop([" ab", " cd", " ef"], ["b c", "ef"]) == ([" a"], True)  # spans two tokens
    assert cut_at_stop([" ab"], ["zz", ""]) == ([" ab"], False)
    assert cut_at_stop([" ab"], [" a"]) == ([], True)


@pytest.mark.parametrize("streamed", [False, True])
def test_stop_cuts_before_the_stop_string(strict, streamed):
    full = ok_json(strict, CHAT, chat_body(temperature=0, max_tokens=10))["choices"][0]["message"]["content"]
    words = full.split()
    stop = words[4][1:]  # inside the fifth token: the text is cut mid-token
    body = chat_body(temperature=0, max_tokens=10, stop=[stop], logprobs=True,
                     **({"stream_options": {"include_usage": True}} if streamed else {}))
    if streamed:
        evs = stream(strict, CHAT, body)
        text, fin = streamed_text(evs), finishes(evs)[0]
        usage = evs[-2]["usage"]
        entries = sum(len(e["choices"][0]["logprobs"]["content"]) for e in evs[1:-2])
    else:
        c = ok_json(strict, CHAT, body)
        text, fin, usage = c["choices"][0]["message"]["content"], c["choices"][0]["finish_reason"], c["usage"]
        entries = len(c["choices"][0]["logprobs"]["content"])
    assert text == full[:full.index(stop)]
    assert stop not in text and fin == "stop"
    assert usage["completion_tokens"] == entries == 5


def test_n_choices_non_stream(strict):
    r = ok_json(strict, CHAT, chat_body(n=3, max_tokens=4, seed=1))
    assert [c["index"] for c in r["choices"]] == [0, 1, 2]
    assert all(c["finish_reason"] == "length" for c in r["choices"])
    assert r["usage"]["completion_tokens"] == 12
    assert r["usage"]["total_tokens"] == r["usage"]["prompt_tokens"] + 12


def test_n_choices_stream_interleaved(strict):
    evs = stream(strict, CHAT, chat_body(n=2, max_tokens=3, seed=1, stream_options={"include_usage": True}))
    chunks = [e for e in evs if isinstance(e, dict) and e["choices"]]
    assert all(len(e["choices"]) == 1 for e in chunks)
    order = [e["choices"][0]["index"] for e in chunks]
    assert order == [0, 1] * 4  # role chunks, then round robin
    roles = [e["choices"][0]["index"] for e in chunks if "role" in e["choices"][0]["delta"]]
    assert roles == [0, 1]
    assert finishes(evs) == {0: "length", 1: "length"}
    assert evs[-2]["choices"] == [] and evs[-2]["usage"]["completion_tokens"] == 6
    r = ok_json(strict, CHAT, chat_body(n=2, max_tokens=3, seed=1))
    assert [streamed_text(evs, i) for i in (0, 1)] == [c["message"]["content"] for c in r["choices"]]


def test_completions_list_of_prompts(strict):
    r = ok_json(strict, COMP, {"model": MODEL, "prompt": ["a b", "c d e"], "n": 2, "max_tokens": 2,
                               "temperature": 0})
    assert [c["index"] for c in r["choices"]] == [0, 1, 2, 3]
    assert r["choices"][0]["text"] == r["choices"][1]["text"] != r["choices"][2]["text"]
    assert r["usage"]["prompt_tokens"] == 5 and r["usage"]["completion_tokens"] == 8


# ---------------------------------------------------------------------------------
# logprobs


def test_chat_logprobs_shape_greedy(strict):
    r = ok_json(strict, CHAT, chat_body(temperature=0, max_tokens=4, logprobs=True, top_logprobs=3))
    ch = r["choices"][0]
    content = ch["logprobs"]["content"]
    assert len(content) == r["usage"]["completion_tokens"] == 4
    assert "".join(e["token"] for e in content) == ch["message"]["content"]
    for e in content:
        assert set(e) == {"token", "logprob", "bytes", "top_logprobs"}
        assert bytes(e["bytes"]).decode() == e["token"] and e["logprob"] <= 0
        tops = e["top_logprobs"]
        assert len(tops) == 3
        assert [t["logprob"] for t in tops] == sorted((t["logprob"] for t in tops), reverse=True)
        assert tops[0]["token"] == e["token"] and tops[0]["logprob"] == e["logprob"]  # greedy: the best
        assert sum(math.exp(t["logprob"]) for t in tops) <= 1.0


def test_chat_logprobs_without_top_and_without_asking(strict):
    r = ok_json(strict, CHAT, chat_body(max_tokens=2, logprobs=True))
    assert all(e["top_logprobs"] == [] for e in r["choices"][0]["logprobs"]["content"])
    r = ok_json(strict, CHAT, chat_body(max_tokens=2))
    assert r["choices"][0]["logprobs"] is None


def test_chat_logprobs_stream_one_entry_per_token(strict):
    evs = stream(strict, CHAT, chat_body(temperature=0, max_tokens=4, logprobs=True, top_logprobs=2,
                                         fake={"tokens_per_chunk": 3}))
    toks = [e for e in evs[1:] if isinstance(e, dict)]
    assert [len(e["choices"][0]["logprobs"]["content"]) for e in toks] == [3, 1]
    assert all(e["choices"][0]["delta"]["content"] ==
               "".join(x["token"] for x in e["choices"][0]["logprobs"]["content"]) for e in toks)
    assert evs[0]["choices"][0]["logprobs"] is None


def test_completions_logprobs_shape(strict):
    r = ok_json(strict, COMP, {"model": MODEL, "prompt": "hello there", "max_tokens": 4, "logprobs": 2,
                               "temperature": 0})
    ch = r["choices"][0]
    lp = ch["logprobs"]
    assert set(lp) == {"tokens", "token_logprobs", "top_logprobs", "text_offset"}
    assert len(lp["tokens"]) == len(lp["token_logprobs"]) == len(lp["top_logprobs"]) == 4
    assert "".join(lp["tokens"]) == ch["text"]
    assert lp["text_offset"] == [sum(len(t) for t in lp["tokens"][:i]) for i in range(4)]
    for t, v, top in zip(lp["tokens"], lp["token_logprobs"], lp["top_logprobs"]):
        assert v <= 0 and len(top) == 2 and top[t] == v == max(top.values())


def test_completions_logprobs_stream_offsets_continue(strict):
    evs = stream(strict, COMP, {"model": MODEL, "prompt": "hello there", "max_tokens": 3, "logprobs": 0,
                                "temperature": 0})
    offs = [o for e in evs if isinstance(e, dict) for o in e["choices"][0]["logprobs"]["text_offset"]]
    toks = [t for e in evs if isinstance(e, dict) for t in e["choices"][0]["logprobs"]["tokens"]]
    assert offs == [0, len(toks[0]), len(toks[0]) + len(toks[1])]


def test_tokens_as_token_ids(strict):
    r = ok_json(strict, CHAT, chat_body(temperature=0, max_tokens=3, logprobs=True, top_logprobs=2,
                                        return_tokens_as_token_ids=True))
    words = r["choices"][0]["message"]["content"].split()
    content = r["choices"][0]["logprobs"]["content"]
    assert [e["token"] for e in content] == [f"token_id:{VOCAB.index(w)}" for w in words]
    assert all(re.fullmatch(r"token_id:\d+", t["token"]) for e in content for t in e["top_logprobs"])
    r = ok_json(strict, COMP, {"model": MODEL, "prompt": "x", "max_tokens": 2, "logprobs": 1,
                               "return_tokens_as_token_ids": True})
    assert all(t.startswith("token_id:") for t in r["choices"][0]["logprobs"]["tokens"])


def test_logprob_functions_agree():
    top = top_logprobs("k", 3, 20)
    assert len({t for t, _ in top}) == 20
    assert all(logprob_of("k", 3, t) == v for t, v in top)
    assert logprob_of("k", 3, next(i for i in range(len(VOCAB)) if i not in dict(top))) < top[-1][1]


# ---------------------------------------------------------------------------------
# the other endpoints, and the defaults


def test_models_and_metrics(strict):
    status, _, data = call(strict, "/v1/models", method="GET")
    assert status == 200 and [(m["id"], m["max_model_len"]) for m in json.loads(data)["data"]] == [(MODEL, 64)]
    text = strict.metrics()
    assert "vllm:num_requests_running{" in text and "vllm:num_requests_waiting{" in text


def test_default_server_keeps_its_text():
    with FakeOpenAIServer(ttft_ms=1, token_ms=0) as s:
        status, _, data = call(s, COMP, {"prompt": "x", "max_tokens": 3}, key=None)
        assert status == 200 and json.loads(data)["choices"][0]["text"] == "tok0 tok1 tok2"
        assert call(s, COMP, "{oops", key=None)[0] == 400


def test_strict_per_request_option():
    with FakeOpenAIServer(ttft_ms=1, token_ms=0) as s:
        status, _, data = call(s, COMP, {"prompt": "x", "max_tokens": 0, "fake": {"strict": True}}, key=None)
        assert status == 400 and json.loads(data)["error"]["param"] == "max_tokens"


def test_unknown_defect_is_one_line():
    p = subprocess.run([sys.executable, "-m", "pytest_inference.testing.fake_openai", "--defect", "no_done,nope"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 2
    last = p.stderr.strip().splitlines()[-1]
    assert "unknown defect nope" in last and "mix_streams" in last and "Traceback" not in p.stderr


# ---------------------------------------------------------------------------------
# defects: each check says whether its rule is broken


def _greedy(s, text: str, n: int = 6) -> str:
    return ok_json(s, CHAT, chat_body(text, temperature=0, max_tokens=n))["choices"][0]["message"]["content"]


def _no_done(s) -> bool:
    status, _, data = call(s, CHAT, chat_body(max_tokens=3, stream=True))
    assert status == 200 and data.endswith(b"\n")
    return b"data: [DONE]" not in data


def _wrong_usage(s) -> bool:
    # every token is one word: the words sent are the tokens sent
    r = ok_json(s, CHAT, chat_body(max_tokens=4))
    evs = stream(s, CHAT, chat_body(max_tokens=4, stream_options={"include_usage": True}))
    u = evs[-2]["usage"] if evs[-1] == "[DONE]" else evs[-1]["usage"]
    assert u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"]
    return (r["usage"]["completion_tokens"] != len(r["choices"][0]["message"]["content"].split())
            or u["completion_tokens"] != sum(len(e["choices"][0]["delta"]["content"].split()) for e in evs
                                             if isinstance(e, dict) and e["choices"]
                                             and "role" not in e["choices"][0]["delta"]))


def _finish_always_stop(s) -> bool:
    return ok_json(s, CHAT, chat_body(max_tokens=3))["choices"][0]["finish_reason"] != "length"


def _unknown_field_500(s) -> bool:
    status, _, _ = call(s, CHAT, chat_body(max_tokens=2, frobnicate=1))
    return status != 200


def _ignore_max_tokens(s) -> bool:
    return len(ok_json(s, CHAT, chat_body(max_tokens=3))["choices"][0]["message"]["content"].split()) != 3


def _mix_streams(s) -> bool:
    prompts = ["the first story", "a second different tale"]
    solo = [_greedy(s, p, 8) for p in prompts]
    got: list[list[Any]] = [[], []]

    def run(i: int) -> None:
        got[i] = stream(s, CHAT, chat_body(prompts[i], temperature=0, max_tokens=8, logprobs=True, fake={
            "token_ms": 25, "ttft_ms": 5, "role_chunk": False}))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    texts = [streamed_text(evs) for evs in got]
    assert all(texts)
    for evs, text in zip(got, texts):  # a mixed token event is mixed whole: its logprobs carry its text's tokens
        lps = [e["choices"][0]["logprobs"] for e in evs if isinstance(e, dict)]
        if all(lps):
            assert "".join(x["token"] for lp in lps for x in lp["content"]) == text
    return texts != solo


def _hang_on_bad_body(s) -> bool:
    try:
        call(s, CHAT, "{nope", timeout=1.0)
        call(s, CHAT, {"model": MODEL}, timeout=1.0)
    except (socket.timeout, TimeoutError):
        return True
    return False


def _role_chunk_content(s) -> bool:
    evs = stream(s, CHAT, chat_body(max_tokens=4))
    return evs[0]["choices"][0]["delta"] != {"role": "assistant", "content": ""}


def _mixed_ids(s) -> bool:
    evs = stream(s, CHAT, chat_body(max_tokens=3, stream_options={"include_usage": True}))
    return len({e["id"] for e in evs if isinstance(e, dict)}) != 1


def _bad_sse_framing(s) -> bool:
    status, _, data = call(s, CHAT, chat_body(max_tokens=3, stream=True))
    return status != 200 or re.search(rb"[^\n]\ndata: ", data) is not None or not data.endswith(b"\n\n")


def _errors_500(s) -> bool:
    return call(s, CHAT, chat_body(max_tokens=0))[0] != 400 or call(s, CHAT, chat_body() | {"model": "x"})[0] != 404


def _error_body_plain(s) -> bool:
    status, ctype, data = call(s, CHAT, chat_body(n=99))
    try:
        return ctype != "application/json" or json.loads(data)["error"]["code"] != 400
    except (ValueError, KeyError, TypeError):
        return True


def _ignore_stop(s) -> bool:
    full = _greedy(s, "tell me a story", 6)
    stop = full.split()[2]
    r = ok_json(s, CHAT, chat_body(temperature=0, max_tokens=6, stop=stop))["choices"][0]
    return stop in r["message"]["content"] or r["finish_reason"] != "stop"


def _ignore_n(s) -> bool:
    return len(ok_json(s, COMP, {"model": MODEL, "prompt": "p", "max_tokens": 2, "n": 3})["choices"]) != 3


def _ignore_seed(s) -> bool:
    greedy = {_greedy(s, "same prompt", 8) for _ in range(2)}
    body = {"model": MODEL, "prompt": "p", "max_tokens": 8, "seed": 3}
    seeded = {ok_json(s, COMP, body)["choices"][0]["text"] for _ in range(2)}
    return len(greedy) != 1 or len(seeded) != 1


def _no_logprobs(s) -> bool:
    return ok_json(s, CHAT, chat_body(max_tokens=2, logprobs=True))["choices"][0]["logprobs"] is None


def _models_bad_shape(s) -> bool:
    status, _, data = call(s, "/v1/models", method="GET")
    body = json.loads(data)
    return status != 200 or not isinstance(body, dict) or body.get("object") != "list" or not body.get("data")


def _no_queue_gauge(s) -> bool:
    text = s.metrics()
    assert "vllm:num_requests_running{" in text
    return "vllm:num_requests_waiting{" not in text


def _any_key(s) -> bool:
    return call(s, CHAT, chat_body(max_tokens=2), key="sk-wrong")[0] != 401 or \
        call(s, CHAT, chat_body(max_tokens=2), key=None)[0] != 401


BROKEN: dict[str, Callable[[FakeOpenAIServer], bool]] = {
    "no_done": _no_done, "wrong_usage": _wrong_usage, "finish_always_stop": _finish_always_stop,
    "unknown_field_500": _unknown_field_500, "ignore_max_tokens": _ignore_max_tokens,
    "mix_streams": _mix_streams, "hang_on_bad_body": _hang_on_bad_body,
    "role_chunk_content": _role_chunk_content, "mixed_ids": _mixed_ids, "bad_sse_framing": _bad_sse_framing,
    "errors_500": _errors_500, "error_body_plain": _error_body_plain, "ignore_stop": _ignore_stop,
    "ignore_n": _ignore_n, "ignore_seed": _ignore_seed, "no_logprobs": _no_logprobs,
    "models_bad_shape": _models_bad_shape, "no_queue_gauge": _no_queue_gauge, "any_key": _any_key,
}


def test_every_defect_has_a_check():
    assert set(BROKEN) == set(DEFECTS)
    assert all(isinstance(v, str) and v for v in DEFECTS.values())


@pytest.mark.parametrize("name", list(DEFECTS))
def test_strict_server_keeps_the_rule(strict, name):
    assert not BROKEN[name](strict)


# checks that need greedy answers to repeat cannot pass when they do not
ENTANGLED = {"ignore_seed": {"ignore_stop", "mix_streams"}}


@pytest.mark.parametrize("name", list(DEFECTS))
def test_defect_breaks_its_rule_and_only_it(name):
    with FakeOpenAIServer("--defect", name, *_opts()) as s:
        assert BROKEN[name](s)
        others = {m for m, broken in BROKEN.items() if m != name and broken(s)}
        assert others == ENTANGLED.get(name, set())


def test_defects_combine():
    with FakeOpenAIServer("--defect", "no_done,mixed_ids", "--defect", "ignore_n", *_opts()) as s:
        assert _no_done(s) and _mixed_ids(s) and _ignore_n(s)
        assert not _wrong_usage(s) and not _ignore_stop(s)
