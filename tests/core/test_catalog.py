"""The metric catalog (pytest_inference/catalog): its entries, lookups, the README generator, and
that every metric the suites report and the shipped targets require is in it."""

import ast
import importlib
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from pytest_inference import catalog, stats
from pytest_inference.baseline import Baseline
from pytest_inference.catalog import readme
from pytest_inference.claims import Claim, Requirement, judge
from pytest_inference.report.comparison import format_rows, side_by_side
from pytest_inference.targets import available_targets, load_target

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
#: calls whose metric-shaped first argument is not a claim's metric (a measurement, a prefix test)
NOT_METRIC_CALLS = {"publish", "measurement", "len", "startswith", "endswith", "removeprefix"}


# --------------------------------------------------------------------------- the catalog itself

def test_entries_are_well_formed():
    ms = catalog.metrics()
    assert len(ms) >= 40 and len({m.name for m in ms}) == len(ms)
    for m in ms:
        assert m.stat in stats.STATS and m.better in ("lower", "higher", "zero", None), m
        assert m.description and "\n" not in m.description and len(m.description) <= 140, m.name
        assert m.unit is None or re.fullmatch(r"[A-Za-z$%/]+", m.unit), m.name
        # the name says the unit; a count that must be 0 has none
        base = re.sub(r"\.\{[a-z_]+\}$", "", m.name)
        for suffix, unit in (("_ms", "ms"), ("_tok_s", "tok/s"), ("_MBps", "MB/s"), ("_rps", "req/s"), ("_s", "s"),
                             ("_ratio", "x"), ("_swing", "x")):
            if base.endswith(suffix):
                assert m.unit == unit, f"{m.name}: unit {m.unit!r}, its name says {unit!r}"
                break
        if m.better == "zero":
            assert m.unit is None and m.stat == "value", m.name
        if m.unit in ("ms", "s") and not m.name.endswith("headroom_s"):
            assert m.better in ("lower", None), f"{m.name}: a duration but better {m.better}"


def test_lookup_exact_family_and_unknown():
    m = catalog.metric("warm.ttft_median_ms")
    assert (m.unit, m.stat, m.better, m.family) == ("ms", "median", "lower", None)
    phase = catalog.metric("coldstart.phase.weights_load_s")
    assert (phase.name, phase.unit, phase.stat, phase.family) == (
        "coldstart.phase.weights_load_s", "s", "max", "coldstart.phase.{phase}_s")
    assert catalog.metric("economics.breakeven_rps.any_length_9").unit == "req/s"  # free-named family member
    assert catalog.find("coldstart.phase.lunch_s") is None  # phases are the parser's names only
    assert catalog.find("economics.breakeven_rps.") is None and catalog.find("warm.ttft_median_ms.x") is None
    with pytest.raises(catalog.UnknownMetric) as e:
        catalog.metric("warm.ttft_medain_ms")
    assert "unknown metric 'warm.ttft_medain_ms' (did you mean 'warm.ttft_median_ms'?)" in str(e.value)
    assert "\n" not in str(e.value)
    assert catalog.suggest("totally.different") is None
    assert catalog.metric("drain.dropped_requests").direction == "lower"  # zero: fewer is better
    assert catalog.metric("coldstart.floor_s").direction is None


def test_phase_family_lists_the_parsers_phases():
    from pytest_inference.vllm import startup_log as parser
    assert catalog.metric("coldstart.phase.weights_load_s").values == parser.PHASE_NAMES


@pytest.mark.parametrize("raw,msg", [
    ({"name": "x", "unit": "", "stat": "value", "better": "none", "description": "d"}, "is not like"),
    ({"name": "a.b_s", "unit": "s", "stat": "value", "better": "none"}, "lacks description"),
    ({"name": "a.b_s", "unit": "s", "stat": "p77", "better": "none", "description": "d"}, "stat 'p77'"),
    ({"name": "a.b_s", "unit": "s", "stat": "max", "better": "up", "description": "d"}, "better 'up'"),
    ({"name": "a.b_s", "unit": "s s", "stat": "max", "better": "lower", "description": "d"}, "unit 's s'"),
    ({"name": "a.b_s", "unit": "s", "stat": "max", "better": "lower", "description": "two\nlines"}, "one non-empty line"),
    ({"name": "a.b_s", "unit": "s", "stat": "max", "better": "lower", "description": "d", "colour": 1}, "unknown field"),
    ({"name": "a.b_s", "unit": "s", "stat": "max", "better": "lower", "description": "d", "values": ["x"]},
     "not one {placeholder}"),
])
def test_malformed_entries_are_one_line(raw, msg):
    with pytest.raises(catalog.CatalogError) as e:
        catalog._entry(0, raw)
    assert msg in str(e.value) and "\n" not in str(e.value)


# --------------------------------------------------------------------------- every reported metric is in it

def _shape(literal: str) -> str | None:
    """A metric-shaped literal (f-string holes as {x}), or None."""
    return literal if re.fullmatch(r"(warm|coldstart|drain|serverless|economics|storage|node|k8s|api|load)\.[A-Za-z0-9_.{}]+",
                                   literal) else None


def _text(node: ast.AST) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "{x}" for v in node.values)
    return None


def _reported_metrics() -> dict[str, list[tuple[str, str | None, str | None]]]:
    """metric (holes as {x}) -> [(where, stat=..., unit=...)] from the suites' and the plugin's source:
    metric-shaped positional arguments of calls (claim, claim.inconclusive, judge, a metric -> field table's
    rows; not a published measurement's name), ``metric=`` keywords, ``metric = ...`` assignments, and
    dicts keyed only by metrics."""
    found: dict[str, list[tuple[str, str | None, str | None]]] = {}
    files = sorted((ROOT / "suites").rglob("*.py")) + sorted((ROOT / "pytest_inference").rglob("*.py"))
    for path in files:
        tree = ast.parse(path.read_text(), str(path))
        where = str(path.relative_to(ROOT))
        for node in ast.walk(tree):
            names: list[tuple[str | None, ast.Call | None]] = []
            if isinstance(node, ast.Call):
                fn = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
                if fn not in NOT_METRIC_CALLS:  # any metric-shaped positional (a helper may take it third)
                    names += [(_text(a), node) for a in node.args]
                names += [(_text(k.value), None) for k in node.keywords if k.arg == "metric"]
            elif isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "metric" for t in node.targets):
                names.append((_text(node.value), None))
            elif isinstance(node, ast.Dict) and node.keys:
                keys = [_text(k) if k is not None else None for k in node.keys]
                if all(k and _shape(k) for k in keys):
                    names += [(k, None) for k in keys]
            for name, call in names:
                if name and _shape(name) and not name.endswith("."):
                    kw = {k.arg: _text(k.value) for k in call.keywords} if call else {}
                    found.setdefault(name, []).append((where, kw.get("stat"), kw.get("unit")))
    return found


def _catalogued(name: str) -> catalog.Metric | None:
    if "{x}" not in name:
        return catalog.find(name)
    shape = re.escape(name).replace(re.escape("{x}"), r"\{[a-z_]+\}")
    return next((m for m in catalog.metrics() if m.family and re.fullmatch(shape, m.name)), None)


def test_every_metric_the_source_reports_is_catalogued():
    found = _reported_metrics()
    # the scan sees the suites' claims (a broken scan would pass vacuously)
    assert {"warm.ttft_median_ms", "coldstart.phase.{x}_s", "economics.breakeven_rps.{x}", "node.rmem_max",
            "storage.nfs_read_MBps", "drain.dropped_requests"} <= set(found)
    missing = sorted(f"{n} ({found[n][0][0]})" for n in found if _catalogued(n) is None
                     and not any(w.startswith("pytest_inference/testing") for w, _, _ in found[n]))
    assert not missing, f"metrics reported but not in pytest_inference/catalog/metrics.toml: {missing}"


def test_suites_report_the_catalogs_unit_and_statistic():
    """A requirement's statistic defaults from the catalog and overrides the suite's: they must agree."""
    wrong = []
    for name, uses in _reported_metrics().items():
        m = _catalogued(name)
        for where, stat, unit in uses:
            if m is None or not where.startswith("suites/"):
                continue
            if stat is not None and stat != m.stat:
                wrong.append(f"{where}: {name} stat={stat!r}, catalog {m.stat!r}")
            if unit is not None and unit != (m.unit or ""):
                wrong.append(f"{where}: {name} unit={unit!r}, catalog {m.unit!r}")
    assert not wrong, wrong


def test_every_metric_of_the_shipped_targets_and_checks_is_catalogued():
    for name in available_targets():
        source = Path(load_target(name).source)
        for metric in tomllib.loads(source.read_text()).get("claims", {}):
            assert catalog.find(metric), f"{source.name}: {metric}"
    checks = Path(catalog.__file__).parent / "checks.toml"
    if checks.exists():  # the check catalog names the metric each check reports
        for entry in tomllib.loads(checks.read_text()).get("check", []):
            for metric in [entry.get("metric"), *entry.get("inputs", {})]:
                assert catalog.find(metric), f"checks.toml {entry.get('id')}: {metric}"


# --------------------------------------------------------------------------- consumers read it

def test_baseline_direction_from_the_catalog(tmp_path):
    import json

    p = tmp_path / "base.json"
    p.write_text(json.dumps({"schema": 1, "claims": [
        {"metric": "node.stale_nfs_connections", "measured": 0, "op": "==", "test": "t"},
        {"metric": "coldstart.floor_s", "measured": 10.0, "test": "t"},
        {"metric": "k8s.startup_budget_headroom_s", "measured": 60.0, "unit": "s", "test": "t"},
    ]}))
    b = Baseline.load(str(p), "10%")
    # a must-be-0 count that rose regressed (op "==" says no direction; the catalog does)
    assert b.compare(judge("node.stale_nfs_connections", [2], requirement=Requirement("x", "==", 0)))["regression"]
    # better "none": never a regression, whichever way it moves
    assert b.compare(judge("coldstart.floor_s", [30.0]))["better"] is None
    assert not b.compare(judge("coldstart.floor_s", [30.0]))["regression"]
    # a headroom in seconds is better higher (a unit list said 's' = lower)
    shrunk = judge("k8s.startup_budget_headroom_s", [20.0], unit="s")
    assert b.compare(shrunk)["regression"] and b.compare(shrunk)["better"] == "higher"


def _claim(metric, value, unit=None):
    return Claim(metric=metric, measured=value, unit=unit, stat="value", samples=[value], verdict="measured")


def test_comparison_table_units_from_the_catalog():
    rows = side_by_side([_claim("warm.ttft_median_ms", 7.0, "ms"), _claim("serverless.ttft_median_ms", 546.0),
                         _claim("coldstart.total_s", 55.0), _claim("serverless.cold_probe_ms", 900.0, "ms")])
    by = {r["row"]: r for r in rows}
    assert by["median TTFT"]["serverless"]["unit"] == "ms"  # the claim had none: the catalog's
    assert by["cold start"]["self_hosted"]["unit"] == "s" and "output throughput" not in by
    text = "\n".join(format_rows(rows))
    assert "546 ms" in text and "55 s" in text and "900 ms" in text
    assert side_by_side([_claim("warm.ttft_median_ms", 7.0)]) is None  # no serverless side: no table


# --------------------------------------------------------------------------- the README generator

def test_readme_is_current():
    """CI: the README's generated tables match the catalogs (rewrite: python -m pytest_inference.catalog readme README.md)."""
    res = subprocess.run([sys.executable, "-m", "pytest_inference.catalog", "readme", "--check", str(README)],
                         capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert res.returncode == 0, res.stderr + res.stdout
    assert "catalog:metrics:begin" in README.read_text()


def _doc(tmp_path, body):
    p = tmp_path / "README.md"
    p.write_text(f"# Title\n\nintro\n\n{body}\n\n## After\n\ntext stays\n")
    return p


def test_readme_rewrite_then_check(tmp_path):
    begin, end = readme.markers("metrics")
    p = _doc(tmp_path, f"{begin}\nold table\n{end}")
    tables = {"metrics": readme.metrics_table}
    assert readme.stale(p.read_text(), tables) == ["metrics"]
    p.write_text(readme.render(p.read_text(), tables))
    text = p.read_text()
    assert readme.stale(text, tables) == [] and readme.render(text, tables) == text  # idempotent
    assert "| `warm.ttft_median_ms` | ms | lower |" in text and "old table" not in text
    assert text.startswith("# Title\n\nintro\n\n") and text.endswith("## After\n\ntext stays\n")
    assert "| `coldstart.phase.{phase}_s` | s | lower |" in text and "| `coldstart.floor_s` | s | – |" in text


def test_readme_cli_check_and_write(tmp_path):
    p = tmp_path / "README.md"
    body = "\n".join(f"{a}\nOLD ROWS\n{b}" for a, b in (readme.markers(r) for r in readme.regions()))
    p.write_text(f"# T\n\n{body}\n")

    def run(*args):
        return subprocess.run([sys.executable, "-m", "pytest_inference.catalog", "readme", *args, str(p)],
                              capture_output=True, text=True, cwd=ROOT, timeout=60)

    res = run("--check")
    assert res.returncode == 1 and len(res.stderr.strip().splitlines()) == 1
    assert "out of date with the catalog" in res.stderr and "Traceback" not in res.stderr
    assert run().returncode == 0 and "OLD ROWS" not in p.read_text()
    res = run("--check")
    assert res.returncode == 0, res.stderr


@pytest.mark.parametrize("body,msg", [
    ("no markers at all", "needs exactly one <!-- catalog:metrics:begin -->"),
    ("<!-- catalog:metrics:end -->\n<!-- catalog:metrics:begin -->", "comes before"),
    ("<!-- catalog:metrics:begin -->\n<!-- catalog:metrics:begin -->\n<!-- catalog:metrics:end -->", "found 2 and 1"),
])
def test_readme_broken_markers_are_one_line(tmp_path, body, msg):
    p = _doc(tmp_path, body)
    rc, line = readme.main(str(p), check=True)
    assert rc == 2 and msg in line and "\n" not in line
    assert readme.main(str(tmp_path / "nope.md"))[0] == 2


def test_regions_include_the_check_catalog_when_it_has_a_table():
    regions = readme.regions()
    assert regions["metrics"] is readme.metrics_table
    try:
        checks = importlib.import_module("pytest_inference.catalog.checks")
    except ModuleNotFoundError:
        assert "checks" not in regions
    else:
        assert ("checks" in regions) == callable(getattr(checks, "readme_table", None))


def test_catalog_imports_nothing_heavy():
    code = ("import sys, pytest_inference.catalog as c, pytest_inference.catalog.readme as r; c.metrics(); "
            "r.metrics_table(); print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('vllm', 'kubernetes', 'allure', 'matplotlib', 'prometheus_client', 'openai', 'pytest')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stderr
