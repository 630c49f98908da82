"""Answers across hardware: a greedy reference recorded once on a trusted backend, compared on another.

:func:`record` asks a fixed prompt set (:data:`PROMPTS`) for greedy completions with their token ids
and top logprobs; :func:`save` / :func:`load` keep that as a JSON file (format :data:`FORMAT`); on the
system under test :func:`observe` asks the same prompts and :func:`compare` says which prompts still
produce the same first N tokens (``api.greedy_token_match``) and how far the chosen tokens' logprobs
moved (``api.logprob_max_abs_diff``), with the position of the first divergence per prompt.

Token ids come from vLLM's ``return_token_ids`` (the choice's ``token_ids``; the token strings stay
readable); a server that refuses the field with a 4xx is asked once more without it, and then tokens are
matched as strings. ``token_id:N`` tokens (vLLM's ``return_tokens_as_token_ids``) are read as ids too.
The file records no URL (hosts and keys stay out of it): the model, the sampling, when, which server.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

FORMAT = "pytest-inference-reference/1"

#: varied short prompts (prose, code, numbers, a list, non-ASCII, a question): each ≤ 30 words, so
#: prompt + answer fit a 512-token context
PROMPTS: tuple[str, ...] = (
    "The license grants you the right to",
    "def fibonacci(n):\n    if n < 2:\n        return n\n   ",
    "1, 2, 3, 5, 8, 13,",
    "Question: What is the capital of France?\nAnswer:",
    "Les conditions de cette licence permettent de copier le logiciel et",
    "A list of things to check before a release:\n1.",
    "Once upon a time, in a small village by the sea, there lived",
    "THE SOFTWARE IS PROVIDED \"AS IS\", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR",
)


class ReferenceError(Exception):
    """A reference that cannot be recorded, read or compared (one line)."""


@dataclass
class Answer:
    """One greedy completion: its tokens (strings), ids where the server gave them, the chosen tokens'
    logprobs and the top logprobs at each position."""

    prompt: str
    tokens: list[str]
    token_ids: list[int] | None
    logprobs: list[float]
    top_logprobs: list[dict[str, float]]
    finish_reason: str | None


@dataclass
class Reference:
    """A recorded reference: ``recorded`` holds ``at`` (ISO time), ``server`` (Server header or
    system_fingerprint), ``note`` (free text) and whatever else the recorder adds — never a URL."""

    model: str
    max_tokens: int
    top_logprobs: int
    answers: list[Answer]
    recorded: dict = field(default_factory=dict)


@dataclass
class Comparison:
    """The system under test against a reference. ``per_prompt``: one dict per prompt —
    ``prompt`` (index), ``first_divergence`` (position or None), ``compared`` (positions equal before
    it), ``reference`` / ``observed`` (the tokens there, None where a side had ended), ``max_abs_diff``
    (the chosen tokens' logprobs before it; None when no position was compared). ``samples``: every
    absolute logprob difference at a matched position."""

    prompts: int
    matched: int
    match_fraction: float
    max_abs_diff: float | None
    per_prompt: list[dict]
    samples: list[float]
    first_n: int = 0

    def details(self) -> dict:
        """JSON-safe: everything but the samples (the claim carries those)."""
        return {"prompts": self.prompts, "matched": self.matched, "match_fraction": self.match_fraction,
                "max_abs_diff": self.max_abs_diff, "first_n": self.first_n, "per_prompt": self.per_prompt}


# ------------------------------------------------------------------------------------------- asking
def ask(client, model: str, prompt: str, *, max_tokens: int, top_logprobs: int) -> Answer:
    """One greedy, non-streamed ``/completions`` request with logprobs (``client``: a
    :class:`pytest_inference.engine.StreamClient`)."""
    return _ask(client, model, prompt, max_tokens=max_tokens, top_logprobs=top_logprobs)[0]


def _ask(client, model: str, prompt: str, *, max_tokens: int, top_logprobs: int) -> tuple[Answer, str | None]:
    from ..engine import EndpointError

    body: dict[str, Any] = {"model": model, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0,
                            "logprobs": top_logprobs, "return_token_ids": True}
    where = f"prompt {_short(prompt)}"
    for attempt in (1, 2):
        try:
            status, headers, raw = client.request("POST", "/completions", body=body)
        except EndpointError as e:
            raise ReferenceError(f"{where}: {_line(str(e))}") from None
        if 400 <= status < 500 and attempt == 1:
            body.pop("return_token_ids")  # a server that refuses the field: tokens as strings then
            continue
        break
    if not 200 <= status < 300:
        raise ReferenceError(f"{where}: HTTP {status}: {_error_text(raw)}")
    try:
        data = json.loads(raw)
        choice = data["choices"][0]
    except (ValueError, KeyError, IndexError, TypeError):
        raise ReferenceError(f"{where}: the answer is not a completion ({_line(raw[:80].decode('utf-8', 'replace'))})") from None
    answer = _answer(prompt, choice)
    if answer is None:
        raise ReferenceError(f"{where}: the answer has no logprobs (asked for logprobs={top_logprobs})")
    server = headers.get("server") or (data.get("system_fingerprint") if isinstance(data, dict) else None)
    fingerprint = data.get("system_fingerprint") if isinstance(data, dict) else None
    if headers.get("server") and fingerprint:
        server = f"{headers['server']}; {fingerprint}"
    return answer, server


def _answer(prompt: str, choice: Any) -> Answer | None:
    """An Answer from a completions choice; None when it carries no usable logprobs."""
    if not isinstance(choice, dict):
        return None
    lp = choice.get("logprobs")
    if not isinstance(lp, dict) or not isinstance(lp.get("tokens"), list):
        return None
    tokens = [str(t) for t in lp["tokens"]]
    chosen = lp.get("token_logprobs")
    if not isinstance(chosen, list) or len(chosen) != len(tokens):
        return None
    logprobs = [float(x) if isinstance(x, (int, float)) else math.nan for x in chosen]
    tops = lp.get("top_logprobs") if isinstance(lp.get("top_logprobs"), list) else []
    top = [{str(k): float(v) for k, v in t.items() if isinstance(v, (int, float))} if isinstance(t, dict) else {}
           for t in tops]
    ids = choice.get("token_ids")
    if not (isinstance(ids, list) and len(ids) == len(tokens) and all(isinstance(i, int) for i in ids)):
        ids = _ids_from_tokens(tokens)
    return Answer(prompt=prompt, tokens=tokens, token_ids=ids, logprobs=logprobs, top_logprobs=top,
                  finish_reason=choice.get("finish_reason"))


def _ids_from_tokens(tokens: list[str]) -> list[int] | None:
    """Ids from ``token_id:N`` tokens (vLLM's return_tokens_as_token_ids), else None."""
    out = []
    for t in tokens:
        head, _, n = t.partition(":")
        if head != "token_id" or not n.isdigit():
            return None
        out.append(int(n))
    return out


def record(client, model: str, *, max_tokens: int = 16, top_logprobs: int = 5, prompts: Sequence[str] = PROMPTS,
           note: str = "") -> Reference:
    """Ask every prompt greedily once and keep the answers as a :class:`Reference`."""
    answers, server = [], None
    for p in prompts:
        a, server = _ask(client, model, p, max_tokens=max_tokens, top_logprobs=top_logprobs)
        answers.append(a)
    at = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    return Reference(model=model, max_tokens=max_tokens, top_logprobs=top_logprobs, answers=answers,
                     recorded={"at": at, "server": server, "note": note})


def observe(client, ref: Reference, *, model: str | None = None) -> list[Answer]:
    """The system under test's answers to the reference's prompts, asked the same way."""
    return [ask(client, model or ref.model, a.prompt, max_tokens=ref.max_tokens, top_logprobs=ref.top_logprobs)
            for a in ref.answers]


# ------------------------------------------------------------------------------------------- the file
def save(ref: Reference, path) -> None:
    """Write the reference as JSON (sorted keys, indent 1), atomically: a temporary file renamed."""
    from ..supervise import write_text_atomic

    path = Path(path)
    doc = {"format": FORMAT, "model": ref.model, "max_tokens": ref.max_tokens, "top_logprobs": ref.top_logprobs,
           "recorded": ref.recorded, "answers": [asdict(a) for a in ref.answers]}
    text = json.dumps(doc, sort_keys=True, indent=1, ensure_ascii=False) + "\n"
    # 0o666 less the umask, like any file the user writes: a shipped reference must be readable by others
    write_text_atomic(path, text, mode=0o666)


def load(path, *, model: str | None = None) -> Reference:
    """Read a reference; with ``model``, refuse one recorded for another model. Every problem is a
    :class:`ReferenceError` of one line naming the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ReferenceError(f"{path}: cannot read ({e.strerror or e})") from None
    except UnicodeDecodeError:
        raise ReferenceError(f"{path}: not JSON (not UTF-8 text)") from None
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise ReferenceError(f"{path}: not JSON ({getattr(e, 'msg', e)} at line {getattr(e, 'lineno', '?')})") from None
    if not isinstance(doc, dict):
        raise ReferenceError(f"{path}: not a {FORMAT} file (it is a JSON {_json_kind(doc)})")
    if doc.get("format") != FORMAT:
        it = f"format {_short(doc['format'])}" if "format" in doc else "an object with no 'format'"
        raise ReferenceError(f"{path}: not a {FORMAT} file (it is {it})")
    for name, kind in (("model", str), ("max_tokens", int), ("top_logprobs", int), ("answers", list)):
        if name not in doc:
            raise ReferenceError(f"{path}: field '{name}' missing")
        if not isinstance(doc[name], kind) or isinstance(doc[name], bool):
            raise ReferenceError(f"{path}: field '{name}' is not a {kind.__name__}")
    if not doc["answers"]:
        raise ReferenceError(f"{path}: no answers")
    answers = []
    for i, a in enumerate(doc["answers"]):
        try:
            answers.append(_answer_from(a))
        except (KeyError, TypeError, ValueError) as e:
            raise ReferenceError(f"{path}: answer {i}: {_line(str(e)) if not isinstance(e, KeyError) else f'field {e} missing'}") from None
    if model is not None and doc["model"] != model:
        raise ReferenceError(f"{path} was recorded for model {doc['model']!r}, the endpoint serves {model!r}")
    recorded = doc.get("recorded") if isinstance(doc.get("recorded"), dict) else {}
    return Reference(model=doc["model"], max_tokens=doc["max_tokens"], top_logprobs=doc["top_logprobs"],
                     answers=answers, recorded=recorded)


def _answer_from(a: Any) -> Answer:
    if not isinstance(a, dict):
        raise TypeError("not an object")
    tokens, ids, lps = a["tokens"], a["token_ids"], a["logprobs"]
    if not isinstance(a["prompt"], str) or not isinstance(tokens, list) or not isinstance(lps, list):
        raise TypeError("prompt, tokens or logprobs of the wrong type")
    if len(lps) != len(tokens) or (ids is not None and (not isinstance(ids, list) or len(ids) != len(tokens))):
        raise ValueError("tokens, token_ids and logprobs differ in length")
    return Answer(prompt=a["prompt"], tokens=[str(t) for t in tokens], token_ids=None if ids is None else [int(i) for i in ids],
                  logprobs=[float(x) if x is not None else math.nan for x in lps],
                  top_logprobs=list(a.get("top_logprobs") or []), finish_reason=a.get("finish_reason"))


# ------------------------------------------------------------------------------------------- comparing
def compare(ref: Reference, answers: list[Answer], *, first_n: int | None = None) -> Comparison:
    """Match each observed answer's first N tokens (N = ``ref.max_tokens`` unless ``first_n``) against
    the reference's: on ids where both sides have them, else on strings. A side that ended (fewer
    tokens) diverges there unless the other ended at the same place; logprob differences are taken
    at the positions before the first divergence."""
    if len(answers) != len(ref.answers):
        raise ReferenceError(f"{len(answers)} answers for the reference's {len(ref.answers)} prompts")
    n = ref.max_tokens if first_n is None else first_n
    if n < 1:
        raise ReferenceError(f"first_n: {n} must be >= 1")
    per, samples, matched = [], [], 0
    for i, (r, o) in enumerate(zip(ref.answers, answers)):
        if r.prompt != o.prompt:
            raise ReferenceError(f"answer {i} is for prompt {_short(o.prompt)}, the reference's is {_short(r.prompt)}")
        by_id = r.token_ids is not None and o.token_ids is not None
        rs, os_ = (r.token_ids, o.token_ids) if by_id else (r.tokens, o.tokens)
        div, diffs = None, []
        for pos in range(n):
            a = rs[pos] if pos < len(rs) else None
            b = os_[pos] if pos < len(os_) else None
            if a is None and b is None:
                break  # both ended here: equal so far
            if a != b:
                div = pos
                break
            d = abs(r.logprobs[pos] - o.logprobs[pos])
            if not math.isnan(d):
                diffs.append(d)
        compared = div if div is not None else min(n, len(rs))
        row = {"prompt": i, "first_divergence": div, "compared": compared,
               "reference": _token(r, div) if div is not None else None,
               "observed": _token(o, div) if div is not None else None,
               "max_abs_diff": max(diffs) if diffs else None}
        per.append(row)
        samples.extend(diffs)
        matched += div is None
    return Comparison(prompts=len(answers), matched=matched, match_fraction=matched / len(answers) if answers else 0.0,
                      max_abs_diff=max(samples) if samples else None, per_prompt=per, samples=samples, first_n=n)


def _token(a: Answer, pos: int) -> str | None:
    """The token at a position for the details (its string and id), None where the answer had ended."""
    if pos >= len(a.tokens):
        return None
    if a.token_ids is not None and not a.tokens[pos].startswith("token_id:"):
        return f"{a.tokens[pos]!r} (id {a.token_ids[pos]})"
    return repr(a.tokens[pos])


# ------------------------------------------------------------------------------------------- helpers
def _short(s: Any) -> str:
    s = repr(s)
    return s if len(s) <= 40 else s[:37] + "..."


def _line(s: str) -> str:
    s = " ".join(s.split())
    return s if len(s) <= 200 else s[:197] + "..."


def _json_kind(v: Any) -> str:
    return {list: "list", str: "string", bool: "boolean", type(None): "null"}.get(type(v), "number")


def _error_text(raw: bytes) -> str:
    """The server's error message (OpenAI's ``error.message`` or FastAPI's ``detail``), one line."""
    try:
        d = json.loads(raw)
        msg = d.get("error", {}).get("message") if isinstance(d.get("error"), dict) else d.get("detail") or d.get("error")
        if msg:
            return _line(str(msg))
    except (ValueError, AttributeError):
        pass
    return _line(raw[:160].decode("utf-8", "replace")) or "(empty body)"
