"""vLLM's CPU pinning (pytest_inference.vllm.cpu): which processes go where, when it pins, and the
command scripts/start-vllm-cpu.sh runs against a real process group."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pytest_inference.supervise import group_members
from pytest_inference.vllm import cpu

ROOT = Path(__file__).resolve().parents[2]
MEMBERS = [(10, "S", "python3"), (11, "S", "VLLM::EngineCor"), (12, "R", "VLLM::Worker_TP0"), (13, "S", "python3")]


def test_split_finds_engine_core_worker_and_the_rest() -> None:
    assert cpu.split(MEMBERS) == (11, 12, [10, 13])
    assert cpu.split([(10, "S", "python3")]) == (None, None, [10])


def test_when_it_pins(monkeypatch) -> None:
    monkeypatch.setattr(cpu, "cpu_count", lambda: 2)
    assert cpu.pin_wanted("auto") and cpu.pin_wanted(" AUTO ")
    monkeypatch.setattr(cpu, "cpu_count", lambda: cpu.AUTO_MAX_CPUS + 1)
    assert not cpu.pin_wanted("auto")
    assert all(cpu.pin_wanted(m) for m in (True, "1", "true", "yes", "on"))
    assert not any(cpu.pin_wanted(m) for m in (False, "0", "no", "off", ""))
    assert cpu.pin(1, MEMBERS, "0") == {"done": False, "reason": f"pin_cpus='0' on {cpu.AUTO_MAX_CPUS + 1} CPUs"}


def test_no_engine_core_no_pinning() -> None:
    assert cpu.pin_group(os.getpgid(0), [(os.getpid(), "R", "python3")]) == {
        "done": False, "reason": "no separate EngineCore and Worker processes"}


@pytest.mark.skipif((os.cpu_count() or 1) < 2 or not hasattr(os, "sched_setaffinity"), reason="needs 2 CPUs")
def test_the_scripts_pin_command_on_a_real_group() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen(
        [sys.executable, "-m", "pytest_inference.testing.fake_openai", "--host", "127.0.0.1", "--port", "0",
         "--max-lifetime-s", "60", "--children-max-s", "60", "--fork-children", "2",
         "--child-names", "VLLM::EngineCore,VLLM::Worker", "--worker-cpus", "0"],
        env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while len(group_members(server.pid)) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        out = subprocess.run([sys.executable, "-m", "pytest_inference.vllm.cpu", "--pin", str(server.pid),
                              "--mode", "1", "--json"], env=env, capture_output=True, text=True, timeout=60)
        result = json.loads(out.stdout)
        assert result["done"], result
        names = {comm: pid for pid, _, comm in group_members(server.pid)}
        assert result["engine_core_pid"] == names["VLLM::EngineCor"] and result["worker_pid"] == names["VLLM::Worker"]
        assert os.sched_getaffinity(result["engine_core_pid"]) == {0} == set(result["engine_cpus"])
        assert os.sched_getaffinity(server.pid) == set(range(os.cpu_count())) - {0} == set(result["api_cpus"])
        text = subprocess.run([sys.executable, "-m", "pytest_inference.vllm.cpu", "--pin", str(server.pid),
                               "--mode", "0"], env=env, capture_output=True, text=True, timeout=60).stdout
        assert text.startswith("pinning skipped: pin_cpus='0'")
    finally:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(10)
