"""Numbered checks, whatever they check (a Kubernetes deployment, an OpenAI-compatible API): what one
check saw (:class:`CheckResult`) and how it becomes a claim (:func:`report`). Each suite implements
its checks as pure functions returning a :class:`CheckResult`; the catalog
(:mod:`pytest_inference.catalog.checks`) holds their metadata; :func:`report` is the one way a
check's figure reaches the claim model, so :func:`pytest_inference.claims.judge` gives every verdict.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest

#: user properties a check's test carries, so a check that could not run (a skipped test) still
#: reaches the conformance summary with its id (pytest_inference.report.conformance)
CHECK_PROPERTY, TITLE_PROPERTY = "inference_check", "inference_check_title"


@dataclass
class CheckResult:
    """What one check saw: its measured figure and the findings behind it, with expected, actual
    and a remediation line. No verdict: :func:`pytest_inference.claims.judge` gives it, against the
    target's requirement for ``metric`` or else the catalog's default (``catalog/*checks.toml``).

    ``measured`` None: the check could not measure, ``reason`` says why (the claim is inconclusive).
    ``cleanup``: what a mutating check could not undo — its test fails whatever the figure.
    """

    id: str
    title: str
    metric: str
    measured: float | None
    expected: str
    actual: str
    remediation: str
    unit: str | None = None
    findings: list[dict[str, Any]] = field(default_factory=list)
    reason: str = ""
    subject: str = ""
    cleanup: list[str] = field(default_factory=list)

    def details(self) -> dict[str, Any]:
        """What reaches summary.json and Allure with the claim."""
        return {
            "check": self.id, "title": self.title, "subject": self.subject,
            "expected": self.expected, "actual": self.actual, "remediation": self.remediation,
            "reason": self.reason, "findings": self.findings, "cleanup_failures": list(self.cleanup),
        }

    def line(self) -> str:
        """The one line a failing test shows: id, actual, expected, remediation."""
        head = f"{self.id} {self.title}"
        if self.subject:
            head += f" [{self.subject}]"
        if self.measured is None:
            return f"{head}: cannot judge: {self.reason} (expected {self.expected})"
        return f"{head}: {self.actual} (expected {self.expected}) — fix: {self.remediation}"


def stamp(spec: Any, r: CheckResult) -> CheckResult:
    """Fill in what the catalog entry ``spec`` says (id, title, metric, unit; expected and remediation
    unless the check gave more specific ones)."""
    r.id, r.title, r.metric, r.unit = spec.id, spec.title, spec.metric, spec.unit
    r.expected = r.expected or spec.expected
    r.remediation = r.remediation or spec.remediation
    return r


def unimplemented(catalog: dict[str, Any], implemented: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(catalog ids without an implementation, implemented ids without a catalog entry)."""
    return [c for c in catalog if c not in implemented], [c for c in implemented if c not in catalog]


def tag(request: Any, cid: str, title: str) -> None:
    """Mark the running test as check ``cid`` (its report carries the id, also when it skips)."""
    props = request.node.user_properties
    if (CHECK_PROPERTY, cid) not in props:
        props.extend([(CHECK_PROPERTY, cid), (TITLE_PROPERTY, title)])


def report(result: CheckResult, claim: Any, *, parameters: dict[str, Any] | None = None) -> CheckResult:
    """Record a check's figure as a claim and fail the test with the check's one line when the claim
    fails (or when a mutating check could not undo what it did, whatever the figure).

    The verdict is :func:`pytest_inference.claims.judge`'s, through the claim recorder: against the
    target's requirement for the metric, else the catalog's default, so a target without a
    requirement still cannot pass a defective deployment or endpoint. A check that measured nothing
    makes the claim inconclusive with its reason. The claim's details carry id, expected, actual,
    remediation and the findings (summary.json, Allure).
    """
    from .catalog.checks import check as check_spec
    from .claims import FAIL

    default = check_spec(result.id).requirement
    params = {"check": result.id, **(parameters or {})}
    details = result.details()
    if result.measured is None:
        # the session fails (or xfails) an inconclusive claim with its message
        c = claim.inconclusive(result.metric, f"{result.id} {result.title}: {result.reason}", unit=result.unit,
                               parameters=params, details=details, default=default)
    else:
        c = claim(result.metric, [result.measured], stat="value", unit=result.unit, details=details,
                  parameters=params, default=default)
    claim.attach(f"{result.id} details", json.dumps(details, indent=2, default=str))
    if c.verdict == FAIL or result.cleanup:
        pytest.fail(f"{result.line()} [{c.message()}]", pytrace=False)
    return result
