"""Workloads: what a load run sends, reproducibly, with a content hash for the report.

Three kinds, each parsed from a ``--workload`` value by :func:`parse_workload`::

    synthetic:input=lognormal(512,0.5),output=220,n=200,seed=1
    prefix:prefix=1000,input=200,output=64,n=50,seed=3
    file:requests.jsonl

* **synthetic**: ``n`` prompts whose input length follows ``input`` — ``fixed`` (a bare integer
  or ``fixed(N)``), ``uniform(a,b)`` (integers, both ends included) or ``lognormal(median,sigma)``
  (``round(median·exp(sigma·Z))``, at least 1) — and ``max_tokens`` from ``output`` (same grammar);
  ``ignore_eos`` on (``ignore_eos=0`` turns it off), so the output length is the one asked.
* **prefix**: ``n`` prompts sharing one common prefix of ``prefix`` tokens, each followed by a
  distinct suffix of ``input`` tokens (any length grammar) — for prefix-cache workloads.
  Request *i*'s suffix starts with a word sequence unique to *i*, so no two prompts share more
  than the prefix.
* **file**: a user's JSONL file, one request a line: ``{"prompt": "..."}`` or
  ``{"messages": [...]}``, optional ``"max_tokens"`` (a positive integer). Blank lines are
  skipped. Errors are one line naming the file and the line. Prompt lengths are unknown
  (``Request.input_tokens`` is None): only the server counts them.

Lengths are in **server-counted tokens**, under this assumption (documented, and checked at run
time by :func:`check_prompt_lengths` against ``usage.prompt_tokens``): the text is built from
:data:`WORDS`, common lowercase English words each of which is *one* token when preceded by a
space for byte-level BPE tokenizers (GPT-2, cl100k/o200k, Llama-3, Qwen2 — their pre-tokenizers
split on word boundaries, so words never merge) and for sentencepiece Llama/Mistral vocabularies
(``▁word``); the first word comes from :data:`FIRST_WORDS`, one token also without the space.
All 100 were checked against the embedded tiny model's 2048-token BPE. A prompt of *n* words is
therefore *n* tokens of content; a chat template adds a constant per request (role headers,
BOS, a system preamble), passed to the check as ``overhead`` (:func:`prompt_overhead` measures it
from two calibration lengths). A tokenizer for which the assumption fails shows up as a slope
≠ 1 there and as a failed check, never as a silently wrong length.

Randomness: one ``random.Random(seed)`` per workload, using only ``random()`` (Mersenne Twister,
the same stream on every CPython) and our own transforms, so the requests — and the
:attr:`Workload.content_hash` (sha256 of the canonical JSON of the requests) — are the same on
every machine and Python version for a given kind, parameters and seed.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple, Sequence

from pytest_inference.settings import MAX_REQUESTS

if TYPE_CHECKING:  # the engine is imported when specs() is called
    from pytest_inference.engine.results import RequestSpec

#: one token each after a space (see the module docstring), 100 words
WORDS: tuple[str, ...] = (
    "the", "of", "and", "to", "in", "is", "that", "for", "it", "as", "with", "be", "on", "not", "by",
    "this", "are", "or", "from", "at", "an", "which", "you", "all", "any", "have", "may", "such",
    "under", "other", "use", "work", "we", "he", "they", "was", "would", "will", "can", "one", "two",
    "has", "but", "if", "no", "so", "do", "more", "some", "time", "new", "also", "its", "their",
    "these", "those", "than", "them", "then", "there", "when", "where", "what", "who", "how", "each",
    "only", "into", "out", "up", "after", "same", "must", "make", "made", "part", "used", "law",
    "software", "license", "program", "code", "terms", "source", "copy", "free", "public", "general",
    "notice", "right", "rights", "works", "file", "files", "date", "form", "way", "case", "without",
    "within",
)
#: one token each also at the very start of a text (no space before them)
FIRST_WORDS: tuple[str, ...] = (
    "the", "of", "and", "to", "in", "is", "that", "for", "it", "as", "with", "be", "on", "not", "by",
    "this", "are", "or", "at", "an", "which", "you", "all", "any", "such", "under", "other", "use",
    "work", "he", "one", "if", "no", "so", "out", "software", "license", "program", "copy", "free",
    "right", "form",
)

#: the largest length a distribution may ask for (a typo guard: 10M tokens is no prompt)
MAX_LENGTH = 10_000_000
KINDS = ("synthetic", "prefix", "file")


# ---------------------------------------------------------------------------------
# length distributions


@dataclass(frozen=True)
class Lengths:
    """A distribution of token counts: ``fixed`` (a), ``uniform`` (a..b) or ``lognormal``
    (median a, sigma b)."""

    kind: str
    a: float
    b: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in ("fixed", "uniform", "lognormal"):
            raise ValueError(f"length distribution must be fixed, uniform or lognormal, not {self.kind!r}")
        if self.kind == "fixed" and not (1 <= self.a <= MAX_LENGTH and self.a == int(self.a)):
            raise ValueError(f"fixed length must be an integer in 1..{MAX_LENGTH}, not {self.a:g}")
        if self.kind == "uniform":
            if not (self.a == int(self.a) and self.b == int(self.b) and 1 <= self.a <= self.b <= MAX_LENGTH):
                raise ValueError(f"uniform(a,b) needs integers 1 <= a <= b <= {MAX_LENGTH}, "
                                 f"not ({self.a:g},{self.b:g})")
        if self.kind == "lognormal":
            if not (1 <= self.a <= MAX_LENGTH) or not (0 <= self.b <= 5) or not math.isfinite(self.b):
                raise ValueError(f"lognormal(median,sigma) needs 1 <= median <= {MAX_LENGTH} and 0 <= sigma <= 5, "
                                 f"not ({self.a:g},{self.b:g})")

    def sample(self, rng: random.Random) -> int:
        if self.kind == "fixed":
            return int(self.a)
        if self.kind == "uniform":
            lo, hi = int(self.a), int(self.b)
            return min(hi, lo + int(rng.random() * (hi - lo + 1)))
        # Box-Muller from random() only (normalvariate's algorithm is not ours to pin)
        u1 = 1.0 - rng.random()  # (0, 1]
        u2 = rng.random()
        z = math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)
        return max(1, min(MAX_LENGTH, round(self.a * math.exp(self.b * z))))

    def describe(self) -> str:
        if self.kind == "fixed":
            return str(int(self.a))
        if self.kind == "uniform":
            return f"uniform({int(self.a)},{int(self.b)})"
        return f"lognormal({_num(self.a)},{_num(self.b)})"


def _num(x: float) -> str:
    """Exact and short: 512 → "512", 0.5 → "0.5" (repr round-trips every float)."""
    return str(int(x)) if x == int(x) else repr(float(x))


_DIST = re.compile(r"^\s*(fixed|uniform|lognormal)\s*\(\s*([^,()]*?)\s*(?:,\s*([^,()]*?)\s*)?\)\s*$")


def parse_lengths(text: str, what: str = "length") -> Lengths:
    """``220`` / ``fixed(220)`` / ``uniform(100,300)`` / ``lognormal(512,0.5)`` → :class:`Lengths`."""
    s = str(text).strip()
    if re.fullmatch(r"\d+", s):
        return _lengths(what, text, "fixed", float(int(s)))
    m = _DIST.match(s)
    if not m:
        raise ValueError(f"{what} {text!r} is not N, fixed(N), uniform(a,b) or lognormal(median,sigma)")
    kind, a, b = m.group(1), m.group(2), m.group(3)
    try:
        fa = float(a)
        fb = float(b) if b is not None else None
    except ValueError:
        raise ValueError(f"{what} {text!r}: {a!r}{'' if b is None else ', ' + repr(b)} must be numbers") from None
    if kind == "fixed":
        if fb is not None:
            raise ValueError(f"{what} {text!r}: fixed takes one number")
        return _lengths(what, text, "fixed", fa)
    if fb is None:
        raise ValueError(f"{what} {text!r}: {kind} takes two numbers")
    if not (math.isfinite(fa) and math.isfinite(fb)):
        raise ValueError(f"{what} {text!r}: numbers must be finite")
    return _lengths(what, text, kind, fa, fb)


def _lengths(what: str, text: str, kind: str, a: float, b: float = 0.0) -> Lengths:
    try:
        return Lengths(kind, a, b)
    except ValueError as e:
        raise ValueError(f"{what} {text!r}: {e}") from None


# ---------------------------------------------------------------------------------
# text with a known token count


def _unique_words(i: int) -> list[str]:
    """Three words encoding ``i`` in base len(WORDS) (1,000,000 distinct sequences)."""
    v = len(WORDS)
    return [WORDS[(i // v ** k) % v] for k in (2, 1, 0)]


def make_text(n: int, rng: random.Random, *, start: bool = True, unique: int | None = None) -> str:
    """``n`` words (``n`` tokens under the module's assumption). ``start``: the text begins a prompt
    (first word from FIRST_WORDS, no leading space); else it continues one (leading space).
    ``unique``: words 2–4 (or 1–3 when not ``start``) encode this index."""
    if n <= 0:
        return ""
    words: list[str] = []
    if start:
        words.append(FIRST_WORDS[int(rng.random() * len(FIRST_WORDS))])
    if unique is not None:
        words.extend(_unique_words(unique))
    while len(words) < n:
        words.append(WORDS[int(rng.random() * len(WORDS))])
    text = " ".join(words[:n])
    return text if start else " " + text


# ---------------------------------------------------------------------------------
# the workload


@dataclass(frozen=True)
class Request:
    """One request of a workload: ``prompt`` or ``messages``; ``input_tokens`` is the content's
    token count when the workload built it (None for a user's file)."""

    prompt: str | None = None
    messages: tuple[dict[str, Any], ...] | None = None
    max_tokens: int | None = None
    input_tokens: int | None = None

    def canonical(self) -> dict[str, Any]:
        d: dict[str, Any] = {}
        if self.messages is not None:
            d["messages"] = list(self.messages)
        else:
            d["prompt"] = self.prompt
        if self.max_tokens is not None:
            d["max_tokens"] = self.max_tokens
        return d


def _hash(requests: Sequence[Request], ignore_eos: bool) -> str:
    doc = {"ignore_eos": ignore_eos, "requests": [r.canonical() for r in requests]}
    raw = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Workload:
    """What a run sends. ``kind`` is synthetic / prefix / file; ``params`` what built it (as
    parsed); ``seed`` None for a file. ``content_hash``: sha256 of the canonical requests (and
    ``ignore_eos``), the same for the same content whatever built it."""

    kind: str
    params: dict[str, Any]
    seed: int | None
    requests: tuple[Request, ...]
    ignore_eos: bool = True
    content_hash: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "requests", tuple(self.requests))
        if not self.requests:
            raise ValueError(f"{self.kind} workload has no requests")
        object.__setattr__(self, "content_hash", _hash(self.requests, self.ignore_eos))

    def __len__(self) -> int:
        return len(self.requests)

    @property
    def input_tokens(self) -> list[int | None]:
        """Asked content tokens per request (None where unknown: a user's file)."""
        return [r.input_tokens for r in self.requests]

    @property
    def output_tokens(self) -> list[int | None]:
        """``max_tokens`` per request (None: the caller's default)."""
        return [r.max_tokens for r in self.requests]

    def specs(self, model: str, api: str = "chat", *, max_tokens: int | None = None,
              **spec_kw: Any) -> "list[RequestSpec]":
        """The requests as :class:`~pytest_inference.engine.RequestSpec`. ``max_tokens``: for a
        request that names none (a user's file; None leaves it to the server — with ignore_eos
        that is the context limit, so the suite passes its ``--max-tokens``). ``spec_kw``: any
        other RequestSpec field (temperature, headers, extra_body...)."""
        from pytest_inference.engine.results import RequestSpec

        if api not in ("chat", "completions"):
            raise ValueError(f"api must be 'chat' or 'completions', not {api!r}")
        out = []
        for i, r in enumerate(self.requests):
            mt = r.max_tokens if r.max_tokens is not None else max_tokens
            if r.messages is not None:
                if api != "chat":
                    where = self.params.get("path", self.kind)
                    raise ValueError(f"{where}: request {i + 1} has messages, which only api=chat can send")
                out.append(RequestSpec(model=model, prompt="", messages=[dict(m) for m in r.messages],
                                       max_tokens=mt, api=api, ignore_eos=self.ignore_eos, **spec_kw))
            else:
                out.append(RequestSpec(model=model, prompt=r.prompt or "", max_tokens=mt, api=api,
                                       ignore_eos=self.ignore_eos, **spec_kw))
        return out

    def to_jsonl(self, path: str | os.PathLike[str]) -> None:
        """Write the requests as a JSONL file :func:`load_jsonl` reads back with the same content
        hash (for the report folder, or to replay the exact workload with another tool)."""
        with open(path, "w", encoding="utf-8") as f:
            for r in self.requests:
                f.write(json.dumps(r.canonical(), ensure_ascii=False) + "\n")

    def describe(self) -> dict[str, Any]:
        """For the report: kind, parameters, seed, hash, count and the asked lengths' range."""
        d: dict[str, Any] = {"kind": self.kind, "params": dict(self.params), "seed": self.seed,
                             "content_hash": self.content_hash, "requests": len(self.requests),
                             "ignore_eos": self.ignore_eos}
        ins = [x for x in self.input_tokens if x is not None]
        outs = [x for x in self.output_tokens if x is not None]
        if ins:
            d["input_tokens"] = {"min": min(ins), "max": max(ins), "mean": sum(ins) / len(ins),
                                 "total": sum(ins)}
        if outs:
            d["output_tokens"] = {"min": min(outs), "max": max(outs), "mean": sum(outs) / len(outs),
                                  "total": sum(outs)}
        if self.kind == "prefix":
            d["prefix_tokens"] = self.params["prefix"]
        return d


def synthetic(input: Lengths | str, output: Lengths | str | int, n: int, seed: int = 0,
              ignore_eos: bool = True) -> Workload:
    """``n`` prompts with input lengths from ``input`` and max_tokens from ``output``."""
    ins = input if isinstance(input, Lengths) else parse_lengths(str(input), "input")
    outs = output if isinstance(output, Lengths) else parse_lengths(str(output), "output")
    _check_n_seed(n, seed)
    rng = random.Random(seed)
    reqs = []
    for i in range(n):
        k = ins.sample(rng)
        m = outs.sample(rng)
        reqs.append(Request(prompt=make_text(k, rng, unique=i), max_tokens=m, input_tokens=k))
    return Workload("synthetic", {"input": ins.describe(), "output": outs.describe(), "n": n}, seed, reqs,
                    ignore_eos)


def shared_prefix(prefix: int, input: Lengths | str | int, output: Lengths | str | int, n: int,
                  seed: int = 0, ignore_eos: bool = True) -> Workload:
    """``n`` prompts: one common prefix of ``prefix`` tokens, then a distinct suffix per request."""
    if not isinstance(prefix, int) or isinstance(prefix, bool) or not 1 <= prefix <= MAX_LENGTH:
        raise ValueError(f"prefix must be an integer in 1..{MAX_LENGTH}, not {prefix!r}")
    ins = input if isinstance(input, Lengths) else parse_lengths(str(input), "input")
    outs = output if isinstance(output, Lengths) else parse_lengths(str(output), "output")
    _check_n_seed(n, seed)
    rng = random.Random(seed)
    head = make_text(prefix, rng)
    reqs = []
    for i in range(n):
        k = ins.sample(rng)
        m = outs.sample(rng)
        reqs.append(Request(prompt=head + make_text(k, rng, start=False, unique=i), max_tokens=m,
                            input_tokens=prefix + k))
    return Workload("prefix", {"prefix": prefix, "input": ins.describe(), "output": outs.describe(), "n": n},
                    seed, reqs, ignore_eos)


def _check_n_seed(n: Any, seed: Any) -> None:
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_REQUESTS:
        raise ValueError(f"n must be an integer in 1..{MAX_REQUESTS}, not {n!r}")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ValueError(f"seed must be an integer, not {seed!r}")


def load_jsonl(path: str | os.PathLike[str], ignore_eos: bool = True) -> Workload:
    """A user's JSONL file as a workload; a bad file or line is one ValueError line naming both."""
    p = os.fspath(path)
    try:
        with open(p, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        raise ValueError(f"workload file {p}: no such file") from None
    except IsADirectoryError:
        raise ValueError(f"workload file {p}: is a directory") from None
    except UnicodeDecodeError as e:
        raise ValueError(f"workload file {p}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise ValueError(f"workload file {p}: {e.strerror or e}") from None
    reqs: list[Request] = []
    from .supervise import json_object_lines

    for no, obj in json_object_lines(lines, p, "a request must be"):
        where = f"{p}:{no}"
        has_p, has_m = "prompt" in obj, "messages" in obj
        if not has_p and not has_m:
            raise ValueError(f"{where}: no \"prompt\" or \"messages\"")
        if has_p and has_m:
            raise ValueError(f"{where}: both \"prompt\" and \"messages\"; give one")
        mt = obj.get("max_tokens")
        if "max_tokens" in obj and (not isinstance(mt, int) or isinstance(mt, bool) or mt < 1):
            raise ValueError(f"{where}: max_tokens must be a positive integer, not {json.dumps(mt)}")
        if has_p:
            if not isinstance(obj["prompt"], str) or not obj["prompt"]:
                raise ValueError(f"{where}: \"prompt\" must be a non-empty string")
            reqs.append(Request(prompt=obj["prompt"], max_tokens=mt))
        else:
            msgs = obj["messages"]
            if (not isinstance(msgs, list) or not msgs
                    or not all(isinstance(m, dict) and isinstance(m.get("role"), str) and "content" in m
                               for m in msgs)):
                raise ValueError(f"{where}: \"messages\" must be a non-empty list of "
                                 "{\"role\": ..., \"content\": ...} objects")
            reqs.append(Request(messages=tuple(msgs), max_tokens=mt))
        if len(reqs) > MAX_REQUESTS:
            raise ValueError(f"workload file {p}: more than {MAX_REQUESTS} requests")
    if not reqs:
        raise ValueError(f"workload file {p}: empty (no request lines)")
    return Workload("file", {"path": p}, None, reqs, ignore_eos)


# ---------------------------------------------------------------------------------
# --workload


_INT_RE = re.compile(r"^-?\d+$")


def _split_params(body: str, spec: str) -> dict[str, str]:
    """``a=1,b=f(2,3)`` → {a: 1, b: f(2,3)} (commas inside parentheses belong to the value)."""
    out: dict[str, str] = {}
    depth, cur, parts = 0, "", []
    for ch in body:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise ValueError(f"--workload {spec!r}: unbalanced ')'")
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if depth:
        raise ValueError(f"--workload {spec!r}: unbalanced '('")
    parts.append(cur)
    for part in parts:
        if not part.strip():
            continue
        key, eq, val = part.partition("=")
        key = key.strip().replace("-", "_")
        if not eq or not key or not val.strip():
            raise ValueError(f"--workload {spec!r}: {part.strip()!r} is not key=value")
        if key in out:
            raise ValueError(f"--workload {spec!r}: {key} given twice")
        out[key] = val.strip()
    return out


def _int_param(params: dict[str, str], key: str, default: int | None, spec: str) -> int:
    if key not in params:
        if default is None:
            raise ValueError(f"--workload {spec!r}: {key}= is required")
        return default
    v = params[key]
    if not _INT_RE.match(v):
        raise ValueError(f"--workload {spec!r}: {key}={v!r} is not an integer")
    return int(v)


def _bool_param(params: dict[str, str], key: str, spec: str) -> bool:
    v = params.get(key, "1").lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"--workload {spec!r}: {key}={params[key]!r} is not 0/1")


def parse_workload(spec: str, *, default_n: int = 100, base_dir: str | None = None) -> Workload:
    """A ``--workload`` value → :class:`Workload`; anything wrong is one ValueError line.

    ``synthetic:input=…,output=…[,n=…][,seed=…][,ignore_eos=0|1]``,
    ``prefix:prefix=P,input=…,output=…[,n=…][,seed=…][,ignore_eos=…]``, ``file:PATH`` (relative
    paths against ``base_dir``, else the working directory). ``n`` defaults to ``default_n``,
    ``seed`` to 0, ``output`` to 64 (synthetic/prefix).
    """
    s = str(spec).strip()
    kind, colon, body = s.partition(":")
    kind = kind.strip().lower()
    if not colon or kind not in KINDS:
        raise ValueError(f"--workload {spec!r}: must start with synthetic:, prefix: or file:")
    if kind == "file":
        path = body.strip()
        if not path:
            raise ValueError(f"--workload {spec!r}: file: needs a path")
        path = os.path.expanduser(path)
        if base_dir and not os.path.isabs(path):
            path = os.path.join(base_dir, path)
        return load_jsonl(path)
    params = _split_params(body, spec)
    allowed = {"input", "output", "n", "seed", "ignore_eos"} | ({"prefix"} if kind == "prefix" else set())
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise ValueError(f"--workload {spec!r}: unknown {', '.join(unknown)} (allowed: {', '.join(sorted(allowed))})")
    if "input" not in params:
        raise ValueError(f"--workload {spec!r}: input= is required")
    n = _int_param(params, "n", default_n, spec)
    seed = _int_param(params, "seed", 0, spec)
    ie = _bool_param(params, "ignore_eos", spec)
    try:
        ins = parse_lengths(params["input"], "input")
        outs = parse_lengths(params.get("output", "64"), "output")
        if kind == "synthetic":
            return synthetic(ins, outs, n, seed, ie)
        return shared_prefix(_int_param(params, "prefix", None, spec), ins, outs, n, seed, ie)
    except ValueError as e:
        msg = str(e)
        raise ValueError(msg if msg.startswith("--workload") else f"--workload {spec!r}: {msg}") from None


# ---------------------------------------------------------------------------------
# did the server count what was asked?


class LengthCheck(NamedTuple):
    """``ok_fraction``: share of requests whose server count is within tolerance of the asked
    count (+ overhead); a request without usage counts as not ok; None when no request had a
    count to compare (unknown, never a pass). ``worst``: the largest relative deviation
    ``(got − overhead − asked) / asked`` (signed; None when nothing was compared)."""

    ok_fraction: float | None
    worst: float | None


def check_prompt_lengths(asked: Sequence[int | None], usage_prompt_tokens: Sequence[int | None], *,
                         overhead: int = 0, rel_tol: float = 0.02, abs_tol: int = 2) -> LengthCheck:
    """Compare asked content tokens with the server's ``usage.prompt_tokens``, request by request.

    A request is ok when ``|got − overhead − asked| ≤ max(abs_tol, rel_tol × asked)``: ``abs_tol``
    absorbs a tokenizer that splits the first word or merges a boundary, ``overhead`` is the chat
    template's constant (see :func:`prompt_overhead`). Requests whose asked length is None
    (a user's file) are skipped.
    """
    if len(asked) != len(usage_prompt_tokens):
        raise ValueError(f"{len(asked)} asked lengths but {len(usage_prompt_tokens)} usage counts")
    ok = total = compared = 0
    worst: float | None = None
    for a, g in zip(asked, usage_prompt_tokens):
        if a is None:
            continue
        total += 1
        if g is None:
            continue
        compared += 1
        dev = g - overhead - a
        if abs(dev) <= max(abs_tol, rel_tol * a):
            ok += 1
        rel = dev / a if a else float(dev)
        if worst is None or abs(rel) > abs(worst):
            worst = rel
    if not compared:
        return LengthCheck(None, None)
    return LengthCheck(ok / total, worst)


def check_output_lengths(asked: Sequence[int | None], usage_completion_tokens: Sequence[int | None], *,
                         rel_tol: float = 0.0, abs_tol: int = 0) -> LengthCheck:
    """Realised output lengths (``usage.completion_tokens``) against ``max_tokens`` asked: with
    ``ignore_eos`` a server that honours both returns exactly what was asked (default tolerance 0);
    fewer means ignore_eos was dropped, more that max_tokens was ignored. Same result shape and
    unknown rules as :func:`check_prompt_lengths` (``worst``: relative, signed)."""
    return check_prompt_lengths(asked, usage_completion_tokens, overhead=0, rel_tol=rel_tol, abs_tol=abs_tol)


def prompt_overhead(asked: Sequence[int], usage_prompt_tokens: Sequence[int]) -> tuple[float, float]:
    """Least-squares ``usage = overhead + slope × asked`` over calibration requests of at least two
    distinct lengths: ``(overhead, slope)``. Slope ≈ 1 confirms the one-word-one-token assumption
    for this server's tokenizer; the overhead is the template's per-request constant."""
    pts = [(float(a), float(g)) for a, g in zip(asked, usage_prompt_tokens) if a is not None and g is not None]
    xs = {x for x, _ in pts}
    if len(xs) < 2:
        raise ValueError("prompt_overhead needs usage counts for at least two distinct asked lengths")
    mx = sum(x for x, _ in pts) / len(pts)
    my = sum(y for _, y in pts) / len(pts)
    sxx = sum((x - mx) ** 2 for x, _ in pts)
    sxy = sum((x - mx) * (y - my) for x, y in pts)
    slope = sxy / sxx
    return my - slope * mx, slope


def calibration(lengths: Sequence[int] = (16, 272), seed: int = 0) -> Workload:
    """Prompts of known distinct lengths (max_tokens 1) for :func:`prompt_overhead`."""
    rng = random.Random(seed)
    reqs = [Request(prompt=make_text(k, rng, unique=i), max_tokens=1, input_tokens=k)
            for i, k in enumerate(lengths)]
    return Workload("synthetic", {"calibration": list(lengths)}, seed, reqs, True)
