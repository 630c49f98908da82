"""Pure readings of pod-spec shell: scripts, masked failures, set -e, drain hooks."""

import pytest

from pytest_inference.k8s.shell import (drain_hook_findings, masked_failures, pre_loop_sleep, script_index, scripts,
                                        stops_on_error, unguarded_commands)
from pytest_inference.server.prestop import PRESTOP_HOOK


@pytest.mark.parametrize("argv, index", [
    (["/bin/sh", "-c", "x"], 2),
    (["bash", "-ec", "x"], 2),
    (["sh", "-e", "-c", "x"], 3),
    (["/usr/bin/env", "sh", "-c", "x"], None),   # not a shell as argv[0]
    (["python", "-c", "x"], None),
    (["sh", "script.sh"], None),
    (["sh", "-c"], None),
    ([], None),
])
def test_script_index(argv, index):
    assert script_index(argv) == index


def test_scripts_finds_command_args_hooks_and_probes():
    c = {"command": ["/bin/sh", "-c"], "args": ["echo hi"],
         "lifecycle": {"preStop": {"exec": {"command": ["sh", "-c", "sleep 1"]}}},
         "livenessProbe": {"exec": {"command": ["cat", "/tmp/ok"]}}}
    found = {(where, text, path) for where, text, _, path in scripts(c)}
    assert found == {("command", "echo hi", ("args", "0")),
                     ("lifecycle.preStop", "sleep 1", ("lifecycle", "preStop", "exec", "command", "2"))}


@pytest.mark.parametrize("line", [
    "ip link set eth1 mtu 9000 || true",
    "kubectl taint nodes $NODE_NAME key:NoSchedule- || true",
    "sysctl -w a=b || :",
    "netplan apply || exit 0",
    "cmd || echo 'failed, going on'",
    "cmd||true",
    "set +e",
])
def test_masked_failures_flags(line):
    assert masked_failures(f"set -e\n{line}\necho done") == [(2, line)]


@pytest.mark.parametrize("line", [
    "netplan apply || ip link set eth1 mtu 9000",       # a real fallback that fails when both fail
    "test -f /x || exit 1",
    "# cmd || true  (a comment)",
    "echo '|| true is bad' > /dev/null",
    "a || true_tuning_step",
])
def test_masked_failures_leaves_real_code(line):
    assert masked_failures(line) == []


def test_set_e_and_unguarded():
    assert stops_on_error("set -eu\nx")
    assert stops_on_error("set -o errexit; x")
    assert stops_on_error("x\ny", ["sh", "-ec", "..."])
    assert not stops_on_error("x\ny")
    assert unguarded_commands("sysctl -w a=1\nsysctl -w b=2")
    assert not unguarded_commands("set -e\nsysctl -w a=1\nsysctl -w b=2")
    assert not unguarded_commands("kubectl taint nodes n k-")          # one command: its status is the pod's
    assert not unguarded_commands("sysctl -w a=1; sysctl -w b=2", ["sh", "-ec", "x"])


def test_pre_loop_sleep():
    assert pre_loop_sleep("sleep 5\nwhile true; do sleep 2; done") == 5
    assert pre_loop_sleep("sleep 5; sleep 2.5; until false; do sleep 9; done") == 7.5
    assert pre_loop_sleep(PRESTOP_HOOK) == 0


SEED = """sleep 5
while true; do
  RUNNING=$(curl -s localhost:8000/metrics | grep '^vllm:num_requests_running' | awk '{print $2}')
  WAITING=$(curl -s localhost:8000/metrics | grep '^vllm:num_requests_waiting' | awk '{print $2}')
  RUNNING=${RUNNING:-0}
  WAITING=${WAITING:-0}
  [ "$RUNNING" = 0 ] && [ "$WAITING" = 0 ] && exit 0
  sleep 2
done"""


def test_drain_hook_seed_defaults_to_zero_unchecked():
    (finding,) = drain_hook_findings(SEED)
    assert "defaults the queue depth to 0" in finding


def test_drain_hook_template_escaped_default_is_seen_too():
    assert drain_hook_findings(SEED.replace("${", "$${"))


def test_drain_hook_checked_fetch_passes():
    checked = SEED.replace("RUNNING=$(curl -s", "if ! m=$(curl -fsS localhost:8000/metrics); then sleep 2; continue; fi\n"
                           "  RUNNING=$(echo \"$m\"").replace("WAITING=$(curl -s localhost:8000/metrics", "WAITING=$(echo \"$m\"")
    assert drain_hook_findings(checked) == []


def test_drain_hook_of_this_project_passes():
    assert drain_hook_findings(PRESTOP_HOOK) == []


@pytest.mark.parametrize("script, needle", [
    ("sleep 30", "does not read vLLM's /metrics"),
    ("curl -f localhost:8000/metrics | grep num_requests_running", "num_requests_waiting"),
    ("r=$(curl -sf localhost:8000/metrics | grep -c 'num_requests_running\\|num_requests_waiting')", "no loop"),
])
def test_drain_hook_incomplete(script, needle):
    assert any(needle in f for f in drain_hook_findings(script))
