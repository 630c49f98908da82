"""Proof that the API checks catch what they claim: the whole suite runs against the project's fake server,
conformant (``--strict``: every check passes) and with one switchable defect at a time (``--defect NAME``):
exactly the checks whose catalog entry names the defect fail, each in one line with its id, what was
seen and the fix. The reference checks compare with a reference recorded from the conformant fake.

Each run is a child pytest of suites/api (as a user runs it), ~5-10 s against the fake; the hang defect
costs the short --api-timeout-s a few times.
"""

from __future__ import annotations

import pytest

from pytest_inference.catalog.checks import api_checks
from pytest_inference.testing.fake_openai import DEFECTS, FakeOpenAIServer
from suite_runner import ROOT, run_suite

SUITE = ROOT / "suites" / "api"
KEY = "sk-proof-0123456789abcdef"
#: fast runs: a small fuzz budget and a short hang timeout (what is proven does not depend on them)
ARGS = ("--api-fuzz-examples", "20", "--api-fuzz-max-s", "8", "--api-timeout-s", "2", "--api-key-env", "PROOF_KEY")
FAKE = dict(ttft_ms=2, token_ms=4)


def fake(*defects: str) -> FakeOpenAIServer:
    args = ["--strict", "--api-key", KEY, "--kv-cache-tokens", "65536", "--max-model-len", "1024"]
    for d in defects:
        args += ["--defect", d]
    return FakeOpenAIServer(*args, **FAKE)


@pytest.fixture(scope="module")
def proof(tmp_path_factory):
    """A target that requires the reference answers exactly, and a reference recorded from the conformant fake."""
    from pytest_inference.api.reference import record, save
    from pytest_inference.engine import StreamClient

    tmp = tmp_path_factory.mktemp("api-proof")
    target = tmp / "proof.toml"
    target.write_text('name = "api-proof"\ndescription = "the API suite against the fake server"\n'
                      '[workload]\nmodel = "fake-model"\n[claims]\n'
                      '"api.greedy_token_match" = { op = ">=", threshold = 1.0 }\n'
                      '"api.logprob_max_abs_diff" = { op = "<=", threshold = 0.001 }\n')
    ref = tmp / "fake-reference.json"
    with fake() as s:
        client = StreamClient(s.base_url, api_key=KEY, timeout_s=10)
        try:
            save(record(client, "fake-model", note="the conformant fake"), ref)
        finally:
            client.close()
    return target, ref


def run(tmp_path, proof, *defects: str):
    target, ref = proof
    with fake(*defects) as s:
        proc, out, summary, report = run_suite(tmp_path, "--endpoint", s.base_url, "--target", str(target),
                                               "--reference", str(ref), *ARGS, suite=SUITE,
                                               env={"PROOF_KEY": KEY}, timeout=600)
    assert summary is not None, out[-3000:]
    rows = {r["id"]: r for r in summary["conformance"]["checks"]}
    return proc, out, summary, rows, report


#: the dangerous direction: what a defect leaves a check unable to judge is inconclusive, never a pass
#: (without logprobs nothing counts an answer's tokens; answers that do not repeat hide a stop or a mix;
#: a model list that does not parse cannot show the model)
UNJUDGEABLE = {
    "no_logprobs": {"API-FIN-001", "API-MAXTOK-001", "API-USAGE-002", "API-REF-001", "API-REF-002"},
    "ignore_seed": {"API-STOP-001", "API-CONC-001"},
    "models_bad_shape": {"API-DISC-002"},
}


def verdicts(rows, verdict):
    return {cid for cid, r in rows.items() if r["verdict"] == verdict}


def test_a_conformant_server_passes_every_check(tmp_path, proof):
    proc, out, summary, rows, report = run(tmp_path, proof)
    assert set(rows) == set(api_checks()), set(api_checks()) ^ set(rows)
    assert verdicts(rows, "pass") == set(api_checks()), {c: r["verdict"] for c, r in rows.items() if r["verdict"] != "pass"}
    assert proc.returncode == 0, out[-3000:]
    # the key reached the endpoint (API-ERR-006 ran) and no report holds it
    for path in report.rglob("*"):
        if path.is_file():
            assert KEY not in path.read_text(errors="replace"), path


@pytest.mark.parametrize("defect", list(DEFECTS))
def test_each_defect_fails_exactly_the_checks_that_name_it(tmp_path, proof, defect):
    proc, out, summary, rows, _ = run(tmp_path, proof, defect)
    named = {cid for cid, spec in api_checks().items() if defect in spec.defects}
    assert named, f"no check names the defect {defect}"
    assert verdicts(rows, "fail") == named, {c: (r["verdict"], r["actual"][:100]) for c, r in rows.items()
                                             if r["verdict"] != "pass"}
    assert proc.returncode == 1
    for cid in UNJUDGEABLE.get(defect, ()):
        assert rows[cid]["verdict"] == "inconclusive", (cid, rows[cid])
    for cid in named:  # one line each: id, what was seen, the fix
        line = next(ln for ln in out.splitlines() if ln.startswith(f"{cid}: "))
        assert "fix:" in line, line
        assert "Traceback" not in out


def test_every_defect_is_named_by_a_check_and_every_named_defect_exists():
    named = {d for spec in api_checks().values() for d in spec.defects}
    assert named == set(DEFECTS), named ^ set(DEFECTS)
