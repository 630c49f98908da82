"""Allure sink: a claim becomes labels, parameters, a description and attachments of the
Allure test result of the test that judged it.

``allure`` (allure-pytest / allure-python-commons) is imported inside the functions, and
only when allure-pytest is already loaded, so this module costs nothing without it.
:func:`attach_claim` is a no-op unless allure-pytest is recording (``--alluredir``) and a
test is running; it is meant to be called from inside the test (or a fixture of it).

What one claim adds to its test's result:

* labels ``parentSuite`` = ``pytest-inference``, ``suite`` = the suite, ``tag`` = suite
  and verdict (and ``regression``), custom labels ``target`` and ``metric`` (each label
  only once per test), ``severity`` (``critical`` for a judged claim, ``minor`` for measured-only);
* parameters passed by the caller — run settings such as requests, concurrency,
  endpoint — with anything that looks like a credential dropped and URL passwords and
  query strings removed;
* the claim's message appended to the test's description (several claims, several lines);
* a step ``<metric>: <VERDICT> — <value> (<stat> <requirement>)`` whose status is the
  verdict's (failed for ``fail``, skipped for ``inconclusive``, passed otherwise), holding
  the attachments ``<metric> claim`` (the claim as JSON, raw samples included) and
  ``<metric> chart`` (the PNG from :mod:`.charts`, for claims with >= 2 samples).
"""

from __future__ import annotations

import json
import math
import re
import sys
from typing import Any, Mapping
from urllib.parse import urlsplit, urlunsplit

from ..claims import FAIL, INCONCLUSIVE, MEASURED, PASS, Claim, fmt

PARENT_SUITE = "pytest-inference"

#: words of a parameter / detail name that mark it as a credential (``api_key``, ``x-api-key``,
#: ``access_token``, ``HF_TOKEN``, ``apiKey``); ``max_tokens`` or ``output_tokens`` are not
_SECRET_WORDS = {"key", "apikey", "token", "secret", "password", "passwd", "pwd", "authorization", "auth",
                 "bearer", "credential", "credentials", "cookie", "session_key"}
#: values that look like a bearer credential (OpenAI-style keys, JWTs)
_SECRET_VALUE = re.compile(r"^(sk-|Bearer\s|eyJ)[A-Za-z0-9._\-]{8,}", re.IGNORECASE)

_SEVERITY = {PASS: "critical", FAIL: "critical", INCONCLUSIVE: "critical", MEASURED: "minor"}
_SEVERITY_RANK = ["trivial", "minor", "normal", "critical", "blocker"]


def allure_enabled(config: Any) -> bool:
    """True when allure-pytest is loaded in this pytest run and ``--alluredir`` is set."""
    if config is None:
        return False
    pm = getattr(config, "pluginmanager", None)
    if pm is None or not (pm.hasplugin("allure_pytest") or pm.hasplugin("allure_listener")):
        return False
    return bool(getattr(config.option, "allure_report_dir", None))


def _listeners() -> list[Any]:
    """allure-commons plugins that record test results (``attach_data`` implementers)."""
    if "allure_commons" not in sys.modules:  # allure-pytest never loaded: nothing records
        return []
    import allure_commons

    try:
        return [impl.plugin for impl in allure_commons.plugin_manager.hook.attach_data.get_hookimpls()]
    except Exception:  # pragma: no cover - a future allure-commons without this hook
        return []


def _current_result(listeners: list[Any]) -> Any | None:
    """The Allure TestResult now being recorded, where the listener exposes it (allure-pytest)."""
    for plugin in listeners:
        logger = getattr(plugin, "allure_logger", None)
        if logger is not None and hasattr(logger, "get_test"):
            try:
                return logger.get_test(None)
            except Exception:  # pragma: no cover
                return None
    return None


def is_secret(name: str, value: Any = None) -> bool:
    """Does this parameter look like a credential (by name, or by the look of its value)?"""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", str(name)).lower()  # apiKey -> api key
    if any(word in _SECRET_WORDS for word in re.split(r"[^a-z0-9]+", spaced)):
        return True
    return isinstance(value, str) and bool(_SECRET_VALUE.match(value.strip()))


def safe_value(value: Any) -> Any:
    """A URL without its user/password and query string; anything else unchanged."""
    if isinstance(value, str) and "://" in value:
        try:
            parts = urlsplit(value)
        except ValueError:
            return value
        netloc = parts.hostname or ""
        if parts.port:
            netloc += f":{parts.port}"
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    return value


def safe_parameters(parameters: Mapping[str, Any] | None) -> dict[str, Any]:
    """The caller's parameters without credentials, ``None`` values or unsafe URL parts."""
    out: dict[str, Any] = {}
    for name, value in (parameters or {}).items():
        if value is None or is_secret(name, value):
            continue
        out[str(name)] = safe_value(value)
    return out


def _scrub(obj: Any) -> Any:
    """Recursively drop credential-like keys and make floats JSON-safe (NaN/inf -> str)."""
    if isinstance(obj, Mapping):
        return {str(k): _scrub(v) for k, v in obj.items() if not is_secret(str(k), v)}
    if isinstance(obj, (list, tuple)):
        return [_scrub(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if isinstance(obj, str):
        return "<redacted>" if is_secret("", obj) else safe_value(obj)
    return obj


def claim_json(claim: Claim, suite: str | None = None, parameters: Mapping[str, Any] | None = None) -> str:
    """The claim as the JSON attached to the report: ``Claim.to_dict()`` plus context."""
    d = claim.to_dict()
    if suite:
        d["suite"] = suite
    if parameters:
        d["parameters"] = safe_parameters(parameters)
    return json.dumps(_scrub(d), indent=2, sort_keys=False, default=str)


def _slug(metric: str) -> str:
    return metric.strip() or "claim"


def attach_claim(
    claim: Claim,
    suite: str | None,
    target: str | None,
    parameters: Mapping[str, Any] | None = None,
    *,
    config: Any = None,
    chart: bool = True,
) -> bool:
    """Record ``claim`` on the Allure result of the running test.

    Returns True when something was recorded, False (and does nothing) when allure-pytest
    is not recording — not loaded, no ``--alluredir``, or no test running.  Pass
    ``config`` to check :func:`allure_enabled` first; without it the active allure-commons
    listeners decide.  Never raises because of a chart.
    """
    if config is not None and not allure_enabled(config):
        return False
    listeners = _listeners()
    if not listeners:
        return False
    current = _current_result(listeners)
    if current is None and any(hasattr(p, "allure_logger") for p in listeners):
        return False  # allure-pytest is recording, but no test is running now

    import allure

    target = target or claim.target
    existing = {(lb.name, lb.value) for lb in getattr(current, "labels", None) or []}

    def label(name: str, value: str | None) -> None:
        if value and (name, value) not in existing:
            allure.dynamic.label(name, value)
            existing.add((name, value))

    label("parentSuite", PARENT_SUITE)
    if suite:
        label("suite", suite)
        label("tag", suite)
    label("tag", claim.verdict)
    if claim.regressed:
        label("tag", "regression")
    label("target", target)
    label("metric", claim.metric)

    severity = _SEVERITY.get(claim.verdict, "normal")
    have = [v for n, v in existing if n == "severity"]
    if not have:
        allure.dynamic.severity(allure.severity_level(severity))
        existing.add(("severity", severity))
    elif current is not None and all(_rank(v) < _rank(severity) for v in have):
        for lb in current.labels:  # raise the test's severity, never lower it
            if lb.name == "severity":
                lb.value = severity

    for name, value in safe_parameters(parameters).items():
        allure.dynamic.parameter(name, value)

    line = f"**{claim.verdict.upper()}** {claim.message()}"
    old = getattr(current, "description", None) if current is not None else None
    if not old:
        allure.dynamic.description(line)
    elif line not in old:
        allure.dynamic.description(f"{old}\n\n{line}")

    # One step per claim, its status the verdict's, holding the claim's attachments.
    step = allure.step(step_title(claim))
    step.params = _step_params(claim)
    step.__enter__()
    exc: BaseException | None = None
    try:
        name = _slug(claim.metric)
        allure.attach(claim_json(claim, suite, parameters), name=f"{name} claim",
                      attachment_type=allure.attachment_type.JSON)
        if chart:
            try:
                from .charts import claim_chart_png

                png = claim_chart_png(claim)
            except Exception as chart_exc:  # a broken chart must not break the run
                allure.attach(f"chart failed: {type(chart_exc).__name__}: {chart_exc}", name=f"{name} chart error",
                              attachment_type=allure.attachment_type.TEXT)
                png = None
            if png:
                allure.attach(png, name=f"{name} chart", attachment_type=allure.attachment_type.PNG)
    finally:
        exc = _step_outcome(claim)
        step.__exit__(type(exc) if exc else None, exc, None)
    return True


def step_title(claim: Claim) -> str:
    """``warm.ttft_ms: FAIL — 229.5 ms (p90 < 300 ms)``"""
    value = fmt(claim.measured) + (f" {claim.unit}" if claim.unit else "")
    req = f"{claim.stat} {claim.requirement_text()}" if claim.op else "no requirement"
    return f"{claim.metric}: {claim.verdict.upper()} — {value} ({req})"


def _step_params(claim: Claim) -> dict[str, str]:
    params = {"stat": claim.stat, "samples": str(claim.count)}
    if claim.threshold is not None:
        params["threshold"] = f"{claim.op} {fmt(claim.threshold)}{' ' + claim.unit if claim.unit else ''}"
    if claim.margin is not None:
        params["margin"] = f"{fmt(claim.margin)}{' ' + claim.unit if claim.unit else ''}"
    if claim.contaminated:
        params["contaminated"] = str(claim.contaminated)
    return params


def _step_outcome(claim: Claim) -> BaseException | None:
    """The exception allure-commons turns into the step's status: failed for a refuted claim,
    skipped for an inconclusive one, none (passed) otherwise."""
    if claim.verdict == FAIL:
        return AssertionError(claim.message())
    if claim.verdict == INCONCLUSIVE:
        import pytest

        return pytest.skip.Exception(f"inconclusive: {claim.reason}")
    return None


def _rank(severity: str) -> int:
    return _SEVERITY_RANK.index(severity) if severity in _SEVERITY_RANK else 2
