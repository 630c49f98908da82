"""Profiles' [workload]/[economics] validation (issue 10 A5), extends from the profile's folder (B14),
the what-ran vs target judge (A7), strict summary.json and baselines (B14), URL echo, key redaction forms."""

import base64
import json
import math
import re

import pytest

from pytest_inference.baseline import Baseline, BaselineError
from pytest_inference.claims import FAIL, INCONCLUSIVE, MEASURED, PASS, Requirement, judge
from pytest_inference.report.redact import redact_text, redact_tree
from pytest_inference.report.summary import write_summary_json
from pytest_inference.session import UsageError, check_api_key, normalize_endpoint, server_mismatch
from pytest_inference.settings import MAX_REQUESTS
from pytest_inference.targets import TargetError, load_target



def profile(tmp_path, body, name="p.toml"):
    p = tmp_path / name
    p.write_text(body)
    return p


@pytest.mark.parametrize("line,expect", [
    ("warm_requests = -5", "[workload] warm_requests must be at least 1; got -5"),
    ("warm_requests = 0", "[workload] warm_requests must be at least 1; got 0"),
    ('warm_requests = "abc"', "[workload] warm_requests must be an integer; got 'abc'"),
    ("warm_requests = 2.5", "[workload] warm_requests must be an integer"),
    (f"warm_requests = {MAX_REQUESTS + 1}", f"[workload] warm_requests must be at most {MAX_REQUESTS:,}"),
    ("warm_requets = 20", "unknown [workload] key 'warm_requets' (did you mean 'warm_requests'?)"),
    ("warm_warmup = -1", "[workload] warm_warmup must be at least 0"),
    ("max_tokens = 0", "[workload] max_tokens must be at least 1"),
    ("cold_runs = true", "[workload] cold_runs must be an integer"),
    ("serverless_idle_s = -1", "[workload] serverless_idle_s must be at least 0"),
    ("model_load_s = 0", "[workload] model_load_s must be more than 0"),
    ("server_start_timeout_s = nan", "[workload] server_start_timeout_s must be a finite number"),
    ("model = 5", "[workload] model must be a non-empty string"),
    ('accelerator = ""', "[workload] accelerator must be a non-empty string"),
    ("server_args = 3", "[workload] server_args must be a string"),
])
def test_bad_workload_is_one_line_naming_file_and_key(tmp_path, line, expect):
    p = profile(tmp_path, f'extends = "mi300x"\n[workload]\n{line}\n')
    with pytest.raises(TargetError) as e:
        load_target(str(p))
    msg = str(e.value)
    assert expect in msg and str(p) in msg and "\n" not in msg


def test_bad_economics_is_one_line(tmp_path):
    p = profile(tmp_path, 'extends = "mi300x"\n[economics]\nusd_per_m_input = "x"\n')
    with pytest.raises(TargetError, match=r"\[economics\] usd_per_m_input must be a number"):
        load_target(str(p))
    p = profile(tmp_path, 'extends = "mi300x"\n[economics]\nusd_per_m_inptu = 1\n')
    with pytest.raises(TargetError, match="unknown key"):
        load_target(str(p))


def test_good_workload_loads_and_inherits(tmp_path):
    p = profile(tmp_path, 'extends = "mi300x"\n[workload]\nwarm_requests = 30\naccelerator = "MI300X"\n'
                          'serverless_idle_s = 0\nmodel_load_margin = 1.5\n')
    t = load_target(str(p))
    assert t.setting("warm_requests") == 30 and t.setting("max_tokens") == 256


def test_shipped_targets_validate():
    for name in ("cpu-local", "mi300x", "h100", "h200"):
        load_target(name)


def test_unknown_setting_in_code_is_a_programming_error():
    with pytest.raises(KeyError):
        load_target("mi300x").setting("warm_requets")


def test_extends_resolves_from_the_profiles_folder(tmp_path, monkeypatch):
    vendor = tmp_path / "vendor"
    vendor.mkdir()
    profile(vendor, 'name = "base"\n[workload]\nmax_tokens = 7\n', "base.toml")
    child = profile(vendor, 'extends = "base.toml"\nname = "child"\n', "child.toml")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # a decoy base.toml in the current directory must not be the one extended
    profile(elsewhere, 'name = "decoy"\n[workload]\nmax_tokens = 99\n', "base.toml")
    monkeypatch.chdir(elsewhere)
    t = load_target(str(child))
    assert t.name == "child" and t.setting("max_tokens") == 7
    sub = vendor / "sub"
    sub.mkdir()
    profile(sub, 'extends = "../base.toml"\nname = "deep"\n', "deep.toml")
    assert load_target(str(sub / "deep.toml")).setting("max_tokens") == 7
    # a bare name stays a shipped target, whatever files the current directory holds
    profile(elsewhere, 'name = "fake"\n', "mi300x")
    profile(vendor, 'extends = "mi300x"\nname = "v"\n', "v.toml")
    assert load_target(str(vendor / "v.toml")).setting("model") == "openai/gpt-oss-120b"


# --- A7: what ran vs the target --------------------------------------------------------------------
REQ = Requirement("warm.ttft_spread_ms", "<", 5, unit="ms", stat="spread")


def test_not_judged_keeps_the_figure_and_is_inconclusive():
    samples = [1.0, 2.0, 3.0]
    plain = judge("warm.ttft_spread_ms", samples, requirement=REQ, target="mi300x")
    assert plain.verdict == PASS
    c = judge("warm.ttft_spread_ms", samples, requirement=REQ, target="mi300x", not_judged="not judged: X")
    assert c.verdict == INCONCLUSIVE and c.measured == plain.measured and c.reason == "not judged: X"
    assert c.details["verdict_if_judged"] == PASS
    failing = judge("warm.ttft_spread_ms", [1.0, 9.0], requirement=REQ, target="mi300x", not_judged="why")
    assert failing.verdict == INCONCLUSIVE  # neither a pass nor a fail
    assert "inconclusive: why" in failing.message()
    measured_only = judge("warm.x", samples, stat="median", not_judged="why")
    assert measured_only.verdict == MEASURED


def test_server_mismatch_rules():
    mi = load_target("mi300x")
    mi.workload["accelerator"] = "MI300X"
    why = server_mismatch(mi, accelerator="cpu", model="tiny-llama", how="embedded vLLM")
    assert why == ("not judged against mi300x: this run measured tiny-llama on the CPU (embedded vLLM); "
                   "mi300x is openai/gpt-oss-120b on MI300X")
    assert server_mismatch(mi, accelerator="mi300x", model="gpt-oss-120b", how="x") is None  # case, path prefix
    assert server_mismatch(mi, accelerator=None, model=None, how="--endpoint") is None  # unknown never mismatches
    assert server_mismatch(mi, accelerator=None, model="llama-8b", how="--endpoint h") is not None
    assert server_mismatch(mi, accelerator="H100", model=None, how="x") is not None


# --- B14: strict JSON, baselines, URLs -------------------------------------------------------------
def test_summary_json_never_holds_nan_or_infinity(tmp_path):
    path = write_summary_json(tmp_path / "summary.json", {"claims": [
        {"metric": "warm.ttft_server_gap_ms", "measured": float("-inf"), "sample_values": [1.0, float("nan")]}]})
    text = path.read_text()
    assert "Infinity" not in text and "NaN" not in text
    data = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    assert data["claims"][0]["measured"] is None and data["claims"][0]["sample_values"] == [1.0, None]
    assert "claims[0].measured was -inf; written as null" in data["notes"]


@pytest.mark.parametrize("claims,expect", [
    ([{"metric": ["a", "b"], "measured": 1}], "metric must be a string"),
    ([{"metric": "warm.x", "measured": [1, 2]}], "measured must be a number or null; got list"),
    ([{"metric": "warm.x", "measured": True}], "measured must be a number or null"),
    ([{"metric": "warm.x", "measured": "NaN"}], "measured must be a number or null"),
    ([{"metric": "warm.x", "test": 5, "measured": 1}], "test must be a string"),
])
def test_bad_baseline_entries_are_one_line(tmp_path, claims, expect):
    p = tmp_path / "b.json"
    p.write_text(json.dumps({"schema": 1, "claims": claims}))
    with pytest.raises(BaselineError, match=re.escape(expect)) as e:
        Baseline.load(str(p))
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_baseline_with_nan_or_infinity_is_one_line(tmp_path, constant):
    p = tmp_path / "b.json"
    p.write_text('{"schema": 1, "claims": [{"metric": "warm.x", "measured": %s}]}' % constant)
    with pytest.raises(BaselineError, match="not a finite number"):
        Baseline.load(str(p))


@pytest.mark.parametrize("url", [
    "http://user:hunter2secret@[::1/v1",         # unparseable IPv6
    "ftp://user:hunter2secret@host/v1",         # not http
    "http://user:hunter2secret@host:99999/v1",  # bad port
    "http://user:hunter2secret@host/v1",        # credentials
    "http://:hunter2secret@host:8000",
])
def test_endpoint_errors_never_echo_a_password(url):
    with pytest.raises(UsageError) as e:
        normalize_endpoint(url)
    assert "hunter2secret" not in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("key,why", [("sk-a\r\nX-Evil: 1", "line break"), ("sk-abc\n", "line break"),
                                     ("sk-ключ-123", "outside Latin-1"), ("sk-\x00abc", "control character")])
def test_unsendable_keys_are_refused_without_echo(key, why):
    with pytest.raises(UsageError) as e:
        check_api_key(key, "--api-key-env", "MY_KEY")
    assert why in str(e.value) and "$MY_KEY" in str(e.value) and key.strip() not in str(e.value)
    check_api_key("sk-fine_key.123/+=", "--api-key-env", "MY_KEY")


def test_redaction_covers_the_key_and_its_base64_forms(tmp_path):
    key = "sk-test-0123456789abcdef"
    texts = [f"Bearer {key}", base64.b64encode(key.encode()).decode(),
             base64.b64encode(b"user:" + key.encode()).decode(), base64.b64encode(b"ab:" + key.encode()).decode(),
             base64.b64encode(b"a:" + key.encode()).decode()]
    for text in texts:
        out = redact_text(text, [key])
        assert key not in out and "***" in out, text
        assert base64.b64encode(key.encode()).decode()[4:16] not in out
    f = tmp_path / "r.json"
    f.write_text(" | ".join(texts))
    assert redact_tree(tmp_path, key) == [f]
    assert key not in f.read_text() and base64.b64encode(key.encode()).decode()[:12] not in f.read_text()
