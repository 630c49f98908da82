import pytest

from pytest_inference.targets import TargetError, available_targets, describe_targets, load_target


def test_shipped_targets():
    assert {"mi300x", "h100", "h200", "cpu-local"} <= set(available_targets())
    for name in available_targets():
        assert load_target(name).name == name


def test_mi300x_carries_the_seed_figures():
    t = load_target("mi300x")
    r = t.requirements
    assert (r["coldstart.total_s"].op, r["coldstart.total_s"].threshold) == ("<", 65)
    assert (r["warm.ttft_spread_ms"].threshold, r["warm.ttft_spread_ms"].min_samples) == (5, 20)
    assert (r["warm.ttft_median_ms"].op, r["warm.ttft_median_ms"].threshold) == ("<=", 350)
    assert r["warm.output_tok_s"].threshold == 150
    assert r["storage.nfs_read_MBps"].threshold == 800
    assert r["node.mtu"].threshold == 9000
    assert r["node.rmem_max"].threshold == 16 * 2**20
    assert r["storage.nconnect"].threshold == 8
    assert t.setting("warm_requests") == 20


def test_h200_extends_h100():
    h100, h200 = load_target("h100"), load_target("h200")
    assert h200.name == "h200" and h200.requirements == h100.requirements


def test_unknown_name_lists_available():
    with pytest.raises(TargetError) as e:
        load_target("mi301x")
    msg = str(e.value)
    assert "unknown target 'mi301x'" in msg and "mi300x" in msg and "cpu-local" in msg and "\n" not in msg


@pytest.mark.parametrize(
    "body,expect",
    [
        ("name = [", "malformed target profile"),
        ('[claims]\n"warm.ttft_median_ms" = { op = "<<", threshold = 5 }', "op must be one of"),
        ('[claims]\n"warm.ttft_median_ms" = { op = "<", threshold = "five" }', "threshold must be a number"),
        ('[claims]\n"warm.ttft_median_ms" = { op = "<" }', "lacks threshold"),
        ('[claims]\n"warm.ttft_median_ms" = { op = "<", threshold = 1, color = "red" }', "unknown key(s) color"),
        ('[claimz]\n"a.b" = 1', "unknown top-level key(s) claimz"),
        ('claims = 5', "'claims' must be a table"),
        ('confidence = 2', "'confidence' must be a number between 0 and 1"),
        ('extends = "nope"', "unknown target 'nope'"),
        # what a metric is comes from the catalog: a name it lacks, a unit it disagrees with
        ('[claims]\n"warm.ttft_medain_ms" = { op = "<", threshold = 5 }',
         "claims.'warm.ttft_medain_ms' is not a metric any suite reports (did you mean 'warm.ttft_median_ms'?)"),
        ('[claims]\n"coldstart.phase.weight_load_s" = { op = "<", threshold = 5 }',
         "(did you mean 'coldstart.phase.weights_load_s'?)"),
        ('[claims]\n"a.b" = { op = "<", threshold = 5 }', "claims.'a.b' is not a metric any suite reports;"),
        ('[claims]\n"coldstart.total_s" = { op = "<", threshold = 65, unit = "ms" }',
         "claims.'coldstart.total_s' has unit 'ms', but the catalog's coldstart.total_s is in 's'; leave unit out"),
        ('[claims]\n"storage.nconnect" = { op = ">=", threshold = 8, unit = "B" }',
         "has unit 'B', but the catalog's storage.nconnect is in no unit"),
        ('[claims]\n"warm.output_tok_s" = { op = ">=", threshold = 150, unit = 5 }', "has unit 5, but"),
    ],
)
def test_malformed_profiles_give_one_line(tmp_path, body, expect):
    p = tmp_path / "vendor.toml"
    p.write_text(body)
    with pytest.raises(TargetError) as e:
        load_target(str(p))
    assert expect in str(e.value) and "\n" not in str(e.value)


def test_vendor_profile_extends_shipped(tmp_path):
    p = tmp_path / "mi355x.toml"
    p.write_text('extends = "mi300x"\nname = "mi355x"\n[claims]\n"coldstart.total_s" = { op = "<", threshold = 50, unit = "s" }\n')
    t = load_target(str(p))
    assert t.name == "mi355x" and t.requirements["coldstart.total_s"].threshold == 50
    assert t.requirements["warm.ttft_spread_ms"].threshold == 5


def test_extends_loop(tmp_path):
    a, b = tmp_path / "a.toml", tmp_path / "b.toml"
    a.write_text(f'extends = "{b}"')
    b.write_text(f'extends = "{a}"')
    with pytest.raises(TargetError, match="loops"):
        load_target(str(a))


def test_missing_file():
    with pytest.raises(TargetError, match="not found"):
        load_target("/nonexistent/x.toml")


def test_describe_lists_claims():
    text = describe_targets(["mi300x"])
    assert "warm.ttft_spread_ms" in text and "< 5 ms" in text and "16777216" in text


def test_claims_take_unit_and_stat_from_the_catalog(tmp_path):
    p = tmp_path / "vendor.toml"
    p.write_text('[claims]\n"coldstart.total_s" = { op = "<", threshold = 50 }\n'
                 '"warm.ttft_spread_ms" = { op = "<", threshold = 5, unit = "ms" }\n'  # agreeing unit: allowed
                 '"warm.ttft_median_ms" = { op = "<=", threshold = 400, stat = "p90" }\n'  # a stat of its own
                 '"economics.breakeven_rps.tiny" = { op = "<", threshold = 30 }\n'  # a family member
                 '"storage.nconnect" = { op = ">=", threshold = 8, unit = "" }\n')
    r = load_target(str(p)).requirements
    assert (r["coldstart.total_s"].unit, r["coldstart.total_s"].stat) == ("s", "max")
    assert (r["warm.ttft_spread_ms"].unit, r["warm.ttft_spread_ms"].stat) == ("ms", "spread")
    assert r["warm.ttft_median_ms"].stat == "p90"
    assert (r["economics.breakeven_rps.tiny"].unit, r["economics.breakeven_rps.tiny"].stat) == ("req/s", "value")
    assert r["storage.nconnect"].unit is None


def test_shipped_profiles_state_only_requirements():
    """No shipped [claims] entry repeats what the catalog says (its unit, or its default statistic)."""
    import tomllib
    from pathlib import Path

    from pytest_inference import catalog

    for path in sorted(Path(load_target("mi300x").source).parent.glob("*.toml")):
        for metric, spec in tomllib.loads(path.read_text()).get("claims", {}).items():
            assert "unit" not in spec, f"{path.name}: {metric} repeats its unit"
            assert spec.get("stat") != catalog.metric(metric).stat, f"{path.name}: {metric} repeats its stat"


def test_a_broken_catalog_is_one_line(tmp_path, monkeypatch):
    from pytest_inference import catalog

    bad = tmp_path / "metrics.toml"
    bad.write_text('[[metric]]\nname = "warm.x_ms"\nunit = "ms"\nstat = "p77"\nbetter = "lower"\ndescription = "d"\n')
    monkeypatch.setattr(catalog, "METRICS_FILE", bad)
    catalog._load.cache_clear()
    try:
        with pytest.raises(TargetError) as e:
            load_target("mi300x")
        assert "warm.x_ms stat 'p77' is not one of" in str(e.value) and "\n" not in str(e.value)
        monkeypatch.setattr(catalog, "METRICS_FILE", tmp_path / "missing.toml")
        catalog._load.cache_clear()
        with pytest.raises(TargetError, match="cannot read .*missing.toml"):
            load_target("mi300x")
    finally:
        monkeypatch.undo()
        catalog._load.cache_clear()
    assert load_target("mi300x").requirements["coldstart.total_s"].unit == "s"
