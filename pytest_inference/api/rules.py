"""The API rules: pure judgments of recorded exchanges (:class:`.probe.Exchange`), no network.

Each rule returns the *findings*: a list of one-line problems (empty: the rule holds). The checks
(:mod:`.checks`) count them into a claim. Parsing is split in two on purpose:

* :func:`sse_framing` reads a stream strictly, the way the SSE specification and the OpenAI API
  frame it (``data:`` events, each ended by a blank line, JSON payloads, a final ``data: [DONE]``);
* :func:`parse_answer` reads it leniently (every ``data:`` line is a payload), so one framing fault
  is one finding of one check, not a cascade through every rule that needs the stream's content.

Tokens are counted from the answer's logprobs (one entry per generated token) where the request
asked for them: chunks are not tokens (a detokenizer holds back partial characters) and ``usage`` is
the server's own claim, which :func:`usage_count` checks against them.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Iterable

from .probe import Exchange

DONE = "[DONE]"


# --------------------------------------------------------------------------- parsing


@dataclass
class Choice:
    """What one choice of an answer carried."""

    index: int
    text: str = ""
    tokens: list[str] | None = None          # logprobs' token strings, one per generated token
    logprobs: list[float] | None = None
    top: list[Any] | None = None             # per token: chat a list of {token, logprob}, completions a dict
    finish_reason: str | None = None
    finishes: int = 0                        # chunks that carried a finish_reason
    role_content: list[str] = field(default_factory=list)  # content seen in role-carrying chunks
    pieces: list[str] = field(default_factory=list)        # the content of each chunk (streams)

    @property
    def n_tokens(self) -> int | None:
        return None if self.tokens is None else len(self.tokens)


@dataclass
class Answer:
    """A chat or completions answer, streamed or not, read leniently."""

    chat: bool
    stream: bool
    status: int | None
    choices: dict[int, Choice] = field(default_factory=dict)
    usage: dict[str, Any] | None = None
    usage_chunks: int = 0
    ids: list[str] = field(default_factory=list)
    objects: list[str] = field(default_factory=list)
    chunks: int = 0
    problems: list[str] = field(default_factory=list)   # what could not be read

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300 and bool(self.choices)


def data_payloads(body: bytes) -> list[str]:
    """Every ``data:`` line's payload, in order (lenient: blank lines not required)."""
    text = body.decode("utf-8", "replace").replace("\r\n", "\n").replace("\r", "\n")
    out = []
    for line in text.split("\n"):
        if line.startswith("data:"):
            v = line[5:]
            out.append(v[1:] if v.startswith(" ") else v)
    return out


def _logprob_entries(lp: Any, chat: bool) -> tuple[list[str], list[float], list[Any]] | None:
    """(tokens, logprobs, top) of one choice's logprobs object, or None when there is none."""
    if not isinstance(lp, dict):
        return None
    if chat:
        content = lp.get("content")
        if not isinstance(content, list):
            return None
        toks = [e.get("token") if isinstance(e, dict) else None for e in content]
        lps = [e.get("logprob") if isinstance(e, dict) else None for e in content]
        top = [e.get("top_logprobs") if isinstance(e, dict) else None for e in content]
        return toks, lps, top
    toks, lps, top = lp.get("tokens"), lp.get("token_logprobs"), lp.get("top_logprobs")
    if not isinstance(toks, list):
        return None
    return toks, lps if isinstance(lps, list) else [], top if isinstance(top, list) else []


def _absorb(ans: Answer, obj: Any, *, chunk: bool) -> None:
    if not isinstance(obj, dict):
        ans.problems.append(f"a payload is not a JSON object: {str(obj)[:80]}")
        return
    if "id" in obj:
        ans.ids.append(str(obj.get("id")))
    if "object" in obj:
        ans.objects.append(str(obj.get("object")))
    if isinstance(obj.get("usage"), dict):
        ans.usage = obj["usage"]
        ans.usage_chunks += 1
    choices = obj.get("choices")
    if not isinstance(choices, list):
        ans.problems.append("a payload has no choices list")
        return
    for ch in choices:
        if not isinstance(ch, dict):
            ans.problems.append("a choice is not an object")
            continue
        idx = ch.get("index", 0)
        if not isinstance(idx, int):
            ans.problems.append(f"a choice's index is {idx!r}")
            idx = -1
        c = ans.choices.setdefault(idx, Choice(index=idx))
        if ans.chat:
            part = ch.get("delta") if chunk else ch.get("message")
            part = part if isinstance(part, dict) else {}
            content = part.get("content")
            text = content if isinstance(content, str) else ""
            if chunk and "role" in part and text:
                c.role_content.append(text)  # API-SSE-003's finding; not part of the answer's text
                text = ""
        else:
            text = ch.get("text") if isinstance(ch.get("text"), str) else ""
        c.text += text
        if chunk:
            c.pieces.append(text)
        got = _logprob_entries(ch.get("logprobs"), ans.chat)
        if got is not None:
            toks, lps, top = got
            c.tokens = (c.tokens or []) + list(toks)
            c.logprobs = (c.logprobs or []) + list(lps)
            c.top = (c.top or []) + list(top)
        if ch.get("finish_reason") is not None:
            c.finish_reason = ch.get("finish_reason")
            c.finishes += 1


def parse_answer(ex: Exchange, *, chat: bool, stream: bool) -> Answer:
    """The answer ``ex`` carried, read leniently (:func:`sse_framing` judges the framing)."""
    ans = Answer(chat=chat, stream=stream, status=ex.status)
    if not ex.ok:
        ans.problems.append(ex.outcome())
        return ans
    if stream:
        for payload in data_payloads(ex.body):
            if payload.strip() == DONE:
                continue
            try:
                obj = json.loads(payload)
            except ValueError:
                ans.problems.append(f"a data: payload is not JSON: {payload[:80]!r}")
                continue
            ans.chunks += 1
            _absorb(ans, obj, chunk=True)
    else:
        obj = ex.json()
        if obj is None:
            ans.problems.append(f"the body is not JSON: {ex.text[:80]!r}")
            return ans
        _absorb(ans, obj, chunk=False)
    return ans


# --------------------------------------------------------------------------- rules


def sse_framing(ex: Exchange) -> list[str]:
    """Framing faults of a streamed answer: the content type, ``data:`` events each ended by a blank
    line, JSON payloads, the final ``data: [DONE]`` and nothing after it."""
    if not ex.ok:
        return [f"the stream was not answered: {ex.outcome()}"]
    out = []
    if ex.content_type != "text/event-stream":
        out.append(f"content-type is {ex.content_type or 'missing'!r}, not text/event-stream")
    text = ex.body.decode("utf-8", "replace").replace("\r\n", "\n").replace("\r", "\n")
    if not text.endswith("\n\n"):
        out.append("the stream does not end with a blank line (its last event is unterminated)")
    events = [e for e in text.split("\n\n") if e.strip()]
    if not events:
        return out + ["the stream carried no event"]
    datas: list[str] = []
    for ev in events:
        lines = ev.split("\n")
        data = [ln[5:].removeprefix(" ") for ln in lines if ln.startswith("data:")]
        stray = [ln for ln in lines if ln and not ln.startswith(("data:", ":", "event:", "id:", "retry:"))]
        if stray:
            out.append(f"a line that is not an SSE field: {stray[0][:60]!r}")
        if not data:
            continue  # a comment-only event (keep-alive)
        datas.append("\n".join(data))
    bad = [d for d in datas if d.strip() != DONE and not _is_json_object(d)]
    if bad:
        joined = " (several data: lines in one event: events not separated by a blank line?)" if "\n" in bad[0] else ""
        out.append(f"{len(bad)} event(s) whose data is not a JSON object{joined}: {bad[0][:80]!r}")
    if not datas or datas[-1].strip() != DONE:
        out.append("no final data: [DONE]" if DONE not in [d.strip() for d in datas]
                   else "events after data: [DONE]")
    return out


def _is_json_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False


def stream_ids(ans: Answer) -> list[str]:
    """A stream's chunks must share one id and one object type."""
    out = []
    if len(set(ans.ids)) > 1:
        out.append(f"{len(set(ans.ids))} different ids across {ans.chunks} chunks ({', '.join(sorted(set(ans.ids))[:3])}…)")
    if ans.chunks and len(ans.ids) < ans.chunks:
        out.append(f"{ans.chunks - len(ans.ids)} chunk(s) without an id")
    want = "chat.completion.chunk" if ans.chat else "text_completion"
    wrong = sorted({o for o in ans.objects if o != want})
    if wrong:
        out.append(f"object {wrong[0]!r}, expected {want!r}")
    return out


def role_chunk(ans: Answer) -> list[str]:
    """A chat stream's role-only opening chunk carries no content."""
    return [f"choice {c.index}: the role chunk carries content {c.role_content[0][:40]!r}"
            for c in ans.choices.values() if c.role_content]


def finish_reason(ans: Answer, max_tokens: int) -> list[str]:
    """``length`` exactly when max_tokens tokens were generated (counted from logprobs), else ``stop``
    (or another documented reason, never ``length``); every choice has one."""
    out = []
    for c in ans.choices.values():
        if c.finish_reason is None:
            out.append(f"choice {c.index}: no finish_reason")
            continue
        n = c.n_tokens
        if n is None:
            continue
        if n >= max_tokens and c.finish_reason != "length":
            out.append(f"choice {c.index}: {n} tokens of max_tokens {max_tokens} but finish_reason "
                       f"{c.finish_reason!r} (expected 'length')")
        elif n < max_tokens and c.finish_reason == "length":
            out.append(f"choice {c.index}: finish_reason 'length' after {n} of max_tokens {max_tokens} tokens")
    return out


def max_tokens_rule(ans: Answer, max_tokens: int) -> list[str]:
    """No choice has more than max_tokens tokens; one that ended by length has exactly max_tokens."""
    out = []
    for c in ans.choices.values():
        n = c.n_tokens
        if n is None:
            continue
        if n > max_tokens:
            out.append(f"choice {c.index}: {n} tokens for max_tokens {max_tokens}")
        elif c.finish_reason == "length" and n != max_tokens:
            out.append(f"choice {c.index}: ended by length after {n} tokens, max_tokens {max_tokens}")
    return out


def usage_present(ans: Answer, *, expected: bool) -> list[str]:
    """usage where it is due (non-streamed always, a stream with include_usage), and consistent."""
    if not expected:
        return []
    u = ans.usage
    if u is None:
        return ["no usage" + (" chunk although stream_options.include_usage was set" if ans.stream else "")]
    out = []
    vals = {k: u.get(k) for k in ("prompt_tokens", "completion_tokens", "total_tokens")}
    bad = [k for k, v in vals.items() if isinstance(v, bool) or not isinstance(v, int) or v < 0]
    if bad:
        return [f"usage.{bad[0]} is {vals[bad[0]]!r}"]
    if vals["prompt_tokens"] + vals["completion_tokens"] != vals["total_tokens"]:
        out.append(f"usage: prompt {vals['prompt_tokens']} + completion {vals['completion_tokens']} != total "
                   f"{vals['total_tokens']}")
    if ans.stream and ans.usage_chunks > 1:
        out.append(f"usage came in {ans.usage_chunks} chunks (expected one, the last)")
    return out


def usage_count(ans: Answer) -> tuple[list[str], bool]:
    """(findings, judged): usage.completion_tokens against the tokens the answer carried (all choices'
    logprobs entries). Not judged when the answer has no usage or no logprobs to count."""
    u = ans.usage or {}
    said = u.get("completion_tokens")
    counts = [c.n_tokens for c in ans.choices.values()]
    if not isinstance(said, int) or not counts or any(n is None for n in counts):
        return [], False
    carried = sum(counts)  # type: ignore[arg-type]
    if said != carried:
        return [f"usage.completion_tokens {said}, but the answer carried {carried} tokens"], True
    return [], True


def response_shape(ex: Exchange, *, chat: bool) -> list[str]:
    """A non-streamed answer's fields and their types."""
    if not ex.ok:
        return [f"not answered: {ex.outcome()}"]
    obj = ex.json()
    if not isinstance(obj, dict):
        return [f"the body is not a JSON object ({ex.content_type or 'no content-type'})"]
    out = []
    want = "chat.completion" if chat else "text_completion"
    if not isinstance(obj.get("id"), str) or not obj.get("id"):
        out.append("no id")
    if obj.get("object") != want:
        out.append(f"object is {obj.get('object')!r}, expected {want!r}")
    if not isinstance(obj.get("created"), int) or isinstance(obj.get("created"), bool):
        out.append(f"created is {obj.get('created')!r}, expected an integer (Unix seconds)")
    if not isinstance(obj.get("model"), str):
        out.append("no model")
    choices = obj.get("choices")
    if not isinstance(choices, list) or not choices:
        return out + ["no choices"]
    for i, ch in enumerate(choices):
        if not isinstance(ch, dict):
            out.append(f"choice {i} is not an object")
            continue
        if ch.get("index") != i:
            out.append(f"choice {i} has index {ch.get('index')!r}")
        if chat:
            msg = ch.get("message")
            if not isinstance(msg, dict):
                out.append(f"choice {i} has no message")
            else:
                if msg.get("role") != "assistant":
                    out.append(f"choice {i}: message.role is {msg.get('role')!r}")
                if not isinstance(msg.get("content"), str) and not msg.get("tool_calls"):
                    out.append(f"choice {i}: message.content is {type(msg.get('content')).__name__}")
        elif not isinstance(ch.get("text"), str):
            out.append(f"choice {i} has no text")
        if not isinstance(ch.get("finish_reason"), str):
            out.append(f"choice {i}: finish_reason is {ch.get('finish_reason')!r}")
    return out


def models_shape(ex: Exchange) -> tuple[list[str], list[str]]:
    """(findings, model ids) of GET /v1/models."""
    if not ex.ok:
        return [f"GET /v1/models: {ex.outcome()}"], []
    obj = ex.json()
    if not isinstance(obj, dict):
        return [f"the body is not a JSON object but {type(obj).__name__ if obj is not None else 'not JSON'}"], []
    out = []
    if obj.get("object") != "list":
        out.append(f"object is {obj.get('object')!r}, expected 'list'")
    data = obj.get("data")
    if not isinstance(data, list) or not data:
        return out + ["data is not a non-empty list"], []
    ids = []
    for i, m in enumerate(data):
        if not isinstance(m, dict) or not isinstance(m.get("id"), str) or not m.get("id"):
            out.append(f"data[{i}] has no id")
            continue
        ids.append(m["id"])
        if m.get("object") != "model":
            out.append(f"data[{i}] ({m['id']}): object is {m.get('object')!r}, expected 'model'")
    return out, ids


def error_answer(ex: Exchange, *, expect: Iterable[int] | None = None) -> list[str]:
    """A bad request's answer: a 4xx (one of ``expect`` when given) with an OpenAI error body
    ``{"error": {"message": str, "type": str, ...}}``; never a 5xx, a 2xx or no answer."""
    if ex.status is None:
        return [f"no answer ({ex.error})"]
    out = []
    if ex.status >= 500:
        out.append(f"HTTP {ex.status} (a server error for a client's mistake)")
    elif ex.status < 400:
        return [f"HTTP {ex.status}: the bad request was accepted"]
    elif expect is not None and ex.status not in set(expect):
        out.append(f"HTTP {ex.status}, expected {'/'.join(map(str, expect))}")
    obj = ex.json()
    err = obj.get("error") if isinstance(obj, dict) else None
    if not isinstance(err, dict) or not isinstance(err.get("message"), str) or not isinstance(err.get("type"), str):
        shown = ex.text[:60].replace("\n", " ")
        out.append(f"the body is not an OpenAI error object {{error: {{message, type}}}}: {shown!r}")
    return out


def logprobs_shape(ans: Answer, *, k: int) -> list[str]:
    """Asked for logprobs (k top): one entry per token with a finite logprob <= 0 and k (or k + 1, the
    chosen token added) alternatives."""
    out = []
    for c in ans.choices.values():
        if c.tokens is None:
            out.append(f"choice {c.index}: no logprobs although they were asked for")
            continue
        if not c.tokens and c.text:
            out.append(f"choice {c.index}: text but no logprobs entries")
        if c.logprobs is None or len(c.logprobs) != len(c.tokens):
            out.append(f"choice {c.index}: {len(c.tokens)} tokens but {len(c.logprobs or [])} logprobs")
        for j, lp in enumerate(c.logprobs or []):
            if isinstance(lp, bool) or not isinstance(lp, (int, float)) or not math.isfinite(lp) or lp > 1e-6:
                out.append(f"choice {c.index}: token {j} has logprob {lp!r}")
                break
        for j, tok in enumerate(c.tokens):
            if not isinstance(tok, str):
                out.append(f"choice {c.index}: token {j} is {tok!r}, not a string")
                break
        if k and c.top is not None:
            if len(c.top) != len(c.tokens):
                out.append(f"choice {c.index}: {len(c.tokens)} tokens but {len(c.top)} top_logprobs entries")
            for j, alt in enumerate(c.top):
                n = len(alt) if isinstance(alt, (list, dict)) else -1
                if n not in (k, k + 1):
                    out.append(f"choice {c.index}: token {j} has {n if n >= 0 else 'no'} top_logprobs, asked {k}")
                    break
    return out


def n_choices(ans: Answer, n: int) -> list[str]:
    """n choices indexed 0..n-1, each with its own finish_reason (and in a stream, one each)."""
    out = []
    got = sorted(ans.choices)
    if got != list(range(n)):
        out.append(f"choices indexed {got}, expected {list(range(n))}")
    for c in ans.choices.values():
        if c.finish_reason is None:
            out.append(f"choice {c.index}: no finish_reason")
        elif ans.stream and c.finishes != 1:
            out.append(f"choice {c.index}: {c.finishes} chunks carried a finish_reason")
    return out


def token_sequence(c: Choice) -> list[str]:
    """What a choice generated, token by token: its logprobs tokens, else its chunks' contents."""
    return list(c.tokens) if c.tokens is not None else [p for p in c.pieces if p]


def foreign_tokens(concurrent: list[list[str]], solo: list[list[str]]) -> list[str]:
    """Findings when a concurrent stream carries another request's tokens: at the positions where
    stream i differs from its solo answer, ≥ 2 of its tokens equal request j's solo token there.
    (A batch can change a greedy answer a little; it does not make it another request's answer.)"""
    out = []
    for i, got in enumerate(concurrent):
        mine = solo[i]
        hits: dict[int, int] = {}
        for p, tok in enumerate(got):
            if p < len(mine) and tok == mine[p]:
                continue
            for j, other in enumerate(solo):
                if j != i and p < len(other) and tok == other[p] and (p >= len(mine) or other[p] != mine[p]):
                    hits[j] = hits.get(j, 0) + 1
        for j, h in sorted(hits.items()):
            if h >= 2:
                out.append(f"stream {i} carried {h} tokens of request {j}'s answer")
    return out
