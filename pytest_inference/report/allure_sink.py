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
  the attachments ``<metric> claim`` (the claim as JSON, raw samples included),
  ``<metric> chart`` (the PNG from :mod:`.charts`, for claims with >= 2 samples) and one PNG per
  figure the claim's details carry (:mod:`.figures`: e.g. the cold-start timeline, the economics
  cost-vs-rate chart); no PNG at all without matplotlib.
"""

from __future__ import annotations

import json
import math
import re
import sys
from typing import Any, Mapping
from urllib.parse import urlsplit, urlunsplit

import pytest

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


def _recorder(listeners: list[Any]) -> Any | None:
    """allure-pytest's reporter (``AllureListener.allure_logger``), if one is registered."""
    for plugin in listeners:
        logger = getattr(plugin, "allure_logger", None)
        if logger is not None and hasattr(logger, "get_test") and hasattr(logger, "get_last_item"):
            return logger
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
    suite_labels: bool = True,
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
    target = target or claim.target
    attachments = _attachments(claim, suite, parameters, chart)
    recorder = _recorder(listeners)
    if recorder is None:  # some other allure-commons integration: its public API, no step
        _record_dynamic(claim, suite, target, parameters, attachments)
        return True
    result = recorder.get_test(None)
    if result is None:
        return False  # allure-pytest is recording, but no test is running now
    _record_on(recorder, result, claim, suite, target, parameters, attachments, suite_labels)
    return True


def _attachments(claim: Claim, suite: str | None, parameters: Mapping[str, Any] | None,
                 chart: bool) -> list[tuple[bytes | str, str, str]]:
    """``(body, name, kind)`` for the claim JSON and, where there are any, its charts: the samples
    chart (>= 2 samples) and the figures its details carry (:mod:`.figures`). Without matplotlib
    nothing is drawn (the run says so once: :func:`.figures.charts_note`)."""
    from . import figures

    name = _slug(claim.metric)
    out: list[tuple[bytes | str, str, str]] = [(claim_json(claim, suite, parameters), f"{name} claim", "JSON")]
    drawings = figures.drawings(claim) if chart else []
    if drawings and figures.available():
        for title, draw in drawings:
            try:
                png = draw()
            except Exception as exc:  # a broken chart must not break the run
                out.append((f"chart failed: {type(exc).__name__}: {exc}", f"{title} error", "TEXT"))
                continue
            if png:
                out.append((png, title, "PNG"))
    return out


def _labels(claim: Claim, suite: str | None, target: str | None, suite_labels: bool = True) -> list[tuple[str, str]]:
    """``suite_labels=False``: the test's ``allure_label`` markers give parentSuite and suite (every
    inference test has them, also a skipped one: session.py) and its suite marker the tag, so they
    are not added twice."""
    out = [("parentSuite", PARENT_SUITE)] if suite_labels else []
    if suite:
        # (allure-pytest itself tags a test with its markers' names, the suite's among them)
        out += [("suite", suite), ("tag", suite)] if suite_labels else []
    out.append(("tag", claim.verdict))
    if claim.regressed:
        out.append(("tag", "regression"))
    if target:
        out.append(("target", target))
    out.append(("metric", claim.metric))
    return out


def _description_line(claim: Claim) -> str:
    return f"**{claim.verdict.upper()}** {claim.message()}"


def _record_on(recorder: Any, result: Any, claim: Claim, suite: str | None, target: str | None,
               parameters: Mapping[str, Any] | None, attachments: list[tuple[bytes | str, str, str]],
               suite_labels: bool = True) -> None:
    """Write the claim into allure-pytest's TestResult (and a new step) directly.

    Not through ``allure.dynamic``/``allure.step``: those broadcast to every registered
    listener, and allure-commons keeps one item table per thread shared by all reporters,
    so with two listeners in one process (pytester's in-process runs inside a run that
    records Allure) labels doubled and ``allure.step`` raised KeyError on exit.
    """
    from allure_commons._core import plugin_manager
    from allure_commons.model2 import ExecutableItem, Label, Parameter, Status, StatusDetails, TestStepResult
    from allure_commons.types import AttachmentType
    from allure_commons.utils import now, represent, uuid4

    existing = {(lb.name, lb.value) for lb in result.labels}
    for name, value in _labels(claim, suite, target, suite_labels):
        if (name, value) not in existing:
            result.labels.append(Label(name=name, value=value))
            existing.add((name, value))

    severity = _SEVERITY.get(claim.verdict, "normal")
    have = [lb for lb in result.labels if lb.name == "severity"]
    if not have:
        result.labels.append(Label(name="severity", value=severity))
    elif all(_rank(lb.value) < _rank(severity) for lb in have):
        for lb in have:  # raise the test's severity, never lower it
            lb.value = severity

    for name, value in safe_parameters(parameters).items():
        param = next((p for p in result.parameters if p.name == name), None)
        if param is not None:
            param.value = represent(value)
        else:
            result.parameters.append(Parameter(name=name, value=represent(value)))

    line = _description_line(claim)
    if not result.description:
        result.description = line
    elif line not in result.description:
        result.description = f"{result.description}\n\n{line}"

    # One step per claim, its status the verdict's, holding the claim's attachments; under
    # the innermost open step or fixture, as allure.step would place it.
    start = now()
    step = TestStepResult(name=step_title(claim), start=start,
                          parameters=[Parameter(name=k, value=v) for k, v in _step_params(claim).items()])
    for body, name, kind in attachments:
        kind_type = getattr(AttachmentType, kind)
        file_name = f"{uuid4()}-attachment.{kind_type.extension}"
        plugin_manager.hook.report_attached_data(body=body, file_name=file_name)
        step.attachments.append(_attachment(name, file_name, kind_type.mime_type))
    if claim.verdict == FAIL:
        step.status, step.statusDetails = Status.FAILED, StatusDetails(message=claim.message())
    elif claim.verdict == INCONCLUSIVE:
        step.status, step.statusDetails = Status.SKIPPED, StatusDetails(message=f"inconclusive: {claim.reason}")
    else:
        step.status = Status.PASSED
    step.stop = now()
    parent = recorder.get_last_item(ExecutableItem) or result
    parent.steps.append(step)


def _attachment(name: str, source: str, mime: str) -> Any:
    from allure_commons.model2 import Attachment

    return Attachment(name=name, source=source, type=mime)


def _record_dynamic(claim: Claim, suite: str | None, target: str | None, parameters: Mapping[str, Any] | None,
                    attachments: list[tuple[bytes | str, str, str]]) -> None:
    """The same through allure's public API, for listeners other than allure-pytest's."""
    import allure

    for name, value in _labels(claim, suite, target):
        allure.dynamic.label(name, value)
    allure.dynamic.severity(allure.severity_level(_SEVERITY.get(claim.verdict, "normal")))
    for name, value in safe_parameters(parameters).items():
        allure.dynamic.parameter(name, value)
    allure.dynamic.description(_description_line(claim))
    for body, name, kind in attachments:
        allure.attach(body, name=name, attachment_type=getattr(allure.attachment_type, kind))


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


def _rank(severity: str) -> int:
    return _SEVERITY_RANK.index(severity) if severity in _SEVERITY_RANK else 2


def attach_data(body: bytes | str, name: str, kind: str) -> bool:
    """Attach a file (kind: "json", "png", "text", "svg") to the running test's Allure result."""
    if not _listeners():
        return False
    import allure

    kinds = {"json": "JSON", "png": "PNG", "text": "TEXT", "svg": "SVG"}
    allure.attach(body, name=name, attachment_type=getattr(allure.attachment_type, kinds[kind]))
    return True


# --- the Allure sink: implementations of the hooks of pytest_inference.hookspec ----------------------
def pytest_inference_claim(claim: Claim, item: Any, parameters: Mapping[str, Any] | None) -> None:
    """A judged claim becomes part of the running test's Allure result (when allure-pytest records)."""
    if not allure_enabled(item.config):
        return
    from ..session import suite_of

    marked = any(m.kwargs.get("label_type") == "suite" for m in item.iter_markers("allure_label"))
    attach_claim(claim, suite=suite_of(item), target=claim.target, parameters=parameters, suite_labels=not marked)


def pytest_inference_attachment(item: Any, name: str, body: bytes | str, kind: str) -> None:
    """A test's attachment (a chart, a table) in its Allure result."""
    if allure_enabled(item.config):
        attach_data(body, name, kind)


# --- charts without matplotlib: an implementation of pytest_inference_terminal_summary (hookspec.py) ------
@pytest.hookimpl(optionalhook=True)
def pytest_inference_terminal_summary(config, terminalreporter, claims) -> None:
    """No matplotlib, no chart: said once at the end of a run that had charts to draw (a claim with
    >= 2 samples or a figure) and recorded Allure results (allure-pytest loaded); verdicts unchanged."""
    from .figures import charts_note

    note = charts_note(claims, drawing=bool(config.pluginmanager.hasplugin("allure_pytest")))
    if note:
        terminalreporter.write_line(f"inference: {note}", yellow=True)
