"""The lab's lifecycle for real: an untuned lab's settings and a full restore at stop, cleanup
by the guardian after the owning process is SIGKILLed, the cross-process wait for the host
settings, cleanup after a failed start, and the unavailability reasons.

No lab is alive in this process between tests (each holds the host network settings)."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from netlab_helpers import (
    assert_server_tuned,
    assert_tuned,
    assert_untuned,
    child_env,
    host_sysctl,
    netns_names,
    node_read,
    pid_running,
    require_lab,
    sha256_file,
    wait_for,
)

from pytest_inference.netlab import LabError, LabUnavailable, NetLab
from pytest_inference.netlab.ganesha import Ganesha

HOST_KEYS = ("net.core.rmem_max", "net.core.wmem_max")
LOCK_DIR = Path(os.environ.get("PYTEST_INFERENCE_LOCK_DIR") or "/tmp/pytest-inference-locks")
LOCK_FILE, OWNER_FILE = LOCK_DIR / "host-net-sysctl.lock", LOCK_DIR / "host-net-sysctl.owner"


@pytest.fixture
def available():
    require_lab()


def host_lock_state() -> tuple[bool, dict | None]:
    """(free, owner info): whether the host-settings lock is free now, and who holds it."""
    fd = os.open(LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return True, None
    except OSError:
        try:
            return False, json.loads(OWNER_FILE.read_text())
        except (OSError, ValueError):
            return False, None
    finally:
        os.close(fd)


def host_released(info: dict, holders: set[int]) -> bool:
    """The host settings are back and no longer held by ``holders``. Other processes (xdist
    workers, other users' labs) may take the lock the moment ours is free and change the values:
    then the new holder's recorded originals must be ours."""
    want = {k: int(v) for k, v in info["host_originals"].items()}
    assert set(want) == set(HOST_KEYS)
    free, owner = host_lock_state()
    if free:
        return {k: host_sysctl(k) for k in HOST_KEYS} == want
    if owner is None or owner.get("pid") in holders:
        return False
    return {k: int(v) for k, v in (owner.get("originals") or {}).items()} == want


def assert_all_gone(info: dict, holders: set[int]) -> None:
    names = netns_names()
    assert info["server_netns"] not in names and info["node_netns"] not in names
    assert not os.path.exists(f"/run/netns/{info['node_netns']}")
    assert not os.path.exists(f"/sys/class/net/{info['server_device']}")
    assert not os.path.exists(info["tmpdir"])
    assert not os.path.exists(info["state_path"])
    assert not pid_running(info["ganesha_pid"])
    assert wait_for(lambda: host_released(info, holders), timeout=5), (
        f"host settings not restored to {info['host_originals']}: "
        f"{ {k: host_sysctl(k) for k in HOST_KEYS} }, lock {host_lock_state()}")


def test_untuned_lab_and_full_restore_at_stop(available):
    lab = NetLab(tuned=False, weights_mib=2, shards=2)
    with lab:
        assert_untuned(lab)
        assert_server_tuned(lab)
        got = node_read(lab, lab.weight_files[1])
        assert got["sha256"] == sha256_file(lab.export_dir / lab.weight_files[1])
        lab.tune()  # and the other way round, in place
        assert_tuned(lab)
        lab.untune()
        assert_untuned(lab)
        info = lab.info()
        guardian = lab.guardian
        free, owner = host_lock_state()
        assert not free and owner["pid"] == os.getpid()  # held for the lab's lifetime
    assert_all_gone(info, {os.getpid()})
    assert guardian.returncode == 0  # told "done", exited without acting
    lab.stop()  # idempotent
    with pytest.raises(LabError):
        lab.tune()


CHILD = r"""
import json, sys, time
from pytest_inference.netlab import NetLab
lab = NetLab(tuned=True, weights_mib=2, shards=2).start()
print(json.dumps(lab.info()), flush=True)
time.sleep(120)
"""


def test_guardian_cleans_up_after_owner_is_sigkilled(available, caplog):
    child = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env=child_env())
    try:
        line = child.stdout.readline()
        assert line, f"child lab did not start: {child.stderr.read()[-3000:] if child.poll() is not None else ''}"
        info = json.loads(line)
        assert {info["server_netns"], info["node_netns"]} <= netns_names()
        assert pid_running(info["ganesha_pid"]) and pid_running(info["guardian_pid"])
        assert host_sysctl("net.core.rmem_max") == 16777216
        # another process's lab holds the host settings: this one waits, says so, and gives up
        caplog.set_level(logging.WARNING, logger="pytest_inference.netlab")
        waits = []
        with pytest.raises(LabError, match="busy"):
            NetLab(tuned=True, weights_mib=1, shards=1, lock_timeout_s=1.0,
                   progress=lambda msg, s: waits.append(msg)).start()
        assert waits and "waiting" in waits[0] and f"pid {child.pid}" in waits[0]
        assert "waiting" in caplog.text
        assert info["server_netns"] in netns_names()  # the refused lab touched nothing
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert wait_for(lambda: not pid_running(info["guardian_pid"]), timeout=15), "guardian still running"
    assert_all_gone(info, {child.pid, info["guardian_pid"]})
    assert "tearing down lab" in child.stderr.read()  # the guardian said what it did
    try:  # the lock's owner record no longer names the dead owner
        assert json.loads(OWNER_FILE.read_text()).get("pid") != child.pid
    except FileNotFoundError:
        pass


EXITS = r"""
import json, sys
from pytest_inference.netlab import NetLab
lab = NetLab(tuned=False, weights_mib=1, shards=1).start()
print(json.dumps(lab.info()), flush=True)
sys.exit(0)  # no stop(): the atexit handler stops the lab
"""


def test_lab_left_running_is_stopped_at_exit(available):
    cp = subprocess.run([sys.executable, "-c", EXITS], capture_output=True, text=True, env=child_env(), timeout=60)
    assert cp.returncode == 0, cp.stderr[-3000:]
    info = json.loads(cp.stdout.splitlines()[-1])
    assert "tearing down" not in cp.stderr  # stopped by the owner itself, not by its guardian
    assert wait_for(lambda: not pid_running(info["guardian_pid"]), timeout=10)
    assert_all_gone(info, set())


class BrokenConfig(Ganesha):
    """A real ganesha that refuses its configuration (an unterminated block)."""

    def write_conf(self):
        conf = self.tmpdir / "ganesha.conf"
        conf.write_text("NFS_CORE_PARAM { Bind_addr = %s; NFS_Port = 2049;\n" % self.addr)
        return conf


class BrokenConfigLab(NetLab):
    ganesha_class = BrokenConfig


def test_failed_start_cleans_up(available):
    lab = BrokenConfigLab(tuned=True, weights_mib=1, shards=1)
    with pytest.raises(LabError, match="ganesha exited") as ei:
        lab.start()
    assert "log" in str(ei.value)
    info = lab.info()
    assert_all_gone(info, {os.getpid()})
    assert lab.guardian.returncode == 0


def test_unavailable_reasons():
    class NoGanesha(NetLab):
        ganesha_binary = "ganesha.nfsd-not-installed"

    if os.geteuid() != 0:
        with pytest.raises(LabUnavailable, match="root"):
            NoGanesha.check_available()
        return
    with pytest.raises(LabUnavailable, match="nfs-ganesha nfs-ganesha-vfs") as ei:
        NoGanesha(weights_mib=1).start()
    assert "\n" not in str(ei.value)
    assert issubclass(LabUnavailable, Exception) and not issubclass(LabUnavailable, LabError)


def test_bad_arguments():
    with pytest.raises(ValueError):
        NetLab(extra_files={"../outside": "x"})
    with pytest.raises(ValueError):
        NetLab(shards=0)


def make_orphan() -> tuple[dict, int]:
    """A lab whose guardian is SIGKILLed first, then its owner: nobody left to clean up; its
    namespaces, files and the host's 16 MiB stay behind until a `down` or the next lab start."""
    child = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             text=True, env=child_env())
    try:
        info = json.loads(child.stdout.readline())
        os.kill(info["guardian_pid"], signal.SIGKILL)
        assert wait_for(lambda: not pid_running(info["guardian_pid"]), timeout=5)
    finally:
        child.kill()
        child.wait()
    return info, child.pid


def test_cli_up_and_down(available):
    """`up` runs a lab until SIGTERM; `down` tears down a lab whose owner and guardian both died."""
    up = subprocess.Popen([sys.executable, "-m", "pytest_inference.netlab", "up", "--untuned",
                           "--weights-mib", "1", "--shards", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, env=child_env())
    try:
        info = json.loads(up.stdout.readline())
        assert info["tuned"] is False and info["node_netns"] in netns_names()
    finally:
        up.send_signal(signal.SIGTERM)
        assert up.wait(timeout=30) == 0, up.stderr.read()[-3000:]
    assert_all_gone(info, {up.pid})

    info, pid = make_orphan()
    cp = subprocess.run([sys.executable, "-m", "pytest_inference.netlab", "down"], capture_output=True,
                        text=True, env=child_env(), timeout=180)
    assert cp.returncode == 0, cp.stderr
    print(cp.stdout)  # "lab …: torn down" — unless another process's lab start reaped it first
    assert_all_gone(info, {pid, info["guardian_pid"]})


def test_next_lab_start_reaps_an_orphan_first(available, caplog):
    """The next lab start tears an orphan down and restores the host before recording the host's
    original values: the orphan's leaked 16 MiB is not taken for the machine's own setting."""
    info, pid = make_orphan()
    caplog.set_level(logging.WARNING, logger="pytest_inference.netlab")
    with NetLab(tuned=False, weights_mib=1, shards=1) as lab:
        assert {k: int(v) for k, v in lab.host_originals.items()} == {
            k: int(v) for k, v in info["host_originals"].items()}
        assert not os.path.exists(info["state_path"])
        print(caplog.text)  # "netlab: lab …: torn down (owner … and its guardian gone; host restored …)"
        info2 = lab.info()
    assert_all_gone(info, {pid, info["guardian_pid"]})
    assert_all_gone(info2, {os.getpid()})
