"""Workloads sent through the engine to the fake OpenAI server: what the server counted
(``usage.prompt_tokens``, ``usage.completion_tokens``) against what the workload asked.

The fake counts prompt tokens as whitespace-separated words of the prompt (chat: of the messages'
contents joined), with no template overhead — so on it the check must come out exact; that
verifies the plumbing (workload → RequestSpec → wire → usage → check), while the
one-word-one-token assumption itself is checked on a real tokenizer in test_workloads_gen.py.
The server and the client are the engine tests' (tests/fake_server_fixtures.py).
"""

from __future__ import annotations

import pytest

from pytest_inference.workloads import (
    calibration,
    check_output_lengths,
    check_prompt_lengths,
    load_jsonl,
    parse_workload,
    prompt_overhead,
)


def test_synthetic_lengths_as_counted_by_the_server(client):
    w = parse_workload("synthetic:input=lognormal(200,0.6),output=uniform(1,6),n=40,seed=11")
    run = client.run(w.specs("fake-model"), concurrency=4, warmup=0)
    assert len(run.ok_results) == 40, [r.error for r in run.failed]
    got = [r.prompt_tokens for r in run.results]
    assert check_prompt_lengths(w.input_tokens, got) == (1.0, 0.0)
    # realised output lengths are the ones asked (ignore_eos; the fake honours max_tokens)
    assert [r.output_tokens for r in run.results] == w.output_tokens
    assert check_output_lengths(w.output_tokens, [r.output_tokens for r in run.results]) == (1.0, 0.0)
    assert not any(r.length_mismatch for r in run.results)
    # and a wrong expectation is caught: the same counts against a 25-token overhead fail
    ok, worst = check_prompt_lengths(w.input_tokens, got, overhead=25)
    assert ok < 0.5 and worst < 0


def test_shared_prefix_over_completions(client):
    w = parse_workload("prefix:prefix=300,input=uniform(10,50),output=2,n=12,seed=2")
    run = client.run(w.specs("fake-model", "completions"), concurrency=3, warmup=0)
    assert len(run.ok_results) == 12, [r.error for r in run.failed]
    assert check_prompt_lengths(w.input_tokens, [r.prompt_tokens for r in run.results]) == (1.0, 0.0)
    assert all(r.api == "completions" for r in run.results)


def test_calibration_on_the_fake(client):
    cal = calibration((16, 272, 64))
    run = client.run(cal.specs("fake-model"), concurrency=1, warmup=0)
    overhead, slope = prompt_overhead(cal.input_tokens, [r.prompt_tokens for r in run.results])
    assert overhead == pytest.approx(0.0) and slope == pytest.approx(1.0)


def test_file_workload_round_trip(client, tmp_path):
    f = tmp_path / "reqs.jsonl"
    f.write_text('{"prompt": "one two three four", "max_tokens": 2}\n'
                 '{"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "x y z"}]}\n')
    w = load_jsonl(f)
    run = client.run(w.specs("fake-model", max_tokens=5), concurrency=1, warmup=0)
    assert [r.prompt_tokens for r in run.results] == [4, 5]
    assert [r.output_tokens for r in run.results] == [2, 5]
    # a user's prompts have no asked length: the check says unknown, never ok
    assert check_prompt_lengths(w.input_tokens, [r.prompt_tokens for r in run.results]) == (None, None)


def test_output_lengths_short_when_the_server_stops_early(client):
    """A server that stops at EOS despite ignore_eos (the fake's eos_after): the output check fails."""
    w = parse_workload("synthetic:input=20,output=8,n=6,seed=1")
    run = client.run(w.specs("fake-model", headers={"x-fake-eos-after": "5"}), concurrency=2, warmup=0)
    got = [r.output_tokens for r in run.results]
    assert got == [5] * 6
    assert check_output_lengths(w.output_tokens, got) == (0.0, pytest.approx(-3 / 8))
