"""The hardware-mismatch rule with the fingerprint: a server on this host measured on other hardware
than the target's is not judged; summary.json carries the environment (contract C1)."""

from __future__ import annotations

import json

import pytest

from fakes import AMD_1XMI300X_TEXT, AMD_8XMI300X, C1_ACCELERATOR, C1_KEYS, NVIDIA_8XH100, write_tools
from pytest_inference.session import server_mismatch
from pytest_inference.targets import TargetError, load_target

H100X8 = {"vendor": "nvidia", "model": "NVIDIA H100 80GB HBM3", "count": 8, "note": None}
MI300X1 = {"vendor": "amd", "model": "AMD Instinct MI300X", "count": 1, "note": None}
MI300X8 = {"vendor": "amd", "model": "AMD Instinct MI300X", "count": 8, "note": None}


@pytest.fixture(scope="module")
def mi():
    return load_target("mi300x")


def test_another_part_on_this_host_is_not_judged(mi):
    why = server_mismatch(mi, accelerator=None, model="openai/gpt-oss-120b", how="--endpoint http://127.0.0.1:8000/v1",
                          measured=H100X8)
    assert why == ("not judged against mi300x: this run measured openai/gpt-oss-120b on 8 x NVIDIA H100 80GB HBM3 "
                   "(--endpoint http://127.0.0.1:8000/v1); mi300x is openai/gpt-oss-120b on 1 x MI300X")


def test_the_target_part_and_count_is_judged(mi):
    assert server_mismatch(mi, accelerator=None, model="gpt-oss-120b", how="embedded vLLM", measured=MI300X1) is None
    h200 = load_target("h200")
    h200_1 = {"vendor": "nvidia", "model": "NVIDIA H200", "count": 1}
    assert server_mismatch(h200, accelerator=None, model="meta-llama/Llama-3.1-70B-Instruct", how="x",
                           measured=h200_1) is None


def test_another_count_is_not_judged_and_says_how_to_narrow_it(mi):
    why = server_mismatch(mi, accelerator=None, model="gpt-oss-120b", how="--server-cmd", measured=MI300X8)
    assert "measured gpt-oss-120b on 8 x AMD Instinct MI300X (--server-cmd) [all 8 visible: set CUDA_VISIBLE_DEVICES " \
           "or HIP_VISIBLE_DEVICES to the ones the server uses]; mi300x is openai/gpt-oss-120b on 1 x MI300X" in why
    narrowed = dict(MI300X8, count=2, note="HIP_VISIBLE_DEVICES=0,1: 2 of 8 installed visible to the server")
    why = server_mismatch(mi, accelerator=None, model="gpt-oss-120b", how="--server-cmd", measured=narrowed)
    assert "on 2 x AMD Instinct MI300X (--server-cmd) [HIP_VISIBLE_DEVICES=0,1: 2 of 8 installed" in why


@pytest.mark.parametrize("measured", [
    None,
    {"vendor": "cpu", "model": None, "count": 0},                       # no tool, no device: says nothing
    {"vendor": None, "model": None, "count": None, "unknown": "nvidia-smi exited 9"},
    {"vendor": "nvidia", "model": None, "count": None, "unknown": "mixed accelerators"},
])
def test_an_unknown_or_absent_accelerator_never_mismatches_by_itself(mi, measured):
    assert server_mismatch(mi, accelerator=None, model="gpt-oss-120b", how="--endpoint http://127.0.0.1:1/v1",
                           measured=measured) is None


def test_a_cpu_target_is_not_contradicted_by_gpus_the_host_has():
    cpu = load_target("cpu-local")
    assert server_mismatch(cpu, accelerator=None, model=None, how="--endpoint http://127.0.0.1:1/v1",
                           measured=H100X8) is None


def test_what_the_caller_knows_wins_over_the_fingerprint(mi):
    why = server_mismatch(mi, accelerator="cpu", model="gpt-oss-120b", how="embedded vLLM", measured=MI300X1)
    assert "on the CPU (embedded vLLM); mi300x is openai/gpt-oss-120b on MI300X" in why
    # a caller's own name of the part matches loosely too
    assert server_mismatch(mi, accelerator="AMD Instinct MI300X", model="gpt-oss-120b", how="x") is None


def test_accelerators_is_a_checked_workload_key(tmp_path):
    good = tmp_path / "eight.toml"
    good.write_text('extends = "mi300x"\nname = "mi300x-8"\n[workload]\naccelerators = 8\n')
    t = load_target(str(good))
    assert (t.workload["accelerator"], t.workload["accelerators"]) == ("MI300X", 8)
    assert server_mismatch(t, accelerator=None, model="gpt-oss-120b", how="x", measured=MI300X8) is None
    for bad, says in [("0", "[workload] accelerators must be at least 1; got 0"),
                      ('"8"', "[workload] accelerators must be an integer; got '8'"),
                      ("1.5", "[workload] accelerators must be an integer; got 1.5")]:
        path = tmp_path / "bad.toml"
        path.write_text(f'name = "bad"\n[workload]\naccelerators = {bad}\n')
        with pytest.raises(TargetError) as e:
            load_target(str(path))
        assert str(e.value) == f"malformed target profile {path}: {says}"


# --- a real run: the fake server on loopback, fake tools on PATH -----------------------------------
TEST_FILE = """
import pytest

@pytest.mark.warm
def test_spread(inference_endpoint, claim):
    claim("warm.ttft_spread_ms", [300.0] * 19 + [301.0], stat="spread", unit="ms")
"""


@pytest.fixture(scope="module")
def fake_server():
    from pytest_inference.testing.fake_openai import FakeOpenAIServer

    with FakeOpenAIServer(model="openai/gpt-oss-120b") as srv:
        yield srv


def _run(pytester, monkeypatch, tmp_path, fake_server, spec, *args, **env):
    import os

    folder = write_tools(tmp_path / f"bin{len(list(tmp_path.glob('bin*')))}", spec)
    monkeypatch.setenv("PATH", f"{folder}:{os.environ['PATH']}")
    for k in ("CUDA_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES"):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    pytester.makepyfile(test_ran=TEST_FILE)
    res = pytester.runpytest("--endpoint", fake_server.url, "--target", "mi300x", "-p", "no:randomly", *args)
    summary = json.loads((pytester.path / "reports" / "summary.json").read_text())
    return res, summary


def test_a_run_on_8_h100_is_not_judged_against_mi300x(pytester, monkeypatch, tmp_path, fake_server):
    res, summary = _run(pytester, monkeypatch, tmp_path, fake_server, NVIDIA_8XH100)
    res.assert_outcomes(failed=1)
    why = (f"not judged against mi300x: this run measured openai/gpt-oss-120b on 8 x NVIDIA H100 80GB HBM3 "
           f"(--endpoint {fake_server.base_url}); mi300x is openai/gpt-oss-120b on 1 x MI300X")
    res.stdout.fnmatch_lines([f"*inconclusive: {why}*"])
    claim = summary["claims"][0]
    assert claim["verdict"] == "inconclusive" and why in claim["reason"]
    env = summary["environment"]
    assert set(env) == C1_KEYS and set(env["accelerator"]) >= C1_ACCELERATOR
    assert env["hardware"] == "nvidia H100 80GB HBM3 x8" and env["accelerator"]["runtime"] == "CUDA 12.2"
    assert env["target"]["name"] == "mi300x" and len(env["target"]["sha256"]) == 64
    assert env["model"]["name"] == "openai/gpt-oss-120b"
    # the fake server has no /version: unknown, with the reason, and the run is not failed by it
    assert env["vllm"]["version"] is None and "/version" in env["vllm"]["unknown"]


def test_a_run_on_one_mi300x_is_judged(pytester, monkeypatch, tmp_path, fake_server):
    res, summary = _run(pytester, monkeypatch, tmp_path, fake_server, {"amd-smi": [("static", AMD_1XMI300X_TEXT, 0)]})
    res.assert_outcomes(passed=1)
    assert summary["claims"][0]["verdict"] == "pass"
    assert summary["environment"]["hardware"] == "amd Instinct MI300X x1"


def test_eight_mi300x_are_judged_once_narrowed_to_one(pytester, monkeypatch, tmp_path, fake_server):
    res, _ = _run(pytester, monkeypatch, tmp_path, fake_server, AMD_8XMI300X)
    res.assert_outcomes(failed=1)
    res.stdout.fnmatch_lines(["*on 8 x AMD Instinct MI300X (--endpoint *) [all 8 visible: *; mi300x is "
                              "openai/gpt-oss-120b on 1 x MI300X*"])
    res, summary = _run(pytester, monkeypatch, tmp_path, fake_server, AMD_8XMI300X, HIP_VISIBLE_DEVICES="3")
    res.assert_outcomes(passed=1)
    acc = summary["environment"]["accelerator"]
    assert (acc["count"], acc["installed"], acc["note"]) == (1, 8, "HIP_VISIBLE_DEVICES=3: 1 of 8 installed visible "
                                                              "to the server")


def test_under_xdist_the_controller_writes_the_environment(pytester, monkeypatch, tmp_path, fake_server):
    pytest.importorskip("xdist")
    res, summary = _run(pytester, monkeypatch, tmp_path, fake_server, NVIDIA_8XH100, "-n", "2")
    res.assert_outcomes(failed=1)  # the worker judged with the fingerprint too
    assert summary["environment"]["hardware"] == "nvidia H100 80GB HBM3 x8"
    assert "8 x NVIDIA H100 80GB HBM3" in summary["claims"][0]["reason"]


def test_a_local_server_on_a_gpu_device_is_judged_by_the_fingerprint(pytester, monkeypatch, tmp_path):
    """--server-cmd on --device gpu0 (not the CPU): what ran is this host's accelerator. The server's
    vLLM version is asked while it runs (the fake server has no /version: the reason is kept)."""
    import os
    import sys

    (tmp_path / "config.json").write_text("{}")
    folder = write_tools(tmp_path / "bin", NVIDIA_8XH100)
    monkeypatch.setenv("PATH", f"{folder}:{os.environ['PATH']}")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    pytester.makepyfile(test_ran=TEST_FILE)
    cmd = "{python} -m pytest_inference.testing.fake_openai --host {host} --port {port} --model {model} --max-lifetime-s 120"
    res = pytester.runpytest("--target", "mi300x", "--server-python", sys.executable, "--server-cmd", cmd,
                             "--model-path", str(tmp_path), "--device", "gpu0")
    res.assert_outcomes(failed=1)
    res.stdout.fnmatch_lines(["*inconclusive: not judged against mi300x: this run measured openai/gpt-oss-120b on "
                              "8 x NVIDIA H100 80GB HBM3 (--server-cmd); mi300x is openai/gpt-oss-120b on 1 x MI300X*"])
    summary = json.loads((pytester.path / "reports" / "summary.json").read_text())
    vllm = summary["environment"]["vllm"]
    assert vllm["version"] is None and "/version: HTTP 404" in vllm["unknown"] and vllm == summary["run"]["vllm"]
