"""Fixtures every suite builds on: the target, the endpoint, a measuring client, and ``claim``.

A suite test reads like the claim it checks::

    def test_warm_ttft_spread(warm_run, claim):
        claim("warm.ttft_spread_ms", warm_run.ttft_ms, stat="spread")

``claim`` judges the figure against the active target, records it for every report and
makes the test fail (or, for inconclusive claims, fail or xfail) when the verdict says so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Sequence

import pytest

from .claims import INCONCLUSIVE, Claim, judge
from .session import SESSION_KEY, InferenceSession


def _state(config: pytest.Config) -> InferenceSession:
    state = config.stash.get(SESSION_KEY, None)
    if state is None:  # pragma: no cover - only with --inference-targets, which exits first
        raise RuntimeError("pytest-inference is not configured")
    return state


def suite_of(item: pytest.Item) -> str | None:
    from .plugin import MARKERS

    for mark in item.iter_markers():
        if mark.name in MARKERS:
            return mark.name
    return None


class ClaimRecorder:
    """The ``claim`` fixture: ``claim(metric, samples, stat=..., unit=...) -> Claim``."""

    def __init__(self, item: pytest.Item, state: InferenceSession) -> None:
        self._item = item
        self._state = state
        self.made: list[Claim] = []

    def __call__(
        self,
        metric: str,
        samples: Sequence[float] = (),
        *,
        stat: str | None = None,
        unit: str | None = None,
        measured: float | None = None,
        contaminated: int = 0,
        min_samples: int | None = None,
        details: dict[str, Any] | None = None,
        parameters: dict[str, Any] | None = None,
    ) -> Claim:
        target = self._state.target
        req = target.requirement(metric)
        if stat is None:
            stat = (req.stat if req and req.stat else None) or ("value" if len(samples) <= 1 else "median")
        c = judge(
            metric,
            samples,
            stat=stat,
            unit=unit,
            requirement=req,
            measured=measured,
            target=target.name,
            confidence=target.confidence,
            contaminated=contaminated,
            min_samples=min_samples,
            details=details,
            not_judged=self._state.not_judged_reason(self._item),
        )
        return self._record(c, parameters)

    def inconclusive(self, metric: str, reason: str, *, unit: str | None = None, parameters=None,
                     details: dict[str, Any] | None = None) -> Claim:
        """A claim the run could not measure at all (e.g. the server reports no token usage)."""
        req = self._state.target.requirement(metric)
        c = Claim(
            metric=metric,
            measured=None,
            unit=(req.unit if req else None) or unit,
            stat=(req.stat if req else None) or "value",
            samples=[],
            verdict=INCONCLUSIVE,
            reason=reason,
            op=req.op if req else None,
            threshold=req.threshold if req else None,
            target=self._state.target.name,
            confidence=self._state.target.confidence,
            details=dict(details or {}),
        )
        return self._record(c, parameters)

    def attach(self, name: str, body: bytes | str, kind: str = "json") -> None:
        """Attach data to this test's report (Allure: a JSON file, a PNG chart, text)."""
        from .report.allure_sink import allure_enabled, attach_data

        if allure_enabled(self._item.config):
            attach_data(body, name, kind)

    def _record(self, c: Claim, parameters: dict[str, Any] | None) -> Claim:
        self._state.record(self._item, c)
        self.made.append(c)
        from .report.allure_sink import allure_enabled, attach_claim

        if allure_enabled(self._item.config):
            marked = any(m.kwargs.get("label_type") == "suite" for m in self._item.iter_markers("allure_label"))
            attach_claim(c, suite=suite_of(self._item), target=c.target, parameters=parameters, suite_labels=not marked)
        return c


@pytest.fixture
def claim(request: pytest.FixtureRequest) -> ClaimRecorder:
    """Judge a measured figure against the target and record it in every report."""
    return ClaimRecorder(request.node, _state(request.config))


@pytest.fixture(scope="session")
def inference_session(request: pytest.FixtureRequest) -> InferenceSession:
    """The run's state: target, endpoint, report folder, claims so far."""
    return _state(request.config)


@pytest.fixture(scope="session")
def inference_target(inference_session: InferenceSession):
    """The active hardware target profile (``--target``)."""
    return inference_session.target


@pytest.fixture(scope="session")
def inference_api_key(inference_session: InferenceSession) -> str | None:
    """The API key read from ``--api-key-env`` (never printed, never reported)."""
    return inference_session.api_key


@dataclass
class Endpoint:
    """An OpenAI-compatible endpoint under test. ``repr`` never shows the key."""

    base_url: str
    model: str
    api_key: str | None = field(default=None, repr=False)
    server: str | None = None
    models: list[str] = field(default_factory=list)

    def client(self, timeout_s: float = 120.0):
        """A measuring streaming client for this endpoint (raw sockets, keep-alive, TCP_NODELAY)."""
        from .engine import StreamClient

        return StreamClient(self.base_url, api_key=self.api_key, timeout_s=timeout_s)

    @property
    def root_url(self) -> str:
        """The server root (where /health and /metrics live)."""
        base = self.base_url
        return base[: -len("/v1")] if base.endswith("/v1") else base


def open_endpoint(base_url: str, *, api_key: str | None, model: str | None, fallback_model: str | None) -> Endpoint:
    """Reach the endpoint once (GET /v1/models) and settle the model name.

    Raises :class:`pytest.fail.Exception` with one readable line when the endpoint is
    unreachable, rejects the key, or does not speak the OpenAI API.
    """
    from .engine import EndpointError, StreamClient

    client = StreamClient(base_url, api_key=api_key, timeout_s=30.0)
    try:
        status, headers, body = client.request("GET", "/models")
    except EndpointError as exc:
        pytest.fail(str(exc), pytrace=False)
    finally:
        client.close()
    models: list[str] = []
    if status == 200:
        try:
            models = [m["id"] for m in json.loads(body)["data"]]
        except (ValueError, KeyError, TypeError):
            pytest.fail(f"{base_url}/models did not answer with an OpenAI model list", pytrace=False)
    if model is None:
        if len(models) == 1:
            model = models[0]
        elif fallback_model and (not models or fallback_model in models):
            model = fallback_model
        elif models:
            pytest.fail(
                f"{base_url} serves several models ({', '.join(models[:5])}); choose one with --model",
                pytrace=False,
            )
        else:
            pytest.fail(f"{base_url}: no model given; pass --model NAME", pytrace=False)
    return Endpoint(base_url, model, api_key=api_key, server=headers.get("server"), models=models)


@pytest.fixture(scope="session")
def inference_local(request: pytest.FixtureRequest, inference_session: InferenceSession):
    """The session's local servers: the embedded default (shared) and cold starts."""
    from .local import LocalConfig, LocalServers
    from .progress import StartProgress

    local = LocalConfig.from_config(request.config, inference_session.target)
    key = inference_session.api_key or inference_session.serverless_api_key
    if key:
        # vLLM reads the key from its environment: never on a command line (ps) or in its log
        local.env_extra = {"VLLM_API_KEY": key}
    servers = LocalServers(local, progress_factory=lambda label: StartProgress(request.config, label))
    yield servers
    servers.close()


def _local_server(request: pytest.FixtureRequest, option: str) -> tuple[str, str | None]:
    """Base URL and API key of the session's shared local server (the embedded default),
    started on first use; a one-line skip or failure when it cannot be had."""
    from .local import LocalServerUnavailable
    from .server import ServerStartError

    servers = request.getfixturevalue("inference_local")
    try:
        handle = servers.shared()
    except LocalServerUnavailable as exc:
        pytest.skip(f"no {option} given and no local server: {exc}")
    except ServerStartError as exc:
        pytest.fail(f"the local server did not start: {exc}", pytrace=False)
    session = request.getfixturevalue("inference_session")
    session.add_metadata(local_server=servers.local.command.split()[0], model_path=str(servers.local.model_path))
    # what this server is (the embedded tiny model on the CPU, a --model-path, a --server-cmd): A7
    session.note_server(**servers.local.ran())
    return handle.base_url, (servers.local.env_extra or {}).get("VLLM_API_KEY")


@pytest.fixture(scope="session")
def inference_endpoint(request: pytest.FixtureRequest, inference_session: InferenceSession) -> Endpoint:
    """The endpoint under test: ``--endpoint``, else the embedded default started locally."""
    base_url, key = inference_session.endpoint, inference_session.api_key
    if not base_url:
        base_url, key = _local_server(request, "--endpoint")
    ep = open_endpoint(
        base_url,
        api_key=key,
        model=inference_session.model,
        fallback_model=inference_session.target.setting("model"),
    )
    inference_session.add_metadata(endpoint=ep.base_url, model=ep.model, server=ep.server)
    if inference_session.endpoint:
        inference_session.note_server(accelerator=None, model=ep.model, how=f"--endpoint {ep.base_url}")
    return ep


@pytest.fixture(scope="session")
def inference_client(inference_endpoint: Endpoint):
    """A measuring streaming client for the endpoint (raw sockets, keep-alive, TCP_NODELAY)."""
    with inference_endpoint.client() as client:
        yield client


@pytest.fixture(scope="session")
def serverless_endpoint(request: pytest.FixtureRequest, inference_session: InferenceSession) -> Endpoint:
    """The serverless endpoint (``--serverless-endpoint``), else the local embedded server behind its key."""
    base_url, key = inference_session.serverless_endpoint, inference_session.serverless_api_key
    if not base_url:
        base_url, key = _local_server(request, "--serverless-endpoint")
    ep = open_endpoint(
        base_url,
        api_key=key,
        model=inference_session.serverless_model or inference_session.model,
        fallback_model=inference_session.target.setting("model"),
    )
    inference_session.add_metadata(serverless_endpoint=ep.base_url, serverless_model=ep.model)
    if inference_session.serverless_endpoint:
        inference_session.note_server(accelerator=None, model=ep.model, how=f"--serverless-endpoint {ep.base_url}")
    return ep


@pytest.fixture(scope="session")
def serverless_client(serverless_endpoint: Endpoint):
    """A measuring streaming client for the serverless endpoint (the same engine as the warm suite)."""
    with serverless_endpoint.client() as client:
        yield client
