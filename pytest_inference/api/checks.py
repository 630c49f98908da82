"""The API checks: what to ask the endpoint for each rule, and the count of what broke it.

Each check's metadata (title, metric, default requirement, remediation, the fake server's defects it
must catch) is data in ``pytest_inference/catalog/api_checks.toml``; ``@check("API-…")`` takes only
the id. A check takes an :class:`ApiContext` (the probe and what the suite was told) and returns a
:class:`~pytest_inference.checks.CheckResult`: the number of findings, or — when the endpoint could not
be asked (it refuses logprobs, the answers are not repeatable) — no figure and the reason, which makes
the claim inconclusive, never a pass. Requests shared by several checks (one streamed chat answer
feeds the framing, id, role-chunk, finish, max_tokens and usage checks) are made once per context.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable

from ..catalog.checks import CheckSpec, api_checks
from ..catalog.checks import check as check_spec
from ..checks import CheckResult, stamp
from ..checks import unimplemented as shared_unimplemented
from . import rules
from .probe import UNKNOWN_FIELD, ApiProbe, Exchange

CHAT, COMPLETIONS = "/chat/completions", "/completions"
APIS = {"chat": CHAT, "completions": COMPLETIONS}
PROMPT = "Write one sentence about the sea."
#: the concurrent-streams check's prompts (distinct, so their answers differ)
CONC_PROMPTS = ("Name a colour.", "Count to five.", "Describe a cat.", "What is rain?")


class SkipCheck(Exception):
    """The check does not apply to this endpoint (no /health, no keys): the test skips with the reason."""


@dataclass
class ApiContext:
    """What the checks ask with: the probe, the model, the request sizes; answers shared by checks."""

    probe: ApiProbe
    model: str
    max_tokens: int = 8
    top_logprobs: int = 2
    context_len: int | None = None           # the model's context (vLLM's /v1/models max_model_len)
    fuzz: dict[str, Any] = field(default_factory=dict)   # seed, examples, max_s
    reference: Any = None                    # a loaded reference (--reference FILE), or None
    reference_path: str | None = None
    _cache: dict[Any, Any] = field(default_factory=dict, repr=False)
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    def once(self, key: Any, make: Callable[[], Any]) -> Any:
        with self._lock:
            if key not in self._cache:
                self._cache[key] = make()
            return self._cache[key]

    # ------------------------------------------------------------------ requests

    def body(self, api: str, *, stream: bool, logprobs: bool = True, **extra: Any) -> dict[str, Any]:
        """A greedy request of ``max_tokens`` tokens, with logprobs (to count tokens) unless refused."""
        chat = api == "chat"
        b: dict[str, Any] = {"model": self.model, "max_tokens": self.max_tokens, "temperature": 0}
        if chat:
            b["messages"] = [{"role": "user", "content": PROMPT}]
        else:
            b["prompt"] = PROMPT
        if logprobs:
            b.update({"logprobs": True, "top_logprobs": self.top_logprobs} if chat else {"logprobs": self.top_logprobs})
        if stream:
            b.update(stream=True, stream_options={"include_usage": True})
        b.update(extra)
        return b

    def logprobs_refused(self, api: str) -> Exchange | None:
        """The 4xx answer to a request with logprobs when the endpoint refuses them (else None)."""
        def ask() -> Exchange | None:
            ex = self.probe.post(APIS[api], self.body(api, stream=False), label=f"{api}: logprobs asked")
            return ex if ex.status is not None and 400 <= ex.status < 500 else None
        return self.once(("logprobs", api), ask)

    def basic(self, api: str, stream: bool) -> tuple[Exchange, rules.Answer]:
        """The basic greedy answer (``max_tokens`` tokens, logprobs, usage), streamed or not."""
        def ask() -> tuple[Exchange, rules.Answer]:
            lp = self.logprobs_refused(api) is None
            label = f"{api}{' stream' if stream else ''}: greedy, max_tokens {self.max_tokens}" + (", logprobs" if lp else "")
            ex = self.probe.post(APIS[api], self.body(api, stream=stream, logprobs=lp), label=label)
            return ex, rules.parse_answer(ex, chat=api == "chat", stream=stream)
        return self.once(("basic", api, stream), ask)

    def models(self) -> Exchange:
        return self.once("models", lambda: self.probe.get("/models", label="GET /v1/models"))


@dataclass(frozen=True)
class Check:
    spec: CheckSpec
    fn: Callable[..., CheckResult]
    subjects: tuple[str, ...] = ()   # the check runs once per subject (chat, completions)

    id = property(lambda self: self.spec.id)
    title = property(lambda self: self.spec.title)


CHECKS: dict[str, Check] = {}


def check(cid: str, subjects: tuple[str, ...] = ()):
    """Register the implementation of catalog check ``cid``; ``subjects``: it runs once for each."""
    spec = check_spec(cid)

    def deco(fn):
        def guarded(ctx: ApiContext, *args: Any) -> CheckResult:
            return stamp(spec, fn(ctx, *args))

        guarded.__name__, guarded.__doc__, guarded.__wrapped__ = fn.__name__, fn.__doc__, fn
        if cid in CHECKS:
            raise RuntimeError(f"check {cid} is implemented twice")
        CHECKS[cid] = Check(spec, guarded, subjects)
        return guarded
    return deco


def unimplemented() -> tuple[list[str], list[str]]:
    """(catalog ids without an implementation, implemented ids without a catalog entry)."""
    return shared_unimplemented(api_checks(), CHECKS)


def run_check(cid: str, ctx: ApiContext, subject: str | None = None) -> CheckResult:
    c = CHECKS[cid]
    r = c.fn(ctx, subject) if c.subjects else c.fn(ctx)
    if subject:
        r.subject = subject
    return r


# --------------------------------------------------------------------------- result helpers


def _count(findings: list[Any], *, ok: str, exchanges: list[Exchange] = ()) -> CheckResult:
    """A counting result: the number of findings (each a line, or a dict with "problem")."""
    items = [f if isinstance(f, dict) else {"problem": f} for f in findings]
    if exchanges:
        items.append({"exchanges": [e.to_dict(300) for e in exchanges]})
    n = len(findings)
    actual = ok if not n else f"{n} finding(s): " + "; ".join(
        (f["problem"] if isinstance(f, dict) else f) for f in findings[:3]) + (" …" if n > 3 else "")
    return CheckResult(id="", title="", metric="", measured=n, expected="", actual=actual, remediation="",
                       findings=items)


def _unsure(reason: str, exchanges: list[Exchange] = ()) -> CheckResult:
    return CheckResult(id="", title="", metric="", measured=None, expected="", actual="", remediation="",
                       reason=reason, findings=[{"exchanges": [e.to_dict(300) for e in exchanges]}] if exchanges else [])


def _figure(value: float, *, actual: str, findings: list[dict[str, Any]]) -> CheckResult:
    return CheckResult(id="", title="", metric="", measured=value, expected="", actual=actual, remediation="",
                       findings=findings)


# --------------------------------------------------------------------------- discovery


@check("API-DISC-001")
def models_list(ctx: ApiContext) -> CheckResult:
    ex = ctx.models()
    problems, ids = rules.models_shape(ex)
    return _count(problems, ok=f"an OpenAI model list of {len(ids)} model(s)", exchanges=[ex] if problems else [])


@check("API-DISC-002")
def model_served(ctx: ApiContext) -> CheckResult:
    ex = ctx.models()
    problems, ids = rules.models_shape(ex)
    if not ids:
        return _unsure(f"the model list did not parse ({'; '.join(problems[:2])}): see API-DISC-001", [ex])
    if ctx.model in ids:
        return _count([], ok=f"{ctx.model} is served")
    return _count([f"{ctx.model} is not among the served models ({', '.join(ids[:5])})"], ok="")


@check("API-DISC-003")
def health(ctx: ApiContext) -> CheckResult:
    ex = ctx.probe.get("/health", label="GET /health", root=True)
    if ex.status in (404, 405):
        raise SkipCheck(f"the endpoint offers no /health (HTTP {ex.status}): nothing to check")
    if ex.ok:
        return _count([], ok=f"HTTP {ex.status}")
    return _count([f"GET /health: {ex.outcome()}"], ok="", exchanges=[ex])


# --------------------------------------------------------------------------- shapes and streams


@check("API-RESP-001", subjects=("chat", "completions"))
def response_shape(ctx: ApiContext, api: str) -> CheckResult:
    ex, _ = ctx.basic(api, stream=False)
    problems = rules.response_shape(ex, chat=api == "chat")
    return _count(problems, ok="id, object, created, model, choices and usage in place",
                  exchanges=[ex] if problems else [])


@check("API-SSE-001", subjects=("chat", "completions"))
def sse_framing(ctx: ApiContext, api: str) -> CheckResult:
    ex, ans = ctx.basic(api, stream=True)
    problems = rules.sse_framing(ex)
    return _count(problems, ok=f"{ans.chunks} data: events, blank-line separated, ending in data: [DONE]",
                  exchanges=[ex] if problems else [])


@check("API-SSE-002", subjects=("chat", "completions"))
def stream_ids(ctx: ApiContext, api: str) -> CheckResult:
    ex, ans = ctx.basic(api, stream=True)
    if not ans.chunks:
        return _unsure(f"the stream carried no chunk ({ex.outcome()})", [ex])
    problems = rules.stream_ids(ans)
    return _count(problems, ok=f"one id across {ans.chunks} chunks", exchanges=[ex] if problems else [])


@check("API-SSE-003")
def role_chunk(ctx: ApiContext) -> CheckResult:
    ex, ans = ctx.basic("chat", stream=True)
    if not ans.chunks:
        return _unsure(f"the stream carried no chunk ({ex.outcome()})", [ex])
    problems = rules.role_chunk(ans)
    return _count(problems, ok="no content in the role chunk", exchanges=[ex] if problems else [])


def _token_counts_unknown(ctx: ApiContext, api: str) -> str | None:
    refused = ctx.logprobs_refused(api)
    if refused is not None:
        return (f"the endpoint refuses logprobs ({refused.outcome()}), and without them the tokens of an "
                "answer cannot be counted independently of its own usage")
    return None


def _both(ctx: ApiContext, api: str, *, counted: bool = False) -> list[tuple[str, Exchange, rules.Answer]] | CheckResult:
    """The basic answer, plain and streamed, as ``[(where, exchange, answer)]``; an inconclusive result
    when one of them could not be read (or, ``counted``, when the endpoint refuses the logprobs that
    count their tokens)."""
    why = _token_counts_unknown(ctx, api) if counted else None
    if why:
        return _unsure(why)
    out = []
    for stream in (False, True):
        ex, ans = ctx.basic(api, stream)
        if not ans.ok:
            return _unsure(f"the {'streamed ' if stream else ''}answer could not be read: {ex.outcome()}", [ex])
        out.append(("stream" if stream else "plain", ex, ans))
    return out


@check("API-FIN-001", subjects=("chat", "completions"))
def finish_reasons(ctx: ApiContext, api: str) -> CheckResult:
    got = _both(ctx, api, counted=True)
    if isinstance(got, CheckResult):
        return got
    problems, seen = [], []
    for where, ex, ans in got:
        if any(c.n_tokens is None for c in ans.choices.values()):
            return _unsure("logprobs were asked for but an answer carried none: whether max_tokens was reached "
                           "cannot be told from its own finish_reason (see API-LOGP-001)", [ex])
        problems += [f"{where}: {p}" for p in rules.finish_reason(ans, ctx.max_tokens)]
        seen += [c.finish_reason for c in ans.choices.values()]
    stop = _stop_answers(ctx, api)
    if isinstance(stop, str):
        note = f"; the stop-sequence case could not be run ({stop})"
    else:
        for stream, (ex, ans) in stop.answers.items():
            for c in ans.choices.values():
                n = c.n_tokens
                if c.finish_reason == "length" and n is not None and n < _STOP_MAX:
                    problems.append(f"stop sequence, {'stream' if stream else 'plain'}: finish_reason 'length' "
                                    f"after {n} of {_STOP_MAX} tokens")
                seen.append(c.finish_reason)
        note = ""
    return _count(problems, ok=f"finish_reason {sorted(set(map(str, seen)))} as expected{note}")


@check("API-MAXTOK-001", subjects=("chat", "completions"))
def max_tokens(ctx: ApiContext, api: str) -> CheckResult:
    got = _both(ctx, api, counted=True)
    if isinstance(got, CheckResult):
        return got
    problems = [f"{where}: {p}" for where, _, ans in got for p in rules.max_tokens_rule(ans, ctx.max_tokens)]
    counts = [c.n_tokens for _, _, ans in got for c in ans.choices.values()]
    if any(n is None for n in counts):
        return _unsure("logprobs were asked for but an answer carried none: its tokens cannot be counted "
                       "(see API-LOGP-001)")
    return _count(problems, ok=f"{counts} tokens for max_tokens {ctx.max_tokens}")


@check("API-USAGE-001", subjects=("chat", "completions"))
def usage_present(ctx: ApiContext, api: str) -> CheckResult:
    got = _both(ctx, api)
    if isinstance(got, CheckResult):
        return got
    problems = [f"{where}: {p}" for where, _, ans in got for p in rules.usage_present(ans, expected=True)]
    return _count(problems, ok="usage in both answers, prompt + completion = total")


@check("API-USAGE-002", subjects=("chat", "completions"))
def usage_counts(ctx: ApiContext, api: str) -> CheckResult:
    why = _token_counts_unknown(ctx, api)
    if why:
        return _unsure(why)
    problems, judged = [], 0
    for stream in (False, True):
        _, ans = ctx.basic(api, stream)
        found, ok = rules.usage_count(ans)
        problems += [f"{'stream' if stream else 'plain'}: {p}" for p in found]
        judged += ok
    if not judged:
        return _unsure("no answer had both usage and logprobs to count its tokens (see API-USAGE-001, API-LOGP-001)")
    return _count(problems, ok=f"usage.completion_tokens = the tokens carried ({judged} answer(s))")


# --------------------------------------------------------------------------- sampling

_STOP_MAX = 16


@dataclass
class StopCase:
    """A stop-sequence request and what it must give: the greedy answer's text before ``stop``."""

    stop: str
    greedy: str
    expected: str
    answers: dict[bool, tuple[Exchange, rules.Answer]]   # streamed? -> (exchange, answer)


def _stop_answers(ctx: ApiContext, api: str) -> StopCase | str:
    """The stop-sequence case (plain and streamed), or why it cannot be asked.

    The stop string is 3 characters of the greedy answer (first occurring past its first third), so
    the expected answer is the greedy text before it."""
    def ask() -> StopCase | str:
        chat = api == "chat"
        base = ctx.body(api, stream=False, logprobs=ctx.logprobs_refused(api) is None, max_tokens=_STOP_MAX)
        ex = ctx.probe.post(APIS[api], base, label=f"{api}: greedy, max_tokens {_STOP_MAX} (for a stop string)")
        ans = rules.parse_answer(ex, chat=chat, stream=False)
        if not ans.ok or 0 not in ans.choices:
            return f"the greedy answer could not be read: {ex.outcome()}"
        text = ans.choices[0].text
        stop = _pick_stop(text)
        if stop is None:
            return f"the greedy answer {text[:60]!r} has no 3-character run to use as a stop string"
        answers = {}
        for stream in (False, True):
            body = dict(base, stop=[stop])
            if stream:
                body.update(stream=True, stream_options={"include_usage": True})
            sx = ctx.probe.post(APIS[api], body, label=f"{api}{' stream' if stream else ''}: stop {stop!r}")
            answers[stream] = (sx, rules.parse_answer(sx, chat=chat, stream=stream))
        return StopCase(stop=stop, greedy=text, expected=text[: text.index(stop)], answers=answers)

    return ctx.once(("stop", api), ask)


def _pick_stop(text: str) -> str | None:
    """A stop string from ``text``: 3 (else 2, else 4) printable characters without spaces that first
    occur past its first third (so the expected answer is not empty), letters and digits preferred."""
    start = max(1, len(text) // 3)
    for size in (3, 2, 4):
        for strict in (True, False):
            for i in range(start, len(text) - size + 1):
                s = text[i:i + size]
                if (all(ch.isalnum() for ch in s) if strict else all(ch.isprintable() and not ch.isspace() for ch in s)) \
                        and "\ufffd" not in s and text.find(s) == i:
                    return s
    return None


@check("API-STOP-001", subjects=("chat", "completions"))
def stop_sequences(ctx: ApiContext, api: str) -> CheckResult:
    got = _stop_answers(ctx, api)
    if isinstance(got, str):
        return _unsure(got)
    stop, expected = got.stop, got.expected
    problems, unsure = [], []
    for stream, (ex, ans) in got.answers.items():
        where = "stream" if stream else "plain"
        if not ans.ok or 0 not in ans.choices:
            problems.append(f"{where}: not answered ({ex.outcome()})")
            continue
        c = ans.choices[0]
        if stop in c.text:
            problems.append(f"{where}: the stop string {stop!r} was returned ({c.text[:60]!r})")
        elif c.text.startswith(expected) and len(c.text) > len(expected):
            problems.append(f"{where}: generation ran past the stop string ({c.text[:60]!r})")
        elif expected.startswith(c.text) and c.text != expected:
            problems.append(f"{where}: stopped before the stop string ({c.text!r}, expected {expected!r})")
        elif c.text != expected:
            unsure.append(f"{where}: the greedy answer changed between requests ({c.text[:40]!r} vs {expected[:40]!r})")
            continue
        if c.finish_reason != "stop" and stop not in c.text:
            problems.append(f"{where}: finish_reason {c.finish_reason!r} after a stop sequence (expected 'stop')")
    if unsure and not problems:
        return _unsure("; ".join(unsure) + " — greedy answers are not repeatable here (see API-SEED-001)")
    return _count(problems, ok=f"stop {stop!r} ended both answers before it, finish_reason stop")


def _n_answers(ctx: ApiContext):
    def ask():
        out = {}
        for stream in (False, True):
            body = {"model": ctx.model, "messages": [{"role": "user", "content": PROMPT}], "max_tokens": 4,
                    "temperature": 1.0, "n": 3}
            if stream:
                body.update(stream=True)
            ex = ctx.probe.post(CHAT, body, label=f"chat{' stream' if stream else ''}: n 3")
            out[stream] = (ex, rules.parse_answer(ex, chat=True, stream=stream))
        return out
    return ctx.once("n", ask)


def _n_refused(ex: Exchange) -> bool:
    return ex.status is not None and 400 <= ex.status < 500 and not rules.error_answer(ex)


@check("API-N-001")
def n_choices(ctx: ApiContext) -> CheckResult:
    got = _n_answers(ctx)
    refused = [ex for ex, _ in got.values() if _n_refused(ex)]
    if len(refused) == len(got):
        return _unsure(f"n > 1 is refused ({refused[0].outcome()}): see API-N-002", refused)
    problems = []
    for stream, (ex, ans) in got.items():
        where = "stream" if stream else "plain"
        if _n_refused(ex):
            problems.append(f"{where}: refused ({ex.outcome()}) although the other mode serves n = 3")
        elif not ans.ok:
            problems.append(f"{where}: {ex.outcome()}")
        else:
            problems += [f"{where}: {p}" for p in rules.n_choices(ans, 3)]
    return _count(problems, ok="3 choices indexed 0..2, each with a finish_reason, streamed and not")


@check("API-N-002")
def n_supported(ctx: ApiContext) -> CheckResult:
    got = _n_answers(ctx)
    refused = [ex for ex, _ in got.values() if _n_refused(ex)]
    if refused:
        return _figure(1, actual=f"n = 3 is refused: {refused[0].outcome()} {refused[0].text[:120]!r}",
                       findings=[{"exchanges": [e.to_dict(300) for e in refused]}])
    return _figure(0, actual="n = 3 is served", findings=[])


@check("API-SEED-001")
def determinism(ctx: ApiContext) -> CheckResult:
    problems, seen = [], {}
    for label, extra in (("temperature 0", {"temperature": 0}), ("seed 1234, temperature 1", {"temperature": 1.0, "seed": 1234})):
        answers = []
        for r in range(3):
            body = {"model": ctx.model, "messages": [{"role": "user", "content": PROMPT}], "max_tokens": 12, **extra}
            ex = ctx.probe.post(CHAT, body, label=f"chat: {label}, repeat {r + 1}")
            ans = rules.parse_answer(ex, chat=True, stream=False)
            if not ans.ok or 0 not in ans.choices:
                return _unsure(f"{label}: not answered ({ex.outcome()})", [ex])
            answers.append(ans.choices[0].text)
        seen[label] = answers
        if len(set(answers)) > 1:
            problems.append(f"{label}: {len(set(answers))} different answers in 3 repeats ({answers[0][:30]!r}, "
                            f"{next(a for a in answers if a != answers[0])[:30]!r})")
    return _count(problems, ok="the same answer on 3 repeats, greedy and seeded")


@check("API-LOGP-001", subjects=("chat", "completions"))
def logprobs_shape(ctx: ApiContext, api: str) -> CheckResult:
    refused = ctx.logprobs_refused(api)
    if refused is not None:
        return _unsure(f"the endpoint refuses logprobs ({refused.outcome()}): nothing to check", [refused])
    got = _both(ctx, api)
    if isinstance(got, CheckResult):
        return got
    problems = [f"{where}: {p}" for where, _, ans in got for p in rules.logprobs_shape(ans, k=ctx.top_logprobs)]
    return _count(problems, ok=f"one logprobs entry per token with {ctx.top_logprobs} alternatives")


# --------------------------------------------------------------------------- errors


def _error_check(ctx: ApiContext, label: str, body: dict[str, Any] | bytes, path: str = CHAT,
                 expect: tuple[int, ...] | None = None) -> CheckResult:
    ex = ctx.probe.post(path, body, label=label)
    problems = rules.error_answer(ex, expect=expect)
    return _count(problems, ok=f"{ex.outcome()} with an OpenAI error body", exchanges=[ex])


def _chat(ctx: ApiContext, **extra: Any) -> dict[str, Any]:
    return {"model": ctx.model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, **extra}


@check("API-ERR-001")
def malformed_json(ctx: ApiContext) -> CheckResult:
    body = ('{"model": "%s", "messages": [{"role": "user", "content": "hi"' % ctx.model).encode()
    return _error_check(ctx, "chat: a body cut in the middle of its JSON", body)


@check("API-ERR-002")
def missing_messages(ctx: ApiContext) -> CheckResult:
    return _error_check(ctx, "chat: no messages", {"model": ctx.model, "max_tokens": 4})


@check("API-ERR-003")
def negative_max_tokens(ctx: ApiContext) -> CheckResult:
    return _error_check(ctx, "chat: max_tokens -1", _chat(ctx, max_tokens=-1))


@check("API-ERR-004")
def unknown_model(ctx: ApiContext) -> CheckResult:
    return _error_check(ctx, "chat: a model that is not served",
                        _chat(ctx, model=f"{ctx.model}-not-served-by-this-endpoint"))


@check("API-ERR-005")
def context_overflow(ctx: ApiContext) -> CheckResult:
    words = 2 * ctx.context_len + 16 if ctx.context_len else 300_000
    body = _chat(ctx)
    body["messages"] = [{"role": "user", "content": "hello " * words}]
    ex = ctx.probe.post(CHAT, body, label=f"chat: a prompt of {words} words")
    if ex.ok and not ctx.context_len:
        return _unsure(f"a prompt of {words} words was answered and the endpoint does not say its context length "
                       "(/v1/models has no max_model_len): cannot tell an overflow from a long context", [ex])
    problems = rules.error_answer(ex)
    return _count(problems, ok=f"{ex.outcome()} with an OpenAI error body", exchanges=[ex])


@check("API-ERR-006")
def wrong_key(ctx: ApiContext) -> CheckResult:
    if not ctx.probe.uses_key:
        raise SkipCheck("the endpoint is used without an API key (no --api-key-env): no key to get wrong")
    ex = ctx.probe.post(CHAT, _chat(ctx), label="chat: a wrong API key", key="pytest-inference-wrong-key")
    if ex.status == 401:
        return _count([], ok="HTTP 401")
    problem = f"no answer ({ex.error})" if ex.status is None else f"HTTP {ex.status} for a wrong key, expected 401"
    return _count([problem], ok="", exchanges=[ex])


# --------------------------------------------------------------------------- robustness


def fuzz_send(ctx: ApiContext) -> Callable[[Any], str | None]:
    """The fuzzer's ``send``: post a case, say what broke (a 5xx, no answer, a broken stream) or None."""
    def send(case: Any) -> str | None:
        ex = ctx.probe.post(case.path, case.body, label=f"fuzz: {case.what}")
        if ex.status is None:
            return f"no answer: {ex.error}"
        if ex.status >= 500:
            return f"HTTP {ex.status}"
        if ex.ok and case.stream and ex.content_type == "text/event-stream":
            broken = rules.sse_framing(ex)
            if broken:
                return f"stream broken: {broken[0]}"
        return None
    return send


@check("API-ROB-001")
def fuzz(ctx: ApiContext) -> CheckResult:
    from . import fuzz as fuzzer

    send = fuzz_send(ctx)
    # the fixed cases first (a valid stream, an unknown field, a body that is not JSON), then hypothesis's
    fixed = _fixed_cases(ctx, fuzzer.FuzzCase)
    failures = []
    for case in fixed:
        problem = send(case)
        if problem:
            failures.append({"what": case.what, "path": case.path, "body": case.body[:300].decode("utf-8", "replace"),
                             "problem": problem})
    res = fuzzer.run(send, model=ctx.model, seed=int(ctx.fuzz.get("seed", 0)),
                     examples=int(ctx.fuzz.get("examples", 40)), max_s=float(ctx.fuzz.get("max_s", 60.0)),
                     max_tokens=4)
    details = res.details()
    all_failures = failures + list(res.failures)
    problems = [{"problem": f"{f['what']}: {f['problem']}", "body": f.get("body")} for f in all_failures]
    r = _count(problems, ok=f"{len(fixed) + res.tried} bodies ({res.valid} valid, {res.invalid} invalid, seed "
                            f"{res.seed}, stopped by {res.stopped}): no 5xx, no hang, no broken stream")
    r.findings.append({"fuzz": details, "fixed_cases": [c.what for c in fixed]})
    if res.minimal:
        r.actual += f"; smallest failing body: {str(res.minimal.get('body'))[:120]!r}"
    return r


def _fixed_cases(ctx: ApiContext, FuzzCase: Any) -> list[Any]:
    import json as _json

    def case(path, body, valid, stream, what):
        raw = body if isinstance(body, bytes) else _json.dumps(body).encode()
        return FuzzCase(path=path, body=raw, valid=valid, stream=stream, what=what)

    return [
        case(CHAT, _chat(ctx, stream=True, stream_options={"include_usage": True}), True, True, "valid chat stream"),
        case(COMPLETIONS, {"model": ctx.model, "prompt": "hi", "max_tokens": 4, "stream": True}, True, True,
             "valid completions stream"),
        case(CHAT, _chat(ctx, **{UNKNOWN_FIELD: {"a": [1, 2]}}), True, False, "an unknown top-level field"),
        case(CHAT, b'{"model": "x", "messages": [', False, False, "a body that is not JSON"),
    ]


@check("API-ROB-002", subjects=("chat", "completions"))
def unknown_field(ctx: ApiContext, api: str) -> CheckResult:
    body = ctx.body(api, stream=False, logprobs=False, max_tokens=4)
    body[UNKNOWN_FIELD] = True
    ex = ctx.probe.post(APIS[api], body, label=f"{api}: an unknown top-level field")
    if ex.status is None:
        return _count([f"no answer ({ex.error})"], ok="", exchanges=[ex])
    if ex.status >= 500:
        return _count([f"HTTP {ex.status} for an unknown field"], ok="", exchanges=[ex])
    return _count([], ok=f"HTTP {ex.status} ({'ignored' if ex.ok else 'refused'})")


def _stream_tokens(ctx: ApiContext, prompt: str, label: str) -> tuple[Exchange, list[str], list[str]]:
    lp = ctx.logprobs_refused("chat") is None
    body = {"model": ctx.model, "messages": [{"role": "user", "content": prompt}], "max_tokens": 12,
            "temperature": 0, "stream": True}
    if lp:
        body.update(logprobs=True, top_logprobs=1)
    ex = ctx.probe.post(CHAT, body, label=label)
    ans = rules.parse_answer(ex, chat=True, stream=True)
    toks = rules.token_sequence(ans.choices[0]) if 0 in ans.choices else []
    return ex, toks, sorted(set(ans.ids))


@check("API-CONC-001")
def concurrent_streams(ctx: ApiContext) -> CheckResult:
    solo = [_stream_tokens(ctx, p, f"chat stream: solo {i}")[1] for i, p in enumerate(CONC_PROMPTS)]
    again = [_stream_tokens(ctx, p, f"chat stream: solo {i} again")[1] for i, p in enumerate(CONC_PROMPTS)]
    if solo != again or not all(solo):
        return _unsure("the solo greedy answers are not repeatable (or empty): a mixed stream could not be told "
                       "from a changed answer (see API-SEED-001)")
    if len({tuple(s) for s in solo}) < len(solo):
        return _unsure("two prompts gave the same greedy answer: mixing could not be seen")
    results: list[Any] = [None] * len(CONC_PROMPTS)
    barrier = threading.Barrier(len(CONC_PROMPTS))

    def one(i: int) -> None:
        barrier.wait()
        results[i] = _stream_tokens(ctx, CONC_PROMPTS[i], f"chat stream: concurrent {i}")

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(len(CONC_PROMPTS))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(ctx.probe.timeout_s + 5)
    if any(r is None for r in results):
        return _unsure("a concurrent stream did not finish")
    problems = rules.foreign_tokens([r[1] for r in results], solo)
    ids = [i for r in results for i in r[2]]
    if len(ids) != len(set(ids)):
        problems.append("two concurrent streams carried the same id")
    return _count(problems, ok=f"{len(CONC_PROMPTS)} concurrent streams, each its own answer")


# --------------------------------------------------------------------------- metrics

#: the Model Server Protocol's gauges and the names each server exports them under
MSP_GAUGES = {
    "queued requests": ("vllm:num_requests_waiting", "sglang:num_queue_reqs", "tgi_queue_size"),
    "running requests": ("vllm:num_requests_running", "sglang:num_running_reqs", "tgi_batch_current_size"),
    "KV-cache usage": ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc", "sglang:token_usage"),
}


@check("API-MSP-001")
def msp_gauges(ctx: ApiContext) -> CheckResult:
    from ..engine import prometheus

    ex = ctx.probe.get("/metrics", label="GET /metrics", root=True)
    if not ex.ok:
        return _figure(len(MSP_GAUGES), actual=f"no /metrics: {ex.outcome()}; missing: {', '.join(MSP_GAUGES)}",
                       findings=[{"missing": list(MSP_GAUGES)}, {"exchanges": [ex.to_dict(300)]}])
    try:
        prometheus.parse(ex.text)
    except ValueError as exc:
        return _figure(len(MSP_GAUGES), actual=f"/metrics does not parse as Prometheus text: {str(exc)[:100]}",
                       findings=[{"missing": list(MSP_GAUGES)}])
    found, missing = {}, []
    for gauge, names in MSP_GAUGES.items():
        hit = next((n for n in names if prometheus.has_metric(ex.text, n)), None)
        if hit:
            found[gauge] = hit
        else:
            missing.append(gauge)
    actual = "found: " + (", ".join(f"{g} ({n})" for g, n in found.items()) or "none")
    if missing:
        actual += "; missing: " + ", ".join(missing)
    return _figure(len(missing), actual=actual, findings=[{"found": found, "missing": missing}])


# --------------------------------------------------------------------------- answers across hardware


def reference_comparison(ctx: ApiContext):
    """(comparison, None) of the endpoint's greedy answers with the reference's, or (None, why not)."""
    if ctx.reference is None:
        raise SkipCheck("no --reference FILE given (and the target names none): nothing to compare with")

    def ask():
        from .reference import ReferenceError, ask, compare

        ref = ctx.reference
        client = ctx.probe.client()
        try:
            answers = [ask(client, ctx.model, a.prompt, max_tokens=ref.max_tokens, top_logprobs=ref.top_logprobs)
                       for a in ref.answers]
        except ReferenceError as exc:
            return None, str(exc)
        finally:
            client.close()
        return compare(ref, answers), None
    return ctx.once("reference", ask)


@check("API-REF-001")
def greedy_token_match(ctx: ApiContext) -> CheckResult:
    cmp, why = reference_comparison(ctx)
    if cmp is None:
        return _unsure(f"the reference prompts could not be asked: {why}")
    diverged = [p for p in cmp.per_prompt if p.get("first_divergence") is not None]
    actual = f"{cmp.matched} of {cmp.prompts} prompts match the reference ({ctx.reference_path})"
    if diverged:
        actual += "; first divergence at " + ", ".join(f"prompt {p['prompt']}: token {p['first_divergence']}"
                                                      for p in diverged[:4])
    return _figure(cmp.match_fraction, actual=actual, findings=[cmp.details()])


@check("API-REF-002")
def logprob_diff(ctx: ApiContext) -> CheckResult:
    cmp, why = reference_comparison(ctx)
    if cmp is None:
        return _unsure(f"the reference prompts could not be asked: {why}")
    if cmp.max_abs_diff is None:
        return _unsure("no token matched the reference before its first divergence: no logprob to compare "
                       "(see API-REF-001)")
    return _figure(cmp.max_abs_diff, actual=f"largest |logprob difference| {cmp.max_abs_diff:.3g} over "
                   f"{len(cmp.samples)} matched tokens", findings=[cmp.details()])
