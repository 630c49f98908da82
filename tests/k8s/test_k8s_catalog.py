"""The check catalog (catalog/checks.toml) and the one path to a verdict: every catalog id has an
implementation and every implementation an entry; a check returns a figure and findings, and only
claims.judge decides — against the target's requirement, else the catalog's default."""

import re
from pathlib import Path

import pytest

from k8s_scenarios import outcome
from pytest_inference.catalog import find
from pytest_inference.catalog import checks as catalog
from pytest_inference.catalog.checks import CheckCatalogError
from pytest_inference.claims import FAIL, INCONCLUSIVE, MEASURED, PASS, Requirement
from pytest_inference.k8s import checks
from pytest_inference.k8s.manifests import load_manifests
from pytest_inference.k8s.model import Settings
from pytest_inference.targets import load_target

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fixtures" / "k8s"


def test_every_catalog_id_is_implemented_and_every_implementation_listed():
    missing, unlisted = checks.unimplemented()
    assert (missing, unlisted) == ([], []), f"catalog without implementation: {missing}; not in catalog: {unlisted}"
    assert list(checks.CHECKS) == list(catalog.checks())


def test_an_unknown_id_cannot_be_implemented():
    with pytest.raises(KeyError, match="no check 'K8S-NOPE-001' in .*checks.toml"):
        checks.check("K8S-NOPE-001")


def test_ids_are_written_once_in_the_checks_module():
    """@check takes only the id; the id string appears nowhere else in checks.py."""
    text = (ROOT / "pytest_inference" / "k8s" / "checks.py").read_text()
    for cid in catalog.checks():
        assert len(re.findall(re.escape(f'"{cid}"'), text)) == 1, cid


def test_every_check_has_a_suite_test_and_a_catalogued_metric():
    suite = "".join(p.read_text() for p in (ROOT / "suites" / "k8s").glob("test_*.py"))
    for cid, spec in catalog.checks().items():
        assert f'"{cid}"' in suite or cid in suite, f"{cid} is run by no test in suites/k8s"
        assert find(spec.metric) is not None, spec.metric
        assert spec.modes and set(spec.modes) <= {"static", "live"}


def test_shipped_targets_agree_with_the_catalog_defaults():
    """Where a shipped target requires a check's metric, it asks no less than the default (the
    default only stands in for a target that sets nothing)."""
    for name in ("cpu-local", "h100", "h200", "mi300x"):
        t = load_target(name)
        for spec in catalog.checks().values():
            req, default = t.requirement(spec.metric), spec.requirement
            if req is not None and default is not None:
                assert (req.op, float(req.threshold)) == (default.op, float(default.threshold)), (name, spec.id)


@pytest.mark.parametrize("raw, says", [
    ({"id": "bad id"}, "is not like 'K8S-AREA-001'"),
    ({"id": "K8S-X-001", "title": "t", "metric": "k8s.x", "concern": "c", "remediation": "r", "modes": ["nope"],
      "expected": {"text": "e"}}, "modes must be a non-empty list"),
    ({"id": "K8S-X-001", "title": "t", "metric": "k8s.x", "concern": "c", "remediation": "r", "modes": ["live"],
      "expected": {"op": "~", "threshold": 0, "text": "e"}}, "op must be one of"),
    ({"id": "K8S-X-001", "title": "t", "metric": "k8s.x", "concern": "c", "remediation": "r", "modes": ["live"],
      "expected": {"text": "e"}, "colour": 1}, "unknown field(s) colour"),
    ({"id": "K8S-X-001", "title": "", "metric": "k8s.x", "concern": "c", "remediation": "r", "modes": ["live"],
      "expected": {"text": "e"}}, "title must be one non-empty line"),
])
def test_a_malformed_catalog_entry_is_one_line(raw, says):
    with pytest.raises(CheckCatalogError) as e:
        catalog._entry(0, raw)
    assert says in str(e.value) and "\n" not in str(e.value)


def test_the_readme_table_is_the_catalog():
    table = catalog.readme_table()
    for cid, spec in catalog.checks().items():
        row = next(ln for ln in table.splitlines() if ln.startswith(f"| {cid} |"))
        assert spec.expected in row and spec.metric in row
    assert "| K8S-TAINT-001 | every workload pod on a GPU node was bound after the taint left that node | " \
           "`k8s.taint_gate_violations == 0` | – | ✓ |" in table
    assert "`k8s.scale_out_s` (the target's requirement only) | – | mutation |" in table
    from pytest_inference.catalog.readme import stale

    assert "checks" not in stale((ROOT / "README.md").read_text()), \
        "README checks table stale: python -m pytest_inference.catalog readme README.md"


# --------------------------------------------------------------------------- one path to a verdict


def _broken(variant):
    return load_manifests(FIXTURES / "broken" / variant)


def test_results_carry_a_figure_not_a_verdict():
    r = checks.run_check("K8S-TUNER-003", _broken("tuner-or-true"), Settings())
    assert not hasattr(r, "status") and r.measured >= 1 and r.findings and r.reason == ""
    assert (r.id, r.metric, r.title) == ("K8S-TUNER-003", "k8s.tuner_masked_failures", "tuner does not mask failures")
    assert r.remediation == catalog.check("K8S-TUNER-003").remediation


def test_a_target_without_the_requirement_still_fails_a_defective_deployment():
    r = checks.run_check("K8S-TUNER-003", _broken("tuner-or-true"), Settings())
    test, line, claim = outcome(r, {})  # the target sets nothing for k8s.tuner_masked_failures
    assert test == "failed" and claim.verdict == FAIL and (claim.op, claim.threshold) == ("==", 0)
    assert line.startswith("K8S-TUNER-003 tuner does not mask failures") and "— fix:" in line
    good = checks.run_check("K8S-TUNER-003", load_manifests(FIXTURES / "reference"), Settings())
    assert outcome(good, {})[:1] == ("passed",) and outcome(good, {})[2].verdict == PASS


def test_the_target_requirement_replaces_the_default():
    obs = _broken("short-startup-budget")
    r = checks.run_check("K8S-DEPLOY-002", obs, Settings(model_load_s=220, model_load_source="seed"))
    assert r.measured == pytest.approx(-35)
    assert outcome(r, {})[0] == "failed"  # default >= 0
    lenient = {"k8s.startup_budget_headroom_s": Requirement("k8s.startup_budget_headroom_s", ">=", -60)}
    test, _, claim = outcome(r, lenient)
    assert test == "passed" and claim.verdict == PASS and claim.threshold == -60


def test_nothing_measured_is_inconclusive_with_the_reason():
    r = checks.run_check("K8S-DEPLOY-002", load_manifests(FIXTURES / "reference"), Settings())
    assert r.measured is None and "--model-load-s" in r.reason
    test, _, claim = outcome(r, {})
    assert test == "passed" and claim.verdict == INCONCLUSIVE and "--model-load-s" in claim.reason
    assert checks.judged(r).verdict == INCONCLUSIVE
    r = checks.cannot_measure("K8S-SCALE-001", "no vLLM Deployment in view")
    assert (r.metric, r.measured, r.reason) == ("k8s.scale_out_s", None, "no vLLM Deployment in view")
    assert outcome(r, {})[2].verdict == INCONCLUSIVE


def test_a_metric_without_default_or_target_requirement_is_measured_only():
    from pytest_inference.k8s.mutate import ScaleResult

    r = checks.scale_out_result(ScaleResult("vllm", "vllm", 1, 3, seconds=500))
    assert outcome(r, {})[2].verdict == MEASURED
    h100 = load_target("h100").requirements
    assert outcome(r, h100)[2].verdict == FAIL


def test_a_check_that_meets_an_unreadable_value_measures_nothing():
    obs = load_manifests(FIXTURES / "reference")
    dep = next(o for o in obs.objects if o.get("kind") == "Deployment")
    dep["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = "${grace}"
    r = checks.run_check("K8S-DEPLOY-004", obs, Settings())
    assert r.measured is None and "cannot read" in r.reason and r.id == "K8S-DEPLOY-004"
    assert checks.judged(r).verdict == INCONCLUSIVE
