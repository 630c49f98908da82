"""The API conformance suite's fixtures: the endpoint (``--endpoint`` or the embedded local vLLM),
the checks' context, and ``api_check("API-…")``, which runs one check and reports it as a claim.

    pytest suites/api --endpoint http://host:8000/v1 --api-key-env KEY_VAR
    pytest -m api --target cpu-local                   # the embedded CPU vLLM and its reference

Bad input is one line: an unreachable endpoint, a rejected key, an endpoint that is not OpenAI-compatible
at all, a reference file that does not parse or was recorded for another model.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from pytest_inference import checks
from pytest_inference.api import rules
from pytest_inference.api.checks import CHECKS, ApiContext, SkipCheck, run_check
from pytest_inference.api.probe import ApiProbe
from pytest_inference.fixtures.endpoints import choose_model


@dataclass
class ApiEndpoint:
    """The endpoint under test. ``repr`` never shows the key."""

    base_url: str
    model: str
    models: list[str]
    context_len: int | None
    probe: ApiProbe


def _discover(probe: ApiProbe, asked_model: str | None, fallback: str | None) -> tuple[str, list[str], int | None]:
    """(model, served ids, context length) from GET /v1/models; one-line failure when the endpoint cannot
    be used at all (unreachable, key rejected, not OpenAI-compatible, which model is unclear)."""
    ex = probe.get("/models", label="discovery: GET /v1/models")
    url = f"{probe.base_url}/models"
    if ex.status is None:
        pytest.fail(f"cannot reach the endpoint: {ex.error}", pytrace=False)
    if ex.status in (401, 403):
        pytest.fail(f"the endpoint rejected the API key (HTTP {ex.status} from {url})"
                    + ("" if probe.uses_key else ": no API key was given (--api-key-env VAR)"), pytrace=False)
    _, ids = rules.models_shape(ex)
    if not ids:
        # a model list that does not parse is API-DISC-001's finding; an endpoint that answers nothing
        # like the OpenAI API either is not one: one line, no check runs
        model = asked_model or fallback or "model"
        chat = probe.post("/chat/completions", {"model": model, "messages": [{"role": "user", "content": "hi"}],
                                                 "max_tokens": 1}, label="discovery: a one-token chat request")
        obj = chat.json()
        if not isinstance(obj, dict) or not ("choices" in obj or "error" in obj):
            pytest.fail(f"{probe.base_url} is not an OpenAI-compatible endpoint: GET /models answered "
                        f"{ex.outcome()}, POST /chat/completions answered {chat.outcome()}", pytrace=False)
    model = choose_model(probe.base_url, ids, asked_model, fallback,
                         no_model="no model given and the model list does not parse; pass --model NAME")
    context = None
    obj = ex.json()
    for m in (obj.get("data") if isinstance(obj, dict) and isinstance(obj.get("data"), list) else []):
        if isinstance(m, dict) and m.get("id") == model and isinstance(m.get("max_model_len"), int):
            context = m["max_model_len"]
    return model, ids, context


@pytest.fixture(scope="session")
def api_endpoint(request, inference_session):
    """The endpoint under test (``--endpoint``, else the embedded default started locally), discovered
    once; at the end every exchange goes to ``<report>/records/api-exchanges.jsonl`` (keys masked)."""
    from pytest_inference.fixtures.endpoints import _local_server

    s = inference_session
    given = bool(s.endpoint)
    if given:
        base_url, key = s.endpoint, s.api_key
    else:
        base_url, key = _local_server(request, "--endpoint")
    probe = ApiProbe(base_url, api_key=key, timeout_s=s.settings.api_timeout_s)
    model, ids, context = _discover(probe, s.model, s.settings.model)
    s.add_metadata(endpoint=base_url, model=model)
    if given:
        s.note_server(accelerator=None, model=model, how=f"--endpoint {base_url}", url=base_url)
    yield ApiEndpoint(base_url, model, ids, context, probe)
    # every request the checks made and what came back: <report>/records/api-exchanges.jsonl
    import os

    from pytest_inference.report.records import write_records

    worker = os.environ.get("PYTEST_XDIST_WORKER")
    try:
        path = write_records(s.report_dir, "api-exchanges" + (f"-{worker}" if worker else ""),
                             [e.to_dict(2000) for e in probe.exchanges], secrets=s.secrets())
        s.add_metadata(api_exchanges=str(path))
    except (OSError, ValueError) as exc:
        s.add_metadata(api_exchanges=f"not written: {exc}")


@pytest.fixture(scope="session")
def api_context(request, inference_session, api_endpoint) -> ApiContext:
    """What every check asks with; ``--record-reference FILE`` records the reference answers first."""
    s = inference_session.settings
    ref, ref_path = None, None
    record_to = request.config.getoption("api_record_reference", None)
    if record_to:
        ref, ref_path = _record_reference(api_endpoint, record_to, inference_session)
    # --reference wins; else a fresh recording; else the target's [api] reference
    if s.api_reference and (s.given("api_reference") or not record_to):
        from pytest_inference.api.options import reference_path
        from pytest_inference.api.reference import ReferenceError, load

        ref_path = str(reference_path(s.api_reference))
        try:
            ref = load(ref_path, model=api_endpoint.model)
        except ReferenceError as exc:
            if s.given("api_reference"):
                ref = _ReferenceProblem(str(exc), skip=False)  # the user's file for another model: bad input
            else:  # the target's reference is for its own model: not for this endpoint
                ref = _ReferenceProblem(f"{exc} (the reference of {s.source('api_reference')}); record one for "
                                        "this model with --record-reference FILE and pass --reference FILE", skip=True)
    return ApiContext(api_endpoint.probe, api_endpoint.model, max_tokens=s.api_max_tokens,
                      context_len=api_endpoint.context_len, reference=ref, reference_path=ref_path,
                      fuzz={"seed": s.api_fuzz_seed, "examples": s.api_fuzz_examples, "max_s": s.api_fuzz_max_s})


@dataclass
class _ReferenceProblem:
    """A reference that did not load for this endpoint: the user's own (``--reference``) fails the
    reference checks with the line; the target's, for another model, skips them with it."""

    problem: str
    skip: bool


def _record_reference(ep: ApiEndpoint, path: str, session):
    from pytest_inference.api.reference import ReferenceError, record, save

    client = ep.probe.client()
    try:
        ref = record(client, ep.model, note=f"recorded by pytest-inference from {ep.model} (target {session.target.name})")
        save(ref, path)
    except (ReferenceError, OSError) as exc:
        pytest.fail(f"--record-reference {path}: {exc}", pytrace=False)
    finally:
        client.close()
    session.add_metadata(api_reference_recorded=str(path))
    return ref, str(path)


@pytest.fixture
def api_check(request, claim, api_context):
    """``api_check("API-SSE-001", "chat")``: run one check (for one subject), report it as a claim, fail
    with its one line (id, actual, expected, remediation)."""

    def run(cid: str, subject: str | None = None):
        spec = CHECKS[cid]
        checks.tag(request, cid, spec.title)
        ref = api_context.reference
        if cid.startswith("API-REF-") and isinstance(ref, _ReferenceProblem):
            if ref.skip:
                pytest.skip(f"{cid} {spec.title}: {ref.problem}")
            pytest.fail(ref.problem, pytrace=False)
        try:
            result = run_check(cid, api_context, subject)
        except SkipCheck as exc:
            pytest.skip(f"{cid} {spec.title}: {exc}")
        return checks.report(result, claim, parameters={"subject": subject} if subject else None)

    return run
