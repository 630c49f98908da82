"""pytest_inference.server against the fake server's startup simulation: the timeline, failures
during start, command templates, the device lock, the server family's hooks (vLLM's cache root and
CPU pinning, and anyone's). Tolerances are generous: this runs on a loaded 2-core CI box."""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
from pathlib import Path

import pytest

from pytest_inference.server import DeviceLock, ServerHooks, ServerSpec, ServerStartError, launch
from pytest_inference.supervise import group_members
from pytest_inference.vllm.hooks import VLLM

from server_helpers import fake_spec, wait_group_gone


def _assert_clean(h) -> None:
    """The server, its children and its watchdog are gone; the device is free; TMPDIR removed."""
    assert h.exit is not None
    assert h.exit.survivors == []
    assert wait_group_gone(h.pgid, 3.0) == []
    assert h.watchdog is None or h.watchdog.poll() is not None
    assert h.tmpdir is not None and not h.tmpdir.exists()
    lk = DeviceLock(h.device, h.spec.lock_dir)
    lk.acquire(timeout_s=2.0)
    lk.release()


# ------------------------------------------------------------------ timeline


def test_timeline_follows_injected_delays(lock_dir: Path, tmp_path: Path) -> None:
    log = tmp_path / "startup.log"
    log.write_text("0\tINFO start marker\n0.4\tINFO loading weights\n0.4\tINFO init engine took 0.80 s\n")
    seen: list[tuple[str, float]] = []
    progress: list[tuple[str, float]] = []
    spec = fake_spec(lock_dir, f"--startup-log {log} --startup-s 0.6 --health-delay-s 0.5 --ttft-ms 60 "
                               "--fork-children 1", log_path=tmp_path / "server.log")
    with launch(spec, on_line=lambda line, t: seen.append((line, t))) as h:
        tl = h.wait_ready(progress=lambda text, t: progress.append((text, t)))
        assert h.alive()
    _assert_clean(h)

    t_mark = next(t for t, line in tl.lines if "start marker" in line)
    t_load = next(t for t, line in tl.lines if "loading weights" in line)
    t_init = next(t for t, line in tl.lines if "init engine" in line)
    # replayed log lines arrive with their delays
    assert 0.3 < t_load - t_mark < 0.9
    assert 0.3 < t_init - t_load < 0.9
    # port opens startup_s after the last replayed line; /health 503 for 0.5 s; first token after the ttft
    assert 0.6 - 0.1 <= tl.port_open_s - t_init <= 0.6 + 0.5
    assert t_init < tl.port_open_s <= tl.health_s <= tl.first_token_s
    assert 0.5 - 0.1 <= tl.health_s - tl.port_open_s <= 0.5 + 0.5
    assert 60 <= tl.ttft_ms < 600
    assert tl.ttft_ms / 1000 <= tl.first_token_s - tl.health_s <= tl.ttft_ms / 1000 + 0.5
    assert tl.first_request["ok"] and tl.first_request["requested_max_tokens"] == 8
    assert tl.first_request["ignore_eos"] is True
    assert tl.lock_wait_s < 0.5
    assert tl.port == h.port and tl.pid == h.pid and tl.device == "cpu"
    assert tl.launched_at.endswith("+00:00")

    # every line is timed, in order, reached on_line with the same stamp, and is in the log file
    assert [(line, t) for t, line in tl.lines] == seen[: len(tl.lines)]
    assert [t for t, _ in tl.lines] == sorted(t for t, _ in tl.lines)
    text = (tmp_path / "server.log").read_text()
    for _, line in tl.lines:
        assert line in text
    assert "init engine took" in h.log_tail(40)
    # progress named each stage, with the last log line
    stages = [p for p, _ in progress]
    assert stages[0].startswith("waiting for port")
    assert any(s.startswith("waiting for /health") for s in stages)
    # the server's "listening on" line, shown with the stage after the port: at the /health stage when the
    # log reader has it by then, else (a loaded box) at the first-token stage 0.5 s later
    assert any(s.startswith(("waiting for /health", "first token")) and "listening on" in s for s in stages)
    assert any(s.startswith("first token") for s in stages)
    json.dumps(tl.to_dict())  # serialisable


def test_progress_at_least_every_two_seconds_while_waiting(lock_dir: Path) -> None:
    calls: list[tuple[str, float]] = []
    with launch(fake_spec(lock_dir, "--startup-s 3.2")) as h:
        h.wait_ready(first_token=False, progress=lambda text, t: calls.append((text, t)))
    port_calls = [t for text, t in calls if text.startswith("waiting for port")]
    assert len(port_calls) >= 2
    assert all(b - a < 2.6 for a, b in zip(port_calls, port_calls[1:]))


def test_without_first_token(lock_dir: Path) -> None:
    with launch(fake_spec(lock_dir, "--health-delay-s 0.3")) as h:
        tl = h.wait_ready(first_token=False)
        assert tl.first_token_s is None and tl.ttft_ms is None
        assert tl.health_s >= tl.port_open_s
        assert h.base_url == f"http://127.0.0.1:{h.port}/v1" and h.root_url == f"http://127.0.0.1:{h.port}"


# ------------------------------------------------------------------ failures during start


def test_death_during_start_fails_at_once(lock_dir: Path) -> None:
    spec = fake_spec(lock_dir, "--startup-s 0.8 --fork-children 2 --die-during-start", start_timeout_s=60)
    h = launch(spec)
    with pytest.raises(ServerStartError) as ei:
        h.wait_ready()
    t_raised = time.monotonic() - h.t0
    err = ei.value
    t_death = next(t for t, line in h.lines() if "Engine core initialization failed" in line)
    assert t_raised - t_death < 1.0, (t_raised, t_death)  # not after the 60 s timeout
    assert err.returncode == 3
    msg = str(err)
    assert "exit code 3" in msg and "Engine core initialization failed" in msg
    assert "waiting for port" in msg and not err.port_in_use
    assert "Engine core initialization failed" in err.tail
    # the forked children (left behind by the dead leader) were killed with the group
    _assert_clean(h)
    assert h.stop() is h.exit  # idempotent


def test_leader_killed_during_start_says_by_what(lock_dir: Path) -> None:
    # an OOM kill of the API server: its forked children are left running, then killed with the group
    h = launch(fake_spec(lock_dir, "--startup-s 60 --fork-children 2"))
    threading.Timer(0.8, os.kill, (h.pid, 9)).start()
    with pytest.raises(ServerStartError, match="killed by SIGKILL") as ei:
        h.wait_ready()
    assert ei.value.returncode == -9 and time.monotonic() - h.t0 < 3
    _assert_clean(h)


def test_timeout_stops_the_server(lock_dir: Path) -> None:
    h = launch(fake_spec(lock_dir, "--startup-s 60 --fork-children 2", start_timeout_s=1.5))
    assert len(group_members(h.pgid)) >= 1
    with pytest.raises(ServerStartError) as ei:
        h.wait_ready()
    assert 1.4 <= time.monotonic() - h.t0 < 8
    assert "did not open port" in str(ei.value) and "1.5 s" in str(ei.value)
    assert "fake child" in str(ei.value)  # the tail came with it
    assert ei.value.returncode is None
    _assert_clean(h)


def test_health_never_200_times_out(lock_dir: Path) -> None:
    h = launch(fake_spec(lock_dir, "--health-delay-s 60", start_timeout_s=1.5))
    with pytest.raises(ServerStartError) as ei:
        h.wait_ready()
    assert "/health did not answer 200" in str(ei.value) and "last answer: 503" in str(ei.value)
    assert ei.value.stage == "waiting for /health"
    _assert_clean(h)


def test_ctrl_c_during_wait_stops_the_server(lock_dir: Path) -> None:
    h = launch(fake_spec(lock_dir, "--startup-s 60 --fork-children 2"))

    def progress(text: str, t: float) -> None:
        if t > 0.5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        h.wait_ready(progress=progress)
    _assert_clean(h)


def test_missing_executable_is_one_clear_line(lock_dir: Path) -> None:
    with pytest.raises(ServerStartError) as ei:
        launch(fake_spec(lock_dir, python="/nonexistent/bin/python3"))
    assert "/nonexistent/bin/python3" in str(ei.value) and "not found" in str(ei.value)
    assert "\n" not in str(ei.value)
    with pytest.raises(ServerStartError) as ei:
        launch(ServerSpec(command="no-such-inference-server --port {port}", lock_dir=lock_dir))
    assert str(ei.value) == "cannot start the server: executable 'no-such-inference-server' not found on PATH"
    # the device was released
    lk = DeviceLock("cpu", lock_dir)
    lk.acquire(timeout_s=0.5)
    lk.release()


def test_port_taken_by_the_time_the_server_binds(lock_dir: Path) -> None:
    # the race: the chosen port is free when chosen, then someone else binds it first.
    # Simulated by a command that binds a port this test holds.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        taken = s.getsockname()[1]
        spec = fake_spec(lock_dir, start_timeout_s=20)
        spec.command = spec.command.replace("--port {port}", f"--port {taken}")
        h = launch(spec)
        with pytest.raises(ServerStartError) as ei:
            h.wait_ready()
    assert ei.value.port_in_use
    assert "already in use" in str(ei.value) and "port race" in str(ei.value)
    _assert_clean(h)


def test_port_answered_by_someone_else(lock_dir: Path) -> None:
    port = socket.socket()
    port.bind(("127.0.0.1", 0))
    fixed = port.getsockname()[1]
    port.close()
    intruder = socket.socket()
    intruder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)

    def grab(line: str, t: float) -> None:  # someone takes the port while the server starts
        if "fake child" in line and intruder.fileno() >= 0 and not getattr(grab, "done", False):
            grab.done = True  # type: ignore[attr-defined]
            intruder.bind(("127.0.0.1", fixed))
            intruder.listen()

    spec = fake_spec(lock_dir, "--startup-s 30 --fork-children 1", port=fixed)
    spec.command = spec.command.replace("--port {port}", "--port 0")  # the server itself binds elsewhere
    h = launch(spec, on_line=grab)
    try:
        with pytest.raises(ServerStartError) as ei:
            h.wait_ready()
    finally:
        intruder.close()
    assert "outside the server's group" in str(ei.value)
    _assert_clean(h)


def test_fixed_port_already_listening_is_refused(lock_dir: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        with pytest.raises(ServerStartError, match="already listens on 127.0.0.1:"):
            launch(fake_spec(lock_dir, port=s.getsockname()[1]))


# ------------------------------------------------------------------ command templates


def test_str_template_expansion_quotes_values(tmp_path: Path) -> None:
    spec = ServerSpec(command="{python} -m srv --model {model_path} --name {model} --host {host} --port {port} "
                              "--cache {cache_dir} {args}",
                      python="/opt/my venv/bin/python", model_path="/models/a b", model="m-1",
                      args="--max-model-len 512 --x 'two words'")
    argv = spec.format_command(8123, tmp_path / "c d")
    assert argv == ["/opt/my venv/bin/python", "-m", "srv", "--model", "/models/a b", "--name", "m-1",
                    "--host", "127.0.0.1", "--port", "8123", "--cache", str(tmp_path / "c d"),
                    "--max-model-len", "512", "--x", "two words"]


def test_list_command_and_args_list() -> None:
    spec = ServerSpec(command=["vllm", "serve", "{model_path}", "--port={port}", "{args}", "--host", "{host}"],
                      model_path="/m x", args=["--enforce-eager", "--dtype", "float32"])
    assert spec.format_command(9000) == ["vllm", "serve", "/m x", "--port=9000", "--enforce-eager", "--dtype",
                                         "float32", "--host", "127.0.0.1"]
    assert ServerSpec(command=["srv", "{args}"]).format_command(1) == ["srv"]


def test_template_errors_are_clear() -> None:
    with pytest.raises(ServerStartError, match=r"unknown placeholder \{modle\}"):
        ServerSpec(command="srv {modle}").format_command(1)
    with pytest.raises(ServerStartError, match="model_path is not set"):
        ServerSpec(command="srv --model {model_path}").format_command(1)
    with pytest.raises(ServerStartError, match="empty"):
        ServerSpec(command="  ").format_command(1)


def _environ(pid: int) -> dict[str, str]:
    return dict(kv.split("=", 1) for kv in Path(f"/proc/{pid}/environ").read_bytes().decode().split("\0") if "=" in kv)


def test_private_cache_and_tmpdir(lock_dir: Path, tmp_path: Path) -> None:
    cache = tmp_path / "state"
    with launch(fake_spec(lock_dir, cache_dir=cache, hooks=VLLM)) as h:
        h.wait_ready(first_token=False)
        env = _environ(h.pid)
        assert env["VLLM_CACHE_ROOT"] == str(cache / "cache")  # vLLM's hooks point its cache there
        assert env["TMPDIR"] == str(cache / "tmp" / "cpu")
        assert (cache / "tmp" / "cpu").is_dir()
    assert not (cache / "tmp" / "cpu").exists()  # ZMQ sockets and the like go with it
    assert (cache / "cache").is_dir()  # the compile cache stays for warm starts


# ------------------------------------------------------------------ one server per device


def test_device_lock_serialises_and_is_not_counted(lock_dir: Path) -> None:
    first = launch(fake_spec(lock_dir))
    first.wait_ready(first_token=False)
    waits: list[str] = []
    out: dict = {}

    def second() -> None:
        with launch(fake_spec(lock_dir), progress=lambda text, t: waits.append(text)) as h2:
            out["t0"] = h2.t0
            out["tl"] = h2.wait_ready(first_token=False)

    th = threading.Thread(target=second)
    th.start()
    time.sleep(1.2)
    assert "t0" not in out  # still waiting for the device
    ex = first.stop()
    th.join(30)
    assert out["t0"] >= ex.gone_at  # launched only once the first server was gone
    tl = out["tl"]
    assert tl.lock_wait_s >= 1.0
    assert tl.port_open_s < 5  # the wait is not in the cold start
    assert waits and waits[0].startswith(f"waiting for device cpu, held by pid {os.getpid()}")


def test_a_busy_device_can_time_out(lock_dir: Path) -> None:
    with launch(fake_spec(lock_dir)):
        with pytest.raises(ServerStartError, match="device cpu is busy"):
            launch(fake_spec(lock_dir, lock_timeout_s=0.3))
        with launch(fake_spec(lock_dir, device="gpu1"), ) as other:  # another device is independent
            other.wait_ready(first_token=False)


# ------------------------------------------------------------------ a server family's hooks


class _RecordingHooks(ServerHooks):
    """Another server family (as an SGLang or TGI package would be): its own cache variable and a
    pinning that records what the launcher handed it."""

    name = "other server"

    def __init__(self) -> None:
        self.calls: list[tuple[int, list, object]] = []

    def environment(self, cache_root: Path) -> dict[str, str]:
        return {"OTHER_CACHE": str(cache_root)}

    def pin(self, pgid, members, mode):
        self.calls.append((pgid, list(members), mode))
        return {"done": True, "placed": len(members)}


def test_the_launcher_knows_no_server_family(lock_dir: Path, tmp_path: Path) -> None:
    """Without hooks no family's variable is set and nothing is pinned; another family's hooks get the
    cache root and, once /health answered, the server's whole group."""
    with launch(fake_spec(lock_dir, "--fork-children 2", cache_dir=tmp_path / "a", pin_cpus=True)) as h:
        tl = h.wait_ready(first_token=False)
        env = _environ(h.pid)
        assert not any(k.startswith("VLLM") for k in env if k not in os.environ)
        assert tl.pinning["done"] is False and "no CPU pinning" in tl.pinning["reason"]
    hooks = _RecordingHooks()
    with launch(fake_spec(lock_dir, "--fork-children 2", cache_dir=tmp_path / "b", hooks=hooks,
                          pin_cpus="auto")) as h:
        tl = h.wait_ready(first_token=False)
        assert _environ(h.pid)["OTHER_CACHE"] == str((tmp_path / "b" / "cache").resolve())
        [(pgid, members, mode)] = hooks.calls
        assert pgid == h.pgid and mode == "auto"
        assert {p for p, _, _ in members} == {p for p, _, _ in h.group_members()} and len(members) == 3
        assert tl.pinning["done"] is True and tl.pinning["placed"] == 3 and tl.pinning["mode"] == "auto"


class _BrokenHooks(ServerHooks):
    def pin(self, pgid, members, mode):
        raise RuntimeError("no affinity here")


def test_a_failing_pin_hook_is_recorded_and_the_start_goes_on(lock_dir: Path) -> None:
    with launch(fake_spec(lock_dir, hooks=_BrokenHooks())) as h:
        tl = h.wait_ready(first_token=True)
        assert tl.first_token_s is not None
        assert tl.pinning["done"] is False and "no affinity here" in tl.pinning["reason"]


# ------------------------------------------------------------------ CPU pinning (vLLM's EngineCore)


@pytest.mark.skipif((os.cpu_count() or 1) < 2 or not hasattr(os, "sched_setaffinity"), reason="needs 2 CPUs")
def test_pins_engine_core_with_worker_and_api_server_elsewhere(lock_dir: Path) -> None:
    spec = fake_spec(lock_dir, "--fork-children 2 --child-names VLLM::EngineCore,VLLM::Worker --worker-cpus 0",
                     pin_cpus=True, hooks=VLLM)
    with launch(spec) as h:
        tl = h.wait_ready()
        p = tl.pinning
        assert p["done"], p
        procs = {c: pid for pid, _, c in h.group_members()}
        assert p["engine_core_pid"] == procs["VLLM::EngineCor"] and p["worker_pid"] == procs["VLLM::Worker"]
        assert os.sched_getaffinity(p["engine_core_pid"]) == {0}
        assert os.sched_getaffinity(h.pid) == set(range(os.cpu_count())) - {0} == set(p["api_cpus"])
    with launch(fake_spec(lock_dir, pin_cpus=True, hooks=VLLM)) as h:
        assert h.wait_ready(first_token=False).pinning["reason"] == "no separate EngineCore and Worker processes"
    with launch(fake_spec(lock_dir, pin_cpus=False, hooks=VLLM)) as h:
        assert h.wait_ready(first_token=False).pinning["reason"].startswith("pin_cpus=False on ")
