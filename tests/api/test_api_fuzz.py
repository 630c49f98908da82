"""The API suite's fuzzer (pytest_inference.api.fuzz): reproducible by seed, bounded by count and time,
valid cases really valid, failures recorded and shrunk. (The real CPU vLLM meets the fuzzer in
tests/integration/test_real_vllm.py: API-ROB-001.)"""

from __future__ import annotations

import json
import time

import pytest

from pytest_inference.api import fuzz
from pytest_inference.api.fuzz import FuzzCase, parse_budget



def _recorder(problem=lambda case: None):
    sent: list[FuzzCase] = []

    def send(case: FuzzCase) -> str | None:
        sent.append(case)
        return problem(case)

    return sent, send


def _obj(case: FuzzCase):
    try:
        return json.loads(case.body)
    except (ValueError, RecursionError):
        return None


def test_same_seed_sends_the_same_bodies_and_another_seed_others() -> None:
    a, send_a = _recorder()
    b, send_b = _recorder()
    c, send_c = _recorder()
    ra = fuzz.run(send_a, model="m", seed=3, examples=40, max_s=60)
    fuzz.run(send_b, model="m", seed=3, examples=40, max_s=60)
    fuzz.run(send_c, model="m", seed=4, examples=40, max_s=60)
    assert len(a) > 20 and ra.tried == len(a) and ra.valid + ra.invalid == ra.tried
    assert [(x.path, x.body) for x in a] == [(x.path, x.body) for x in b]
    assert [x.body for x in a] != [x.body for x in c]
    assert ra.stopped == "examples" and ra.failures == [] and ra.minimal is None


def test_valid_cases_are_bounded_json_objects_for_the_model_and_invalid_ones_vary() -> None:
    sent, send = _recorder()
    res = fuzz.run(send, model="tiny", seed=1, examples=150, max_s=60, max_tokens=5)
    valid = [c for c in sent if c.valid]
    invalid = [c for c in sent if not c.valid]
    assert len(valid) > 30 and len(invalid) > 30 and res.valid == len(valid)
    for c in valid:
        body = json.loads(c.body.decode("utf-8"))
        assert isinstance(body, dict) and body["model"] == "tiny", c
        assert c.path == ("/chat/completions" if "messages" in body else "/completions")
        assert 1 <= body.get("max_tokens", body.get("max_completion_tokens")) <= 5
        assert body.get("n", 1) in (1, 2, 3) and 0 <= body.get("temperature", 1) <= 2
        texts = [body["prompt"]] if "prompt" in body else [m["content"] for m in body["messages"]]
        # the bound is on the texts together (a separator joining two messages is not the prompt's)
        assert sum(len(t.encode()) for t in texts) <= fuzz.MAX_PROMPT_BYTES
        assert sum(len(t.split()) for t in texts) <= fuzz.MAX_PROMPT_WORDS
        assert c.stream == (body.get("stream") is True)
        assert "stream_options" not in body or body["stream"] is True
        assert c.what.startswith("valid")
    for c in invalid:
        assert len(c.body) <= fuzz.MAX_INVALID_BYTES, c.what
        body = _obj(c)
        assert c.stream == (isinstance(body, dict) and body.get("stream") is True)
    kinds = {c.what.split(" (")[0].split(":")[0].split("=")[0] for c in invalid}
    assert len(kinds) >= 8, kinds  # many kinds of invalid bodies, not one


def test_a_failure_is_recorded_and_shrunk_to_the_smallest_failing_body() -> None:
    def n_at_least_2(case: FuzzCase) -> str | None:
        body = _obj(case)
        n = body.get("n") if isinstance(body, dict) else None
        return "HTTP 500" if type(n) is int and n >= 2 else None

    sent, send = _recorder(n_at_least_2)
    res = fuzz.run(send, model="m", seed=1, examples=100, max_s=60)
    assert res.failures_total >= 1 and res.failures
    failing_text = [c.body.decode("utf-8", "backslashreplace") for c in sent if n_at_least_2(c)]
    for f in res.failures:  # each one a failing body (cut at 300 characters)
        assert f["problem"] == "HTTP 500"
        assert any(t.startswith(f["body"].split("... (")[0]) for t in failing_text)
    assert set(res.failures[0]) == {"what", "path", "body", "problem"}
    m = res.minimal
    assert m is not None and m["problem"] == "HTTP 500"
    body = json.loads(m["body"])
    assert body["n"] == 2 and body.get("max_tokens") == 1
    failing = [c for c in sent if n_at_least_2(c)]
    assert len(m["body"].encode()) == min(len(c.body) for c in failing)  # nothing smaller failed
    assert 0 < res.shrink_sends <= fuzz.MAX_SHRINK_SENDS
    json.dumps(res.details())  # JSON-safe for the report


def test_run_never_raises_for_a_server_problem_and_records_them_in_order() -> None:
    sent, send = _recorder(lambda case: None if case.valid else "no answer within 10 s")
    res = fuzz.run(send, model="m", seed=2, examples=30, max_s=60)
    first_invalid = next(c for c in sent if not c.valid)
    assert res.failures[0]["what"] == first_invalid.what and res.failures[0]["path"] == first_invalid.path
    invalid_whats = {c.what for c in sent if not c.valid}
    assert all(f["what"] in invalid_whats and f["problem"] == "no answer within 10 s" for f in res.failures)
    assert res.failures_total >= len(res.failures) >= 1 and len(res.failures) <= fuzz.MAX_FAILURES
    assert res.minimal is not None and res.minimal["what"] in invalid_whats


def test_the_time_budget_stops_sending() -> None:
    def slow(case: FuzzCase) -> None:
        time.sleep(0.05)

    t0 = time.monotonic()
    res = fuzz.run(slow, model="m", seed=1, examples=10_000, max_s=0.5)
    elapsed = time.monotonic() - t0
    assert res.stopped == "time" and 3 <= res.tried <= 12
    assert elapsed < 0.5 + 2.0  # the budget plus one request and hypothesis's bookkeeping


def test_the_time_budget_bounds_shrinking_too() -> None:
    def slow_fail(case: FuzzCase) -> str:
        time.sleep(0.05)
        return "HTTP 502"

    t0 = time.monotonic()
    res = fuzz.run(slow_fail, model="m", seed=1, examples=10_000, max_s=0.6)
    assert time.monotonic() - t0 < 0.6 + 2.0
    assert res.stopped == "time" and res.minimal is not None and res.failures_total >= res.tried - res.shrink_sends >= 1


def test_examples_bound_the_count() -> None:
    sent, send = _recorder()
    res = fuzz.run(send, model="m", seed=5, examples=12, max_s=60)
    assert 1 <= res.tried == len(sent) <= 12 and res.stopped == "examples"


def test_parse_budget() -> None:
    assert parse_budget("200", "--api-fuzz-examples") == 200
    assert parse_budget(" 7.5 ", "--api-fuzz-max-s") == 7.5
    with pytest.raises(ValueError, match=r"^--api-fuzz-examples: 'abc' is not a number$"):
        parse_budget("abc", "--api-fuzz-examples")
    with pytest.raises(ValueError, match=r"^--api-fuzz-examples: '2.5' is not a whole number$"):
        parse_budget("2.5", "--api-fuzz-examples")
    for bad in ("0", "-3"):
        with pytest.raises(ValueError, match=r"must be > 0$"):
            parse_budget(bad, "--api-fuzz-examples")
    for bad in ("nan", "inf", "soon"):
        with pytest.raises(ValueError, match=r"^--api-fuzz-max-s: .* is not a number$"):
            parse_budget(bad, "--api-fuzz-max-s")


def test_bad_max_tokens_is_one_line() -> None:
    with pytest.raises(ValueError, match=r"^max_tokens: 0 must be an int >= 1$"):
        fuzz.cases("m", 0)


def test_a_send_that_raises_is_the_callers_bug_and_propagates() -> None:
    def broken(case: FuzzCase) -> str | None:
        raise RuntimeError("send is broken")

    with pytest.raises(RuntimeError, match="send is broken"):
        fuzz.run(broken, model="m", seed=1, examples=5, max_s=60)

    calls = []

    def fails_then_breaks(case: FuzzCase) -> str | None:  # breaks while shrinking (after pass 1's ≤ 50)
        calls.append(case)
        if len(calls) > 50:
            raise RuntimeError("send broke later")
        body = _obj(case)
        return "HTTP 500" if isinstance(body, dict) and type(body.get("n")) is int and body["n"] >= 2 else None

    with pytest.raises(RuntimeError, match="send broke later"):
        fuzz.run(fails_then_breaks, model="m", seed=1, examples=50, max_s=60)
