"""The conformance report: one row per check id (``K8S-DEPLOY-001``, ``API-SSE-001``, …) instead of one per claim.

A suite that checks rules records each check's figure as a claim whose ``details`` carry ``check``
(the id), ``title``, ``subject``, ``expected``, ``actual``, ``remediation`` and ``reason``
(the suites' ``report()``). A check that cannot run at all is a skipped test whose
report carries the id in ``user_properties`` (``("inference_check", ID)`` and
``("inference_check_title", TITLE)``, appended by the suite's fixture before it runs the check); a
check's test that errored before it recorded a claim is an inconclusive part. This sink folds them
into one row per id — the worst verdict of every subject/mode the check was reported for — and
writes it three ways: a ``conformance`` table at the end of the terminal output, ``summary.json``'s
``conformance`` section, and ``conformance-report.yaml`` in the report folder, shaped like the
Gateway API's (and the Gateway API Inference Extension's) ``ConformanceReport`` so the tooling and
readers of those reports know where to look. ``-p no:inference-conformance`` removes all three.

The pure part (:func:`rows`, :func:`section`, :func:`format_table`, :func:`conformance_report`) is
tested on constructed claims; the rest are the hook implementations (:mod:`pytest_inference.hookspec`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import urlsplit, urlunsplit

import pytest

from ..checks import CHECK_PROPERTY, TITLE_PROPERTY  # what a suite's fixture tags a check's test with
from ..claims import FAIL, INCONCLUSIVE, MEASURED, PASS, Claim, fmt
from .terminal import aligned

SKIPPED = "skipped"
#: worst first: a check's row takes the worst verdict of its parts
SEVERITY = (FAIL, INCONCLUSIVE, SKIPPED, MEASURED, PASS)
_RANK = {v: i for i, v in enumerate(SEVERITY)}
REPORT_FILE = "conformance-report.yaml"
#: the ConformanceReport kind/apiVersion of the Gateway API (GEP-1709), whose shape the YAML follows
API_VERSION = "gateway.networking.k8s.io/v1"
KIND = "ConformanceReport"
ACTUAL_WIDTH = 60

_MARKUP = {PASS: {"green": True}, FAIL: {"red": True, "bold": True}, INCONCLUSIVE: {"yellow": True}}


@dataclass(frozen=True)
class SkippedCheck:
    """A check whose test made no claim: the id and title its fixture put in ``user_properties``, and
    why. ``verdict`` ``skipped`` (the test skipped: the skip reason), or ``inconclusive`` for a test
    that errored before its claim (``reason``: the error's one line); :func:`rows` drops the latter
    when the same test did record a claim for the check (a failing claim fails its test too)."""

    id: str
    title: str = ""
    reason: str = ""
    test: str = ""
    verdict: str = SKIPPED


def skipped_check(report: Any) -> SkippedCheck | None:
    """The check a test report that made no claim is about (None: passed, an xfail, or no check id)."""
    if hasattr(report, "wasxfail"):
        return None
    props = dict(getattr(report, "user_properties", None) or ())
    cid = props.get(CHECK_PROPERTY)
    if not isinstance(cid, str) or not cid:
        return None
    title, test = str(props.get(TITLE_PROPERTY) or ""), getattr(report, "nodeid", "")
    longrepr = getattr(report, "longrepr", None)
    if getattr(report, "skipped", False):
        reason = str(longrepr[2]) if isinstance(longrepr, tuple) and len(longrepr) == 3 else "skipped"
        return SkippedCheck(id=cid, title=title, reason=reason.removeprefix("Skipped: "), test=test)
    if getattr(report, "failed", False):
        crash = getattr(longrepr, "reprcrash", None)
        line = " ".join(str(getattr(crash, "message", "") or "").split()) or f"the test failed in {report.when}"
        return SkippedCheck(id=cid, title=title, test=test, verdict=INCONCLUSIVE,
                            reason=f"the check's test failed in {report.when} before judging: {line[:200]}")
    return None


def suite_of(cid: str) -> str:
    """The suite an id belongs to: its prefix (``API-SSE-001`` -> ``API``)."""
    return cid.split("-", 1)[0]


def _text(v: Any) -> str:
    return "" if v is None else str(v)


def _claim_part(c: Claim) -> dict[str, Any]:
    d = c.details
    if c.op is not None:
        requirement = f"{c.metric} {c.requirement_text()}"
    else:
        requirement = f"{c.metric} (no requirement: measured only)"
    actual = _text(d.get("actual"))
    if not actual:  # a claim that is not a suite's check result: its figure, else why there is none
        actual = f"{fmt(c.measured)} {c.unit or ''}".strip() if c.measured is not None else c.reason
    return {
        "subject": _text(d.get("subject") or d.get("mode")),
        "verdict": c.verdict,
        "measured": c.measured,
        "unit": c.unit,
        "requirement": requirement,
        "actual": actual,
        "expected": _text(d.get("expected")),
        "remediation": _text(d.get("remediation")),
        "reason": c.reason,
        "test": c.test or "",
    }


def _skipped_part(s: SkippedCheck) -> dict[str, Any]:
    return {"subject": "", "verdict": s.verdict, "measured": None, "unit": None, "requirement": "",
            "actual": "", "expected": "", "remediation": "", "reason": s.reason, "test": s.test}


def rows(claims: Sequence[Claim], skipped: Sequence[SkippedCheck] = ()) -> list[dict[str, Any]]:
    """One row per check id, in first-seen order (claims first, then checks whose tests made no claim).

    A check reported several times (per node, per endpoint mode, a skipped run of it) folds into one
    row: the worst part's verdict and figures (fail > inconclusive > skipped > measured > pass), with
    ``subjects`` the number of parts and ``parts`` all of them. Claims without ``details["check"]``
    are not checks and are left out.
    """
    parts: dict[str, list[dict[str, Any]]] = {}
    titles: dict[str, str] = {}
    judged: set[tuple[str, str]] = set()
    for c in claims:
        cid = c.details.get("check")
        if not isinstance(cid, str) or not cid:
            continue
        parts.setdefault(cid, []).append(_claim_part(c))
        judged.add((cid, c.test or ""))
        if not titles.get(cid) and c.details.get("title"):
            titles[cid] = str(c.details["title"])
    for s in skipped:
        if s.verdict != SKIPPED and (s.id, s.test) in judged:
            continue  # the test failed because of (or after) its claim: the claim is the check's part
        parts.setdefault(s.id, []).append(_skipped_part(s))
        if not titles.get(s.id) and s.title:
            titles[s.id] = s.title
    out = []
    for cid, ps in parts.items():
        worst = min(ps, key=lambda p: _RANK.get(p["verdict"], len(SEVERITY)))  # the first of the worst
        actual = worst["actual"]
        if len(ps) > 1 and worst["subject"] and actual:
            actual = f"{worst['subject']}: {actual}"
        requirement = worst["requirement"] or next((p["requirement"] for p in ps if p["requirement"]), "")
        out.append({
            "id": cid,
            "title": titles.get(cid, ""),
            "verdict": worst["verdict"],
            "measured": worst["measured"],
            "unit": worst["unit"],
            "requirement": requirement,
            "actual": actual,
            "expected": worst["expected"] or next((p["expected"] for p in ps if p["expected"]), ""),
            "remediation": worst["remediation"] or next((p["remediation"] for p in ps if p["remediation"]), ""),
            "reason": worst["reason"],
            "subjects": len(ps),
            "parts": ps,
        })
    return out


def totals(check_rows: Sequence[dict[str, Any]]) -> dict[str, int]:
    """How many checks ended in each verdict (every verdict listed, 0 included)."""
    out = {v: 0 for v in (PASS, FAIL, INCONCLUSIVE, SKIPPED, MEASURED)}
    for r in check_rows:
        out[r["verdict"]] = out.get(r["verdict"], 0) + 1
    return out


def section(check_rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """``summary.json``'s ``conformance``: the rows, the run's totals and each suite's (by id prefix)."""
    by_suite: dict[str, list[dict[str, Any]]] = {}
    for r in check_rows:
        by_suite.setdefault(suite_of(r["id"]), []).append(r)
    return {"checks": list(check_rows), "totals": totals(check_rows),
            "suites": {name: totals(rs) for name, rs in by_suite.items()}}


# --- terminal ---------------------------------------------------------------------------------------
def headline(t: dict[str, int]) -> str:
    """``conformance (4 checks: 1 pass, 1 fail, 1 inconclusive, 1 skipped)`` (measured only when any)."""
    n = sum(t.values())
    text = f"{n} check{'s' if n != 1 else ''}: {t[PASS]} pass, {t[FAIL]} fail, {t[INCONCLUSIVE]} inconclusive, " \
           f"{t[SKIPPED]} skipped"
    if t.get(MEASURED):
        text += f", {t[MEASURED]} measured"
    return f"conformance ({text})"


def _cut(text: str, width: int = ACTUAL_WIDTH) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def format_table(check_rows: Sequence[dict[str, Any]]) -> list[tuple[str, str]]:
    """The table's lines (id, verdict, actual cut to ~60 characters, requirement) with the verdict
    each colours by, then one ``ID: actual — fix: remediation`` line per failing check. Pure."""
    header = ("id", "verdict", "actual", "requirement")
    body = []
    for r in check_rows:
        verdict = r["verdict"] + (f" ({r['subjects']} parts)" if r["subjects"] > 1 else "")
        actual = r["actual"] or (r["reason"] if r["verdict"] in (SKIPPED, INCONCLUSIVE) else "")
        body.append((r["id"], verdict, _cut(actual), r["requirement"] or "-"))
    out = list(zip(aligned(header, body), ["", ""] + [r["verdict"] for r in check_rows]))
    for r in check_rows:
        if r["verdict"] == FAIL:
            fix = f" — fix: {' '.join(r['remediation'].split())}" if r["remediation"] else ""
            out.append((f"{r['id']}: {' '.join((r['actual'] or r['reason']).split())}{fix}", FAIL))
    return out


# --- ConformanceReport YAML ---------------------------------------------------------------------------
def _result(t: dict[str, int]) -> str:
    """Gateway API's profile result: failure (any fail), partial (inconclusive or skipped), success."""
    if t[FAIL]:
        return "failure"
    if t[INCONCLUSIVE] or t[SKIPPED]:
        return "partial"
    return "success"


def _profile_summary(t: dict[str, int], result: str) -> str:
    if result == "success":
        return "Core tests succeeded."
    if result == "failure":
        return f"Core tests failed with {t[FAIL]} test failure{'s' if t[FAIL] != 1 else ''}."
    held = [f"{t[k]} {k}" for k in (INCONCLUSIVE, SKIPPED) if t[k]]
    return f"Core tests partially succeeded: {' and '.join(held)}."


def _public_url(url: Any) -> str:
    """The endpoint without user:password@, query or fragment (a key never travels in the report)."""
    if not url:
        return ""
    try:
        parts = urlsplit(str(url))
        host = parts.hostname or ""
        if parts.port:
            host = f"{host}:{parts.port}"
        return urlunsplit((parts.scheme, host, parts.path, "", ""))
    except ValueError:
        return ""


def conformance_report(sec: dict[str, Any], run: dict[str, Any] | None = None, *, target: str | None = None,
                       date: datetime | None = None) -> dict[str, Any]:
    """The ``ConformanceReport`` document for a :func:`section` (``run``: summary.json's run section).

    Field names follow the Gateway API's report (apiVersion, kind, date, implementation, mode,
    profiles[].name/core.result/statistics/skippedTests/failedTests/summary); one profile per suite.
    Ours, not the Gateway API's: ``Inconclusive`` and ``Measured`` in statistics, ``inconclusiveTests``,
    and the top-level ``endpoint``/``model``/``server``/``target`` (what was checked).
    """
    from .. import __version__

    run = run or {}
    by_suite: dict[str, list[dict[str, Any]]] = {}
    for r in sec["checks"]:
        by_suite.setdefault(suite_of(r["id"]), []).append(r)
    profiles = []
    for name, rs in by_suite.items():
        t = totals(rs)
        result = _result(t)
        core: dict[str, Any] = {
            "result": result,
            "statistics": {"Passed": t[PASS], "Failed": t[FAIL], "Skipped": t[SKIPPED],
                           "Inconclusive": t[INCONCLUSIVE], "Measured": t[MEASURED]},  # the last two: ours
        }
        for key, verdict in (("failedTests", FAIL), ("skippedTests", SKIPPED), ("inconclusiveTests", INCONCLUSIVE)):
            ids = [r["id"] for r in rs if r["verdict"] == verdict]
            if ids:
                core[key] = ids
        profiles.append({"name": name, "core": core, "summary": _profile_summary(t, result)})
    when = (date or datetime.now(timezone.utc)).astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    doc: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "date": when,
        "implementation": {"organization": "pytest-inference", "project": "pytest-inference",
                           "url": _public_url(run.get("endpoint")), "version": __version__, "contact": []},
        "mode": "default",
        "profiles": profiles,
    }
    for key, value in (("endpoint", _public_url(run.get("endpoint"))), ("model", run.get("model")),
                       ("server", run.get("server")), ("target", target)):
        if value:
            doc[key] = str(value)
    return doc


def dump_yaml(doc: dict[str, Any]) -> str:
    """The report's YAML text, with a comment saying what it is."""
    import yaml

    head = ("# pytest-inference conformance report, in the shape of the Gateway API's ConformanceReport.\n"
            "# Ours: statistics Inconclusive/Measured, inconclusiveTests, endpoint/model/server/target.\n")
    return head + yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, allow_unicode=True)


# --- the sink: state on the config's stash, and implementations of the hooks in hookspec.py -------------
class _Checks:
    """The checks of one run whose tests made no claim (registered per config, so two runs in one process share nothing)."""

    def __init__(self) -> None:
        self.skipped: list[SkippedCheck] = []
        self._seen: set[tuple[str, str]] = set()

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        # under xdist the controller gets every worker's reports, user_properties included
        s = skipped_check(report)
        if s is not None and (s.id, s.test) not in self._seen:  # one part per test (call + teardown fail)
            self._seen.add((s.id, s.test))
            self.skipped.append(s)


CHECKS_KEY: pytest.StashKey[_Checks] = pytest.StashKey()
_COLLECTOR = "inference-conformance-checks"


def pytest_configure(config: pytest.Config) -> None:
    checks = _Checks()
    config.stash[CHECKS_KEY] = checks
    config.pluginmanager.register(checks, _COLLECTOR)


def pytest_unconfigure(config: pytest.Config) -> None:
    checks = config.stash.get(CHECKS_KEY, None)
    if checks is not None and config.pluginmanager.is_registered(checks):
        config.pluginmanager.unregister(checks)


def _skipped(config: pytest.Config) -> list[SkippedCheck]:
    checks = config.stash.get(CHECKS_KEY, None)
    return list(checks.skipped) if checks else []


def _claims(config: pytest.Config) -> list[Claim]:
    from ..session import SESSION_KEY

    state = config.stash.get(SESSION_KEY, None)
    return state.ordered_claims() if state else []


def pytest_inference_summary(config, summary) -> None:
    """``summary["conformance"]`` = :func:`section`, when the run saw any check."""
    found = rows(_claims(config), _skipped(config))
    if found:
        summary["conformance"] = section(found)


def pytest_inference_report(session, summary, claims) -> None:
    """Write ``conformance-report.yaml`` next to ``summary.json`` (atomically); a failed write is one red
    line and exit status 3 (unless the run already failed)."""
    from ..session import SESSION_KEY
    from ..supervise import write_text_atomic

    config = session.config
    state = config.stash.get(SESSION_KEY, None)
    found = rows(claims, _skipped(config))
    if state is None or not found:
        return
    path = state.report_dir / REPORT_FILE
    target = getattr(state.target, "name", None)
    text = dump_yaml(conformance_report(section(found), summary.get("run"), target=target))
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, state.redact(text), mode=0o644)
    except OSError as exc:
        config.get_terminal_writer().line(f"inference: could not write {path}: {exc.strerror or exc}", red=True)
        if session.exitstatus == 0:
            session.exitstatus = pytest.ExitCode.INTERNAL_ERROR


@pytest.hookimpl(trylast=True)  # after the claims table
def pytest_inference_terminal_summary(config, terminalreporter, claims) -> None:
    """The ``conformance`` section: one line per check, then each failing check's fix."""
    from ..session import SESSION_KEY

    found = rows(claims, _skipped(config))
    if not found:
        return
    state = config.stash.get(SESSION_KEY, None)
    redact = state.redact if state is not None else (lambda s: s)
    t = totals(found)
    colour = {"red": True} if t[FAIL] else {"yellow": True} if t[INCONCLUSIVE] or t[SKIPPED] else {"green": True}
    terminalreporter.write_sep("=", headline(t), **colour)
    for text, verdict in format_table(found):
        terminalreporter.write_line(redact(text), **_MARKUP.get(verdict, {}))
    path = state.report_dir / REPORT_FILE if state is not None else None
    if path is not None and path.is_file():  # written only when the run recorded claims (hookspec.py)
        terminalreporter.write_line(f"report: {path}")
