"""Run settings as one object (issue 11 item 3): option > ini > target [workload] > default, one table
that validates profiles and options alike, sources for messages and summary.json, and a source scan
that keeps every key the code reads in the table."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from pytest_inference.settings import (
    DEFAULT,
    MAX_REQUESTS,
    SETTINGS,
    RunSettings,
    SettingsError,
    check_option,
    check_workload,
    default_text,
    profile_key,
    readme_table,
)
from pytest_inference.targets import load_target

ROOT = Path(__file__).resolve().parents[2]

VENDOR = '''
name = "vendor-x"
extends = "base.toml"
[workload]
max_tokens = 7
warm_requests = 30
server_args = "--enforce-eager"
model_load_margin = 2
model_path = "/models/from-target"
'''


BASE = 'name = "base"\n[workload]\nmodel = "vendor/model-7b"\naccelerator = "MI300X"\n'


@pytest.fixture
def vendor(pytester):
    pytester.makefile(".toml", vendor=VENDOR, base=BASE)
    return load_target(str(pytester.path / "vendor.toml"))


def settings_of(pytester, target, *args):
    """A real pytest config (the plugin's options parsed) and ``target``'s settings."""
    return RunSettings(pytester.parseconfig(*args), target)


# --- precedence --------------------------------------------------------------------------------
def test_option_beats_target_beats_default(pytester, vendor):
    s = settings_of(pytester, vendor, "--max-tokens", "9")
    assert s.get("max_tokens") == 9 and s.source("max_tokens") == "--max-tokens" and s.given("max_tokens")
    # the target's [workload], where no option is given
    assert s.warm_requests == 30 and s.source("warm_requests") == "target vendor-x [workload] warm_requests"
    assert not s.given("warm_requests")
    # inherited from the profile it extends
    assert s.model == "vendor/model-7b" and s.source("model") == "target vendor-x [workload] model"
    # the default, where neither says
    assert s.cold_runs == 3 and s.source("cold_runs") == DEFAULT
    assert s.drain_max_tokens == 384 and s.source("drain_max_tokens") == DEFAULT
    # without the option the target's value is back
    assert settings_of(pytester, vendor).max_tokens == 7


def test_an_empty_option_still_overrides_the_target(pytester, vendor):
    """--server-args '' is a choice (no flags), not "not given"."""
    s = settings_of(pytester, vendor, "--server-args", "")
    assert s.server_args == "" and s.source("server_args") == "--server-args"
    assert settings_of(pytester, vendor).server_args == "--enforce-eager"


def test_ini_sits_between_option_and_target(pytester, vendor):
    pytester.makeini("[pytest]\ninference_model_path = /models/from-ini\n")
    s = settings_of(pytester, vendor)
    assert s.model_path == "/models/from-ini" and s.source("model_path") == "ini inference_model_path"
    assert s.given("model_path")
    s = settings_of(pytester, vendor, "--model-path", "/models/from-option")
    assert s.model_path == "/models/from-option" and s.source("model_path") == "--model-path"


def test_values_have_their_settings_type(pytester, vendor):
    s = settings_of(pytester, vendor, "--serverless-idle-s", "0")
    assert s.model_load_margin == 2.0 and isinstance(s.model_load_margin, float)  # the profile wrote 2
    assert s.serverless_idle_s == 0.0 and s.source("serverless_idle_s") == "--serverless-idle-s"
    assert isinstance(s.warm_requests, int) and s.server_start_timeout_s == 600.0
    assert s.model_load_s is None and s.source("model_load_s") == DEFAULT  # no default: the live pods say


def test_the_k8s_settings_go_through_the_same_object(pytester, vendor):
    s = settings_of(pytester, vendor, "--model-load-s", "220", "--k8s-max-drain-s", "90")
    assert (s.model_load_s, s.source("model_load_s")) == (220.0, "--model-load-s")
    assert (s.max_drain_s, s.source("max_drain_s")) == (90.0, "--k8s-max-drain-s")
    assert (s.model_load_margin, s.source("model_load_margin")) == (2.0, "target vendor-x [workload] model_load_margin")


def test_read_only_and_unknown_keys_are_programming_errors(pytester, vendor):
    s = settings_of(pytester, vendor)
    with pytest.raises(AttributeError, match="read-only"):
        s.max_tokens = 5
    with pytest.raises(KeyError, match="add it to pytest_inference.settings.SETTINGS"):
        s.get("max_tokenz")
    with pytest.raises(AttributeError):
        s.max_tokenz  # noqa: B018
    with pytest.raises(KeyError):
        s.source("max_tokenz")


def test_to_dict_has_every_setting_and_hides_server_flags(pytester, vendor):
    d = settings_of(pytester, vendor, "--max-tokens", "9").to_dict()
    assert set(d) == set(SETTINGS)
    assert d["max_tokens"] == {"value": 9, "source": "--max-tokens"}
    assert d["cold_runs"] == {"value": 3, "source": "default"}
    # vLLM's --api-key could be among the flags: summary.json says they are set, never what they are
    assert d["server_args"] == {"value": "(set, not shown)", "source": "target vendor-x [workload] server_args"}
    assert "--enforce-eager" not in json.dumps(d)
    json.dumps(d, allow_nan=False)  # strict JSON


# --- the table --------------------------------------------------------------------------------
def test_every_option_in_the_table_is_the_plugins_option(pytester):
    """Flag and dest of each setting's option are the ones the plugin registers: the flag, given,
    sets the dest."""
    sample = {"int": "5", "number": "5", "str": "x"}
    checked = 0
    for key, spec in SETTINGS.items():
        if not spec.option:
            assert spec.flag is None, key
            continue
        config = pytester.parseconfig(spec.flag, sample[spec.kind])
        value = config.getoption(spec.option)
        assert value is not None and str(value) in ("5", "5.0", "x"), (key, value)
        checked += 1
    assert checked >= 12


def test_defaults_fit_their_own_rules():
    for key, spec in SETTINGS.items():
        if spec.default is not None:
            assert spec.check(spec.default) is None, key


def test_help_text_of_a_default_comes_from_the_table():
    assert default_text("max_tokens") == "the target's max_tokens, else 64"
    assert default_text("device") == "the target's device, else 'cpu'"
    assert default_text("model_path") == "ini inference_model_path, else the target's model_path, else none"
    assert default_text("server_start_timeout_s") == "the target's server_start_timeout_s, else 600"


def test_readme_table_has_one_row_per_setting():
    rows = [line for line in readme_table().splitlines() if line.startswith("| `")]
    assert [r.split("`")[1] for r in rows] == [f"[{s.table}] {profile_key(k)}" for k, s in SETTINGS.items()]
    assert "| `[workload] max_tokens` | `--max-tokens` | integer, ≥ 1 | 64 |" in readme_table()
    assert "| `[load] rate_rps` | `--load-rate` | non-empty text | `'2'` |" in readme_table()


def test_load_settings_live_in_the_targets_load_table(tmp_path, pytester):
    from pytest_inference.targets import TargetError

    good = tmp_path / "t.toml"
    good.write_text('name = "t"\n[load]\nrate_rps = "3,6"\nslo = "ttft_ms:500"\nsearch_max_rps = 32\n')
    t = load_target(str(good))
    s = settings_of(pytester, t)
    assert (s.load_rate_rps, s.source("load_rate_rps")) == ("3,6", "target t [load] rate_rps")
    assert (s.load_search_max_rps, s.load_slo) == (32.0, "ttft_ms:500")
    assert default_text("load_arrival") == "the target's [load] arrival, else 'poisson'"
    for body, says in [('rate_rps = "0"', "[load] rate_rps does not parse: load rate: '0' must be > 0"),
                       ('slo = "ttft:5"', "[load] slo does not parse"),
                       ('arrival = "zipf"', "[load] arrival does not parse"),
                       ('rate = "4"', "unknown [load] key 'rate' (did you mean 'rate_rps'?)"),
                       ('load_rate_rps = "4"', "unknown [load] key 'load_rate_rps'")]:
        bad = tmp_path / "bad.toml"
        bad.write_text(f'name = "bad"\n[load]\n{body}\n')
        with pytest.raises(TargetError) as exc:
            load_target(str(bad))
        assert says in str(exc.value) and "\n" not in str(exc.value)
    assert "`--model-path` (ini `inference_model_path`)" in readme_table()


def _used_keys() -> tuple[set[str], list[str]]:
    """Keys the plugin and the suites read from the run's settings, and any reader that bypasses
    them (``target.setting(...)``)."""
    used: set[str] = set()
    bypass: list[str] = []
    methods = {"get", "source", "given", "to_dict", "target"}
    for folder in ("pytest_inference", "suites"):
        for path in (ROOT / folder).rglob("*.py"):
            if path.name == "settings.py" and path.parent.name == "pytest_inference":
                continue
            text = path.read_text()
            used |= set(re.findall(r"""\bsettings\.(?:get|source|given)\(\s*["']([A-Za-z0-9_]+)["']""", text))
            if "inference_session.settings" in text or "RunSettings" in text:
                used |= set(re.findall(r"\b(?:run_)?settings\.([a-z][a-z0-9_]*)\b(?!\()", text)) - methods
            if path.parent.name != "targets":
                bypass += [f"{path.relative_to(ROOT)}: {m}" for m in re.findall(r"""\.setting\(\s*["'][^"']*["']""", text)]
    return used, bypass


def test_every_setting_key_used_in_the_source_is_known():
    """Keys read from the settings anywhere must be in the table, else a profile that sets them would
    be refused (and a typo in the code would read nothing)."""
    used, bypass = _used_keys()
    # the scan sees the readers this table exists for (a scan that finds nothing proves nothing)
    assert {"max_tokens", "warm_requests", "warm_warmup", "cold_runs", "read_readers", "drain_max_tokens",
            "lab_weights_mib", "model_load_margin", "max_drain_s", "server_start_timeout_s"} <= used, sorted(used)
    assert used <= set(SETTINGS), sorted(used - set(SETTINGS))
    # no call site reads a target's [workload] past the settings (with a default of its own)
    assert not bypass, bypass


# --- bad values: one line -------------------------------------------------------------------
@pytest.mark.parametrize("key,value,expect", [
    ("warm_requests", 0, "--warm-requests must be at least 1; got 0"),
    ("warm_requests", MAX_REQUESTS + 1,
     "--warm-requests must be at most 100,000; got 100,001 (every request's timings stay in memory)"),
    ("warm_warmup", -1, "--warm-warmup must be at least 0; got -1"),
    ("cold_runs", 1001, "--cold-runs must be at most 1,000; got 1,001"),
    ("read_readers", 0, "--read-readers must be at least 1; got 0"),
    ("server_start_timeout_s", 0.0, "--server-start-timeout must be more than 0; got 0"),
    ("server_start_timeout_s", float("inf"), "--server-start-timeout must be a finite number; got inf"),
    ("serverless_idle_s", -1.0, "--serverless-idle-s must be at least 0; got -1"),
    ("model_load_margin", 0.5, "--model-load-margin must be at least 1; got 0.5"),
    ("model", "", "--model must be a non-empty string; got ''"),
])
def test_an_option_out_of_range_is_one_line_naming_it(key, value, expect):
    with pytest.raises(SettingsError) as e:
        check_option(key, value)
    assert str(e.value) == expect


def test_a_profile_value_is_checked_by_the_same_table():
    with pytest.raises(SettingsError) as e:
        check_workload("p.toml", {"warm_requests": 0})
    assert str(e.value) == "malformed target profile p.toml: [workload] warm_requests must be at least 1; got 0"
    with pytest.raises(SettingsError, match=r"unknown \[workload\] key 'max_token' \(did you mean 'max_tokens'\?\)"):
        check_workload("p.toml", {"max_token": 5})
    assert check_workload("p.toml", {"max_tokens": 5, "model": "m"}) == {"max_tokens": 5, "model": "m"}


@pytest.mark.parametrize("args,line", [
    (["--serverless-idle-s", "-1"], "ERROR: --serverless-idle-s must be at least 0; got -1"),
    (["--server-start-timeout", "inf"], "ERROR: --server-start-timeout must be a finite number; got inf"),
    (["--max-tokens", "0"], "ERROR: --max-tokens must be at least 1; got 0"),
    (["--read-readers", "2000"], "ERROR: --read-readers must be at most 1,024; got 2,000"),
    (["--device", " "], "ERROR: --device must be a non-empty string; got ' '"),
    (["--load-rate", "0"], "ERROR: --load-rate does not parse: load rate: '0' must be > 0; got '0'"),
    (["--load-rate", "4,x"], "ERROR: --load-rate does not parse: load rate: 'x' is not a number; got '4,x'"),
    (["--slo", "ttft_ms:fast"], "ERROR: --slo does not parse: *; got 'ttft_ms:fast'"),
    (["--arrival", "zipf"], "ERROR: --arrival does not parse: *; got 'zipf'"),
    (["--workload", "file:missing.jsonl"], "ERROR: --workload does not parse: *missing.jsonl*"),
    (["--load-workers", "0"], "ERROR: --load-workers does not parse: load workers: 0 must be between 1 and 64; got '0'"),
    (["--search-start-rps", "100", "--search-max-rps", "10"],
     "ERROR: the capacity search range is upside down: need --search-min-rps (1) <= --search-start-rps (100) <= "
     "--search-max-rps (10)"),
])
def test_bad_option_is_a_usage_error_in_one_line(pytester, args, line):
    pytester.makepyfile("def test_nothing():\n    pass\n")
    res = pytester.runpytest(*args)
    assert res.ret == pytest.ExitCode.USAGE_ERROR
    res.stderr.fnmatch_lines([line])
    out = res.stderr.str() + res.stdout.str()
    assert "Traceback" not in out and "INTERNALERROR" not in out


# --- summary.json ---------------------------------------------------------------------------
def test_effective_settings_and_sources_reach_summary_json(pytester):
    pytester.makefile(".toml", vendor=VENDOR, base=BASE)
    pytester.makepyfile(test_claim='''
import pytest

@pytest.mark.warm
def test_measured(claim, inference_session):
    s = inference_session.settings
    assert (s.max_tokens, s.warm_requests, s.cold_runs) == (9, 30, 3)
    claim("warm.tpot_median_ms", [5.0, 6.0, 7.0], stat="median", unit="ms")
''')
    res = pytester.runpytest("--target", "vendor.toml", "--max-tokens", "9", "-p", "no:randomly")
    res.assert_outcomes(passed=1)
    settings = json.loads((pytester.path / "reports" / "summary.json").read_text())["run"]["settings"]
    assert settings["max_tokens"] == {"value": 9, "source": "--max-tokens"}
    assert settings["warm_requests"] == {"value": 30, "source": "target vendor-x [workload] warm_requests"}
    assert settings["cold_runs"] == {"value": 3, "source": "default"}
    assert settings["server_args"]["value"] == "(set, not shown)"
