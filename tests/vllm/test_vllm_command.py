"""The embedded vLLM server's command is defined once (pytest_inference.vllm.command): the suites'
local server (local.py) and scripts/start-vllm-cpu.sh run the same command with the same environment."""

from __future__ import annotations

import os
import shlex
import subprocess
import types
from pathlib import Path

import pytest

from pytest_inference.local import OWNER_ENV, LocalConfig
from pytest_inference.targets import load_target
from pytest_inference.vllm import command as c
from pytest_inference.vllm.hooks import VLLM

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "start-vllm-cpu.sh"


def test_cpu_flags_are_added_unless_named() -> None:
    assert c.cpu_args("") == "--max-model-len 512 --dtype float32"
    assert c.cpu_args("--enforce-eager") == "--enforce-eager --max-model-len 512 --dtype float32"
    assert c.cpu_args("--max-model-len=1024") == "--max-model-len=1024 --dtype float32"
    assert c.cpu_args(" --dtype bfloat16 --max-model-len 64 ") == "--dtype bfloat16 --max-model-len 64"


def test_environment_is_offline_on_loopback_and_takes_the_kv_cache_size_from_the_caller() -> None:
    env = c.environment({})
    assert env["HF_HUB_OFFLINE"] == env["VLLM_NO_USAGE_STATS"] == "1"
    assert env["VLLM_HOST_IP"] == env["VLLM_LOOPBACK_IP"] == "127.0.0.1"
    assert env["VLLM_CPU_KVCACHE_SPACE"] == "1"
    assert c.environment({"VLLM_CPU_KVCACHE_SPACE": "4"})["VLLM_CPU_KVCACHE_SPACE"] == "4"


def test_spec_carries_vllms_hooks_and_env(tmp_path: Path) -> None:
    s = c.spec(python="/v/bin/python", model_path=tmp_path / "m x", args="--enforce-eager", env={"VLLM_API_KEY": "k"})
    assert s.hooks is VLLM and s.host == "127.0.0.1" and s.model == c.TINY_MODEL
    assert s.env["VLLM_API_KEY"] == "k" and s.env["HF_HUB_OFFLINE"] == "1"
    assert s.format_command(8011) == ["/v/bin/python", "-m", "vllm.entrypoints.openai.api_server", "--model",
                                      str(tmp_path / "m x"), "--served-model-name", "tiny-llama", "--host",
                                      "127.0.0.1", "--port", "8011", "--enforce-eager"]
    assert VLLM.environment(tmp_path) == {"VLLM_CACHE_ROOT": str(tmp_path)}


def test_cpu_spec_honours_the_scripts_variables(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PYTEST_INFERENCE_VLLM_VENV", str(tmp_path / "venv"))
    monkeypatch.setenv("PYTEST_INFERENCE_VLLM_MODEL", str(tmp_path / "model"))
    monkeypatch.setenv("PYTEST_INFERENCE_VLLM_ARGS", "--enforce-eager")
    monkeypatch.setenv("PYTEST_INFERENCE_VLLM_PIN", "0")
    s = c.cpu_spec(tmp_path, args="--dtype bfloat16")
    assert s.python == str(tmp_path / "venv" / "bin" / "python")
    assert s.model_path == str(tmp_path / "model")
    assert s.args == "--enforce-eager --dtype bfloat16 --max-model-len 512"
    assert s.pin_cpus == "0" and s.hooks is VLLM and s.cache_dir == tmp_path / ".cache" / "vllm-launch"


def test_print_quotes_every_item(capsys) -> None:
    assert c.main(["--print", "--python", "/p y/python", "--model-path", "/m", "--port", "9",
                   "--cache-root", "/s/cache", "--tmpdir", "/s/tmp", "--", "--x", "two words"]) == 0
    items = shlex.split(capsys.readouterr().out)
    assert "VLLM_CACHE_ROOT=/s/cache" in items and "TMPDIR=/s/tmp" in items
    argv = items[items.index("/p y/python"):]
    assert argv[-6:] == ["--x", "two words", "--max-model-len", "512", "--dtype", "float32"]


def _script_command(env: dict[str, str], *extra: str) -> tuple[dict[str, str], list[str]]:
    out = subprocess.run(["bash", str(SCRIPT), "command", "--", *extra], capture_output=True, text=True,
                         env=env, timeout=60, check=True).stdout
    items = shlex.split(out)
    n = next(i for i, x in enumerate(items) if "=" not in x or x.startswith("/"))
    return dict(x.split("=", 1) for x in items[:n]), items[n:]


def _config(tmp_path: Path, **opts):
    return types.SimpleNamespace(rootpath=ROOT, getoption=lambda name, default=None: opts.get(name, default),
                                 getini=lambda name: None, invocation_params=types.SimpleNamespace(dir=tmp_path))


@pytest.mark.parametrize("server_args", [None, "--enforce-eager"])
def test_the_script_and_local_py_run_the_same_command(tmp_path: Path, monkeypatch, server_args) -> None:
    venv_py = tmp_path / "venv" / "bin" / "python"
    venv_py.parent.mkdir(parents=True)
    venv_py.write_text("")
    monkeypatch.setenv("PYTEST_INFERENCE_VLLM_VENV", str(tmp_path / "venv"))
    monkeypatch.setenv("PYTEST_INFERENCE_VLLM_MODEL", str(tmp_path / "tiny model"))
    monkeypatch.setenv("PYTEST_INFERENCE_VLLM_STATE", str(tmp_path / "state"))
    for var in ("PYTEST_INFERENCE_SERVER_PYTHON", "PYTEST_INFERENCE_VLLM_ARGS", "PYTEST_INFERENCE_VLLM_PORT",
                "PYTEST_INFERENCE_VLLM_NAME", "VLLM_CPU_KVCACHE_SPACE"):
        monkeypatch.delenv(var, raising=False)

    local = LocalConfig.from_config(_config(tmp_path, inference_server_args=server_args), load_target("cpu-local"))
    local.state_dir, local.log_dir = tmp_path / "servers", tmp_path / "logs"
    spec = local.spec()
    script_env, script_argv = _script_command(dict(os.environ), *(server_args.split() if server_args else ()))

    assert script_argv == spec.format_command(8011)  # the script's default port
    assert script_argv[0] == str(venv_py) and script_argv[-4:] == ["--max-model-len", "512", "--dtype", "float32"]
    # the same environment; only where the cache and TMPDIR are differ (the script's state folder)
    assert script_env.pop("VLLM_CACHE_ROOT") == str(tmp_path / "state" / "cache")
    assert script_env.pop("TMPDIR") == str(tmp_path / "state" / "tmp")
    local_env = dict(spec.env)
    assert local_env.pop(OWNER_ENV) == str(os.getpid())
    assert script_env == local_env and spec.hooks is VLLM
