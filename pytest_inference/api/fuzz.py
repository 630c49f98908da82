"""The API suite's robustness fuzzer: request bodies generated with hypothesis, valid and invalid.

The claim it serves: no body — a well-formed request or garbage — makes an OpenAI-compatible
server answer 5xx, hang past a timeout or break a stream. :func:`cases` is the hypothesis strategy
of :class:`FuzzCase`; :func:`run` drives hypothesis's engine with a fixed seed (the same seed sends
the same bodies in the same order) and bounds both the number of examples and the time.

``send`` (the caller's) sends one case and returns None when the answer was fine, else a one-line
problem. :func:`run` makes two passes:

1. generation: up to ``examples`` cases, every problem recorded, none raised — so one failing kind
   of body does not hide the others; no case is sent once ``max_s`` has passed;
2. shrinking, when something failed: the same seed replays the first pass from a cache of answers
   (nothing is sent twice) up to its first failure, and hypothesis shrinks that body to the smallest
   one that still fails — at most :data:`MAX_SHRINK_SENDS` new requests, and none past ``max_s``,
   so the whole run stays within ``max_s`` plus one request's timeout.

``valid=True``: the OpenAI API accepts the body (vLLM too: kept within a 512-token context, n > 1
only with a sampling temperature, no empty stop string). ``valid=False``: the OpenAI API rejects it;
a lax server may still accept some (vLLM takes unknown roles and unknown fields) — the fuzz claim
asks only for no 5xx, no hang and no broken stream.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

CHAT = "/chat/completions"
COMPLETIONS = "/completions"

#: new requests the shrinking pass may send (each a round trip to the server)
MAX_SHRINK_SENDS = 40
#: failures kept in the result (the count of all of them is kept too)
MAX_FAILURES = 20
#: bytes of a body kept in a failure record
BODY_CHARS = 300
#: the bound on an invalid body's size (the deeply nested junk included)
MAX_INVALID_BYTES = 4096
#: the bound on a valid request's prompt text, all messages together (UTF-8 bytes: a byte-level
#: tokenizer makes at most one token per byte, so prompt + max_tokens stays inside a 512 context)
MAX_PROMPT_BYTES = 200
MAX_PROMPT_WORDS = 40

_WORDS = (
    "the a license software copy free source code of to and you may any work under terms "
    "hello world bonjour naïve café Grüße日本語 emoji 🙂 🚀 👩‍💻 ∑ λ \t \n"
).split(" ")


@dataclass(frozen=True)
class FuzzCase:
    """One request: the exact bytes sent to ``path`` (relative to the /v1 base URL)."""

    path: str
    body: bytes
    valid: bool
    stream: bool
    what: str


@dataclass
class FuzzResult:
    """What a fuzz run sent and what failed (``failures`` in the order seen, at most
    :data:`MAX_FAILURES`; ``failures_total`` counts them all)."""

    tried: int
    valid: int
    invalid: int
    stopped: str  # "examples" or "time"
    seed: int
    examples: int
    max_s: float
    failures: list[dict] = field(default_factory=list)
    minimal: dict | None = None
    failures_total: int = 0
    shrink_sends: int = 0
    elapsed_s: float = 0.0

    def details(self) -> dict:
        """JSON-safe: every field, for the report."""
        d = asdict(self)
        d["elapsed_s"] = round(self.elapsed_s, 3)
        return d


def parse_budget(text: str, option: str) -> int | float:
    """A positive budget from the command line: seconds (an option ending in ``-s``, ``seconds`` or
    ``time``) as a float, anything else (``--api-fuzz-examples``) as an int. Bad input is a ValueError
    of one line naming the option."""
    seconds = option.endswith(("-s", "seconds", "time"))
    s = str(text).strip()
    try:
        value: int | float = float(s) if seconds else int(s)
    except ValueError:
        try:
            float(s)
        except ValueError:
            raise ValueError(f"{option}: {text!r} is not a number") from None
        raise ValueError(f"{option}: {text!r} is not a whole number") from None
    if value != value or value == float("inf"):  # nan, inf
        raise ValueError(f"{option}: {text!r} is not a number")
    if value <= 0:
        raise ValueError(f"{option}: {text!r} must be > 0")
    return value


def make_case(path: str, body: bytes | dict | Any, *, valid: bool, what: str) -> FuzzCase:
    """A case from a body (a dict or any JSON value is serialised as UTF-8, raw bytes kept as they are);
    ``stream`` is read from the body as the server would."""
    if not isinstance(body, (bytes, bytearray)):
        body = json.dumps(body, ensure_ascii=False).encode("utf-8")
    stream = False
    try:
        obj = json.loads(body)
    except (ValueError, RecursionError):
        obj = None
    if isinstance(obj, dict) and obj.get("stream") is True:
        stream = True
    return FuzzCase(path=path, body=bytes(body), valid=valid, stream=stream, what=what)


def record_of(case: FuzzCase, problem: str | None = None) -> dict:
    """The failure record of a case: what, path, the body's first :data:`BODY_CHARS` characters
    (decoded with replacement: always printable JSON) and the problem."""
    text = case.body.decode("utf-8", "backslashreplace")
    if len(text) > BODY_CHARS:
        text = text[:BODY_CHARS] + f"... ({len(case.body)} bytes)"
    return {"what": case.what, "path": case.path, "body": text, "problem": problem}


# ---------------------------------------------------------------------------------------------- strategies
def cases(model: str, max_tokens: int = 8):
    """The hypothesis strategy of :class:`FuzzCase`: about half valid chat/completions requests, half
    invalid bodies of many kinds (see the module docstring)."""
    from hypothesis import strategies as st

    if not isinstance(max_tokens, int) or max_tokens < 1:
        raise ValueError(f"max_tokens: {max_tokens!r} must be an int >= 1")
    valid = (_valid_completion(model, max_tokens), _valid_chat(model, max_tokens))
    invalid = _invalid(model, max_tokens)

    @st.composite
    def either(draw) -> FuzzCase:
        # the kind from a wide integer: hypothesis draws those close to uniformly, where a one_of or a
        # sampled_from clumps (mutating earlier examples) and 200 examples missed whole kinds;
        # it shrinks towards 0: a valid completions request (the shortest bodies)
        k = draw(st.integers(0, 2**24 - 1))
        if k % 2 == 0:
            return draw(valid[(k // 2) % len(valid)])
        return draw(invalid[(k // 2) % len(invalid)])

    return either()


def _text(st, *, min_words: int = 0, max_words: int = 10):
    """Short text: words from a fixed list (ASCII, accents, CJK, emoji, tabs, newlines) or arbitrary
    characters (no lone surrogates: they cannot be encoded as UTF-8)."""
    word = st.one_of(
        st.sampled_from([w for w in _WORDS if w]),
        st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=6),
    )
    return st.lists(word, min_size=min_words, max_size=max_words).map(" ".join)


def _fit(texts: list[str]) -> list[str]:
    """Cut texts so that together they hold at most MAX_PROMPT_BYTES UTF-8 bytes and MAX_PROMPT_WORDS words."""
    out, room, words = [], MAX_PROMPT_BYTES, MAX_PROMPT_WORDS
    for t in texts:
        parts = t.split(" ")[: max(words, 0)]
        t = " ".join(parts)
        b = t.encode("utf-8")[: max(room, 0)].decode("utf-8", "ignore")
        out.append(b)
        room -= len(b.encode("utf-8"))
        words -= len(b.split())
    return out


def _sampling(draw, st, max_tokens: int, *, chat: bool) -> tuple[dict, list[str]]:
    """The optional sampling fields of a valid request and their short description."""
    body: dict[str, Any] = {}
    notes: list[str] = []
    key = "max_tokens"
    if chat and draw(st.booleans()):
        key = "max_completion_tokens"
    body[key] = draw(st.integers(1, max_tokens))
    n = draw(st.one_of(st.none(), st.integers(1, 3)))
    if n is not None:
        body["n"] = n
        if n > 1:
            notes.append(f"n={n}")
    if n is not None and n > 1:  # greedy sampling with n > 1 is refused (vLLM): a real temperature
        t = draw(st.one_of(st.none(), st.floats(0.1, 2.0)))
    else:
        t = draw(st.one_of(st.none(), st.floats(0.0, 2.0)))
    if t is not None:
        body["temperature"] = t
    if draw(st.booleans()):
        body["top_p"] = draw(st.floats(0.05, 1.0))
    stop = draw(st.one_of(st.none(), _text(st, min_words=1, max_words=2).filter(bool),
                          st.lists(_text(st, min_words=1, max_words=2).filter(bool), max_size=3)))
    if stop is not None:
        body["stop"] = stop
        notes.append("stop")
    if draw(st.booleans()):
        body["seed"] = draw(st.integers(0, 2**31 - 1))
    stream = draw(st.booleans())
    if stream or draw(st.booleans()):
        body["stream"] = stream
    if stream:
        notes.append("stream")
        if draw(st.booleans()):
            usage = draw(st.booleans())
            body["stream_options"] = {"include_usage": usage}
            if usage:
                notes.append("usage")
    if chat:
        lp = draw(st.one_of(st.none(), st.booleans()))
        if lp is not None:
            body["logprobs"] = lp
            if lp:
                notes.append("logprobs")
                if draw(st.booleans()):
                    body["top_logprobs"] = draw(st.integers(0, 5))
    else:
        lp = draw(st.one_of(st.none(), st.integers(0, 5)))
        if lp is not None:
            body["logprobs"] = lp
            notes.append(f"logprobs={lp}")
    return body, notes


def _valid_chat(model: str, max_tokens: int):
    from hypothesis import strategies as st

    @st.composite
    def build(draw) -> FuzzCase:
        system = draw(st.one_of(st.none(), _text(st)))
        turns = draw(st.integers(0, 2))  # (user, assistant) pairs before the last user message
        texts = ([system] if system is not None else []) + [draw(_text(st)) for _ in range(2 * turns + 1)]
        texts = _fit(texts)
        messages = []
        if system is not None:
            messages.append({"role": "system", "content": texts.pop(0)})
        for i, t in enumerate(texts):
            messages.append({"role": "user" if i % 2 == 0 else "assistant", "content": t})
        body: dict[str, Any] = {"model": model, "messages": messages}
        extra, notes = _sampling(draw, st, max_tokens, chat=True)
        body.update(extra)
        return make_case(CHAT, body, valid=True, what=", ".join(["valid chat", f"{len(messages)} msg", *notes]))

    return build()


def _valid_completion(model: str, max_tokens: int):
    from hypothesis import strategies as st

    @st.composite
    def build(draw) -> FuzzCase:
        prompt = _fit([draw(_text(st, min_words=1))])[0]
        if not prompt:
            prompt = "hello"
        body: dict[str, Any] = {"model": model, "prompt": prompt}
        extra, notes = _sampling(draw, st, max_tokens, chat=False)
        body.update(extra)
        return make_case(COMPLETIONS, body, valid=True, what=", ".join(["valid completions", *notes]))

    return build()


#: per field: values of a wrong type that a lax (pydantic) server cannot coerce either
_WRONG_TYPES: dict[str, tuple] = {
    "model": (5, ["m"], {"name": "m"}),
    "messages": ("hello", 5, {"role": "user", "content": "hi"}),
    "prompt": (5.5, {"text": "hi"}, [None]),
    "max_tokens": ("eight", 2.5, [8], {"n": 8}),
    "max_completion_tokens": ("eight", 2.5, [8]),
    "temperature": ("hot", [0.5], {"t": 1}),
    "top_p": ("most", [0.9]),
    "n": ("two", 1.5, [2]),
    "stream": ("maybe", 2, [True], {"on": True}),
    "stop": (5, 1.5, [1, 2], {"s": "x"}),
    "seed": ("abc", 1.5, [1]),
    "logprobs": ("many", [1], {"k": 1}),
    "top_logprobs": ("three", 1.5, [3]),
    "stream_options": ("usage", [True], 3),
}


def _invalid(model: str, max_tokens: int) -> tuple:
    """One strategy per kind of invalid body."""
    from hypothesis import strategies as st

    base = st.one_of(_valid_chat(model, max_tokens), _valid_completion(model, max_tokens))

    def obj(case: FuzzCase) -> dict:
        return json.loads(case.body)

    @st.composite
    def truncated(draw) -> FuzzCase:
        c = draw(base)
        k = draw(st.integers(0, len(c.body) - 1))
        return make_case(c.path, c.body[:k], valid=False, what=f"truncated JSON ({k} of {len(c.body)} bytes)")

    @st.composite
    def garbage(draw) -> FuzzCase:
        path = draw(st.sampled_from([CHAT, COMPLETIONS]))
        data = draw(st.binary(min_size=1, max_size=64))
        return make_case(path, data, valid=False, what="random bytes")

    @st.composite
    def not_utf8(draw) -> FuzzCase:
        c = draw(base)
        bad = draw(st.sampled_from([b"\xff\xfe", b"\xc3\x28", b"\xed\xa0\x80", b"\x80"]))
        body = c.body.replace(b'"model": "', b'"model": "' + bad, 1)
        return make_case(c.path, body, valid=False, what=f"not UTF-8 ({bad!r} in a string)")

    @st.composite
    def not_object(draw) -> FuzzCase:
        path = draw(st.sampled_from([CHAT, COMPLETIONS]))
        value = draw(st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=20),
                               st.lists(st.integers(), max_size=5), st.just([{"model": model}])))
        return make_case(path, value, valid=False, what=f"JSON but not an object ({type(value).__name__})")

    @st.composite
    def wrong_type(draw) -> FuzzCase:
        c = draw(base)
        body = obj(c)
        name = draw(st.sampled_from(sorted(k for k in body if k in _WRONG_TYPES)))
        value = draw(st.sampled_from(_WRONG_TYPES[name]))
        body[name] = value
        return make_case(c.path, body, valid=False, what=f"wrong type: {name}={_short(value)}")

    @st.composite
    def out_of_range(draw) -> FuzzCase:
        c = draw(base)
        body = obj(c)
        name, value = draw(st.sampled_from([
            ("max_tokens", -3), ("max_tokens", 0), ("max_tokens", 10**9), ("max_tokens", -(2**63)),
            ("max_tokens", 2**64), ("n", 0), ("n", -1), ("n", 10**9), ("temperature", -1),
            ("temperature", 100), ("temperature", "hot"), ("top_p", 0), ("top_p", -0.5), ("top_p", 2),
            ("seed", 2**70),
        ]))
        if name == "max_tokens":
            body.pop("max_completion_tokens", None)
        body[name] = value
        if name == "n" and value != 0:
            body.setdefault("temperature", 1.0)
        return make_case(c.path, body, valid=False, what=f"{name}={_short(value)}")

    @st.composite
    def bad_messages(draw) -> FuzzCase:
        c = draw(_valid_chat(model, max_tokens))
        body = obj(c)
        kind = draw(st.sampled_from(["role", "empty", "null", "nested", "content"]))
        if kind == "role":
            role = draw(st.sampled_from(["robot", "", "SYSTEM", "user ", "🙂"]))
            body["messages"][-1]["role"] = role
            what = f"unknown role {role!r}"
        elif kind == "empty":
            body["messages"], what = [], "messages=[]"
        elif kind == "null":
            body["messages"], what = None, "messages=null"
        elif kind == "nested":
            body["messages"], what = [["user", "hi"]], "messages nested wrong (a list of lists)"
        else:
            body["messages"][-1]["content"] = {"nested": [{"x": 1}]}
            what = "message content of a wrong shape"
        return make_case(CHAT, body, valid=False, what=what)

    @st.composite
    def unknown_field(draw) -> FuzzCase:
        c = draw(base)
        body = obj(c)
        name = "x_" + draw(st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12))
        body[name] = draw(st.one_of(st.integers(), st.text(max_size=10), st.booleans(), st.none()))
        return make_case(c.path, body, valid=False, what=f"unknown field {name!r}")

    @st.composite
    def deep_junk(draw) -> FuzzCase:
        c = draw(base)
        head = c.body[:-1] + b', "junk": '
        room = MAX_INVALID_BYTES - len(head) - 1
        shape = draw(st.sampled_from(["list", "dict"]))
        unit = 2 if shape == "list" else 7  # '[' + ']'  or  '{"a":' + '}'
        depth = draw(st.integers(1, max(1, room // unit)))
        junk = (b"[" * depth + b"]" * depth) if shape == "list" else (b'{"a": ' * depth + b"1" + b"}" * depth)
        body = head + junk + b"}"
        return make_case(c.path, body[:MAX_INVALID_BYTES], valid=False, what=f"deeply nested junk ({shape}, depth {depth})")

    @st.composite
    def stop_number(draw) -> FuzzCase:
        c = draw(base)
        body = obj(c)
        body["stop"] = draw(st.sampled_from([5, 0, -1.5, 10**20]))
        return make_case(c.path, body, valid=False, what=f"stop={_short(body['stop'])} (a number)")

    @st.composite
    def other_model(draw) -> FuzzCase:
        c = draw(base)
        body = obj(c)
        name = draw(st.one_of(st.just("not-" + model), st.text(min_size=0, max_size=12)).filter(lambda s: s != model))
        body["model"] = name
        return make_case(c.path, body, valid=False, what=f"model not served ({_short(name)})")

    @st.composite
    def wrong_endpoint(draw) -> FuzzCase:
        c = draw(base)
        path = COMPLETIONS if c.path == CHAT else CHAT
        return make_case(path, c.body, valid=False, what=f"a {c.path} body sent to {path}")

    return (truncated(), garbage(), not_utf8(), not_object(), wrong_type(), out_of_range(), bad_messages(),
            unknown_field(), deep_junk(), stop_number(), other_model(), wrong_endpoint())


def _short(value: Any) -> str:
    s = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else repr(value)
    return s if len(s) <= 24 else s[:21] + "..."


# ---------------------------------------------------------------------------------------------- the run
class _Problem(Exception):
    """A server problem hypothesis should shrink (raised from one place: one bug)."""

    def __init__(self, case: FuzzCase, problem: str) -> None:
        super().__init__(problem)
        self.case, self.problem = case, problem


class _TimeUp(Exception):
    """Ends the generation pass (no shrink phase there: hypothesis stops at once)."""


def run(send: Callable[[FuzzCase], str | None], *, model: str, seed: int, examples: int, max_s: float,
        max_tokens: int = 8) -> FuzzResult:
    """Send up to ``examples`` generated cases through ``send`` within ``max_s`` seconds, then shrink the
    first failure (see the module docstring). Never raises for a server's problem: returns the result."""
    from hypothesis import HealthCheck, Phase, Verbosity, given, settings
    from hypothesis import seed as hseed

    t0 = time.monotonic()
    res = FuzzResult(tried=0, valid=0, invalid=0, stopped="examples", seed=seed, examples=examples,
                     max_s=float(max_s))
    answers: dict[tuple[str, bytes], str | None] = {}
    strategy = cases(model, max_tokens)

    def over_time() -> bool:
        return time.monotonic() - t0 >= max_s

    def send_once(case: FuzzCase) -> str | None:
        res.tried += 1
        if case.valid:
            res.valid += 1
        else:
            res.invalid += 1
        problem = send(case)
        problem = None if problem is None else (" ".join(str(problem).split()) or "problem")
        answers[(case.path, case.body)] = problem
        return problem

    def generate(case: FuzzCase) -> None:
        if over_time():
            res.stopped = "time"
            raise _TimeUp()
        key = (case.path, case.body)
        problem = answers[key] if key in answers else send_once(case)
        if problem is not None:
            res.failures_total += 1
            if len(res.failures) < MAX_FAILURES:
                res.failures.append(record_of(case, problem))

    broken: list[BaseException] = []  # send itself raised while shrinking (hypothesis would hide it)

    def shrink(case: FuzzCase) -> None:
        key = (case.path, case.body)
        if key in answers:
            problem = answers[key]
        elif broken or res.shrink_sends >= MAX_SHRINK_SENDS or over_time():
            return  # out of budget: counts as passing, so the shrinker settles on what it has
        else:
            res.shrink_sends += 1
            try:
                problem = send_once(case)
            except Exception as e:
                broken.append(e)
                return
        if problem is not None:
            raise _Problem(case, problem)

    def drive(body: Callable[[FuzzCase], None], phases: tuple) -> BaseException | None:
        test = hseed(seed)(settings(
            max_examples=examples, deadline=None, database=None, derandomize=False, phases=phases,
            suppress_health_check=list(HealthCheck), report_multiple_bugs=False,
            verbosity=Verbosity.quiet, print_blob=False,
        )(given(strategy)(body)))
        try:
            test()
        except Exception as e:  # hypothesis's outcome: the shrunk failure, Flaky, _TimeUp, ...
            return e
        return None

    outcome = drive(generate, (Phase.generate,))
    if outcome is not None and not isinstance(outcome, _TimeUp):
        raise outcome  # a bug of this module (or of send): not a server's problem
    if res.failures_total and not over_time():
        outcome = drive(shrink, (Phase.generate, Phase.shrink))
        if broken:
            raise broken[0]  # send itself failed (a caller's bug), not a server's problem
        found = _first_problem(outcome)
        if found is not None:
            res.minimal = record_of(found.case, found.problem)
        elif outcome is not None and not type(outcome).__module__.startswith("hypothesis"):
            raise outcome  # send itself failed (a caller's bug), not a server's problem
    if res.failures_total and res.minimal is None:  # shrinking could not run or reproduce: the smallest seen
        res.minimal = dict(min(res.failures, key=lambda f: len(f["body"])))
    res.elapsed_s = time.monotonic() - t0
    return res


def _first_problem(e: BaseException | None) -> _Problem | None:
    """The :class:`_Problem` inside hypothesis's outcome (itself, a cause, or in a group)."""
    seen = 0
    while e is not None and seen < 10:
        seen += 1
        if isinstance(e, _Problem):
            return e
        if isinstance(e, BaseExceptionGroup):
            for sub in e.exceptions:
                p = _first_problem(sub)
                if p is not None:
                    return p
            return None
        e = e.__cause__ or e.__context__
    return None
