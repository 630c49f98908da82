"""The device lock in a shared, world-writable directory: no symlink followed, no foreign file
chmodded, no unsafe directory trusted (issue 10, B11)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_inference.server import DeviceLock, DeviceLockUnsafe, ServerStartError, launch

from server_helpers import fake_spec


def _shared_dir(tmp_path: Path) -> Path:
    d = tmp_path / "shared-locks"
    d.mkdir()
    os.chmod(d, 0o1777)  # like /tmp/pytest-inference-locks
    return d


def _victim(tmp_path: Path) -> Path:
    v = tmp_path / "victim-secret"
    v.write_text("root-only\n")
    os.chmod(v, 0o600)
    return v


def test_planted_lock_symlink_is_refused_and_its_target_keeps_mode_0600(tmp_path: Path) -> None:
    d, victim = _shared_dir(tmp_path), _victim(tmp_path)
    (d / "cpu.lock").symlink_to(victim)
    with pytest.raises(DeviceLockUnsafe, match=r"lock file .*cpu\.lock is a symlink"):
        DeviceLock("cpu", d).acquire(timeout_s=1)
    assert stat.S_IMODE(victim.stat().st_mode) == 0o600
    assert victim.read_text() == "root-only\n"


def test_planted_owner_tmp_symlink_is_not_written_through(tmp_path: Path) -> None:
    d, victim = _shared_dir(tmp_path), _victim(tmp_path)
    lk = DeviceLock("cpu", d)
    lk.acquire(timeout_s=1)
    try:
        # every temporary name a writer could pick is refused: plant the owner file itself as a link too
        (d / "cpu.owner").symlink_to(victim)
        assert lk.holder() is None  # read without following
        lk.write_owner(pgid=1)  # replaces the link by a fresh file of ours
        assert not (d / "cpu.owner").is_symlink() and lk.holder()["pid"] == os.getpid()
    finally:
        lk.release()
    assert stat.S_IMODE(victim.stat().st_mode) == 0o600 and victim.read_text() == "root-only\n"


def test_lock_file_is_never_made_world_writable(tmp_path: Path) -> None:
    d = _shared_dir(tmp_path)
    with DeviceLock("cpu", d):
        pass
    mode = stat.S_IMODE((d / "cpu.lock").stat().st_mode)
    assert not mode & 0o022, oct(mode)
    # an existing lock file of someone else is used read-only as it is, not chmodded
    os.chmod(d / "cpu.lock", 0o444)
    with DeviceLock("cpu", d) as lk:
        assert lk.held
    assert stat.S_IMODE((d / "cpu.lock").stat().st_mode) == 0o444


def test_hard_linked_lock_file_is_refused(tmp_path: Path) -> None:
    d, victim = _shared_dir(tmp_path), _victim(tmp_path)
    os.link(victim, d / "cpu.lock")
    with pytest.raises(DeviceLockUnsafe, match="hard links"):
        DeviceLock("cpu", d).acquire(timeout_s=1)
    assert stat.S_IMODE(victim.stat().st_mode) == 0o600


def test_fifo_lock_file_is_refused_without_hanging(tmp_path: Path) -> None:
    d = _shared_dir(tmp_path)
    os.mkfifo(d / "cpu.lock")
    with pytest.raises(DeviceLockUnsafe, match="not a regular file"):
        DeviceLock("cpu", d).acquire(timeout_s=1)


def test_symlinked_lock_dir_is_refused(tmp_path: Path) -> None:
    real = _shared_dir(tmp_path)
    link = tmp_path / "link-locks"
    link.symlink_to(real)
    with pytest.raises(DeviceLockUnsafe, match="is a symlink"):
        DeviceLock("cpu", link).acquire(timeout_s=1)
    assert not (real / "cpu.lock").exists()


def test_world_writable_dir_without_sticky_bit_is_refused(tmp_path: Path) -> None:
    d = tmp_path / "open-locks"
    d.mkdir()
    os.chmod(d, 0o777)
    with pytest.raises(DeviceLockUnsafe, match="writable by others but not sticky"):
        DeviceLock("cpu", d).acquire(timeout_s=1)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the directory to another user")
def test_lock_dir_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    d = _shared_dir(tmp_path)
    os.chown(d, 65534, 65534)  # nobody
    with pytest.raises(DeviceLockUnsafe, match="owned by uid 65534"):
        DeviceLock("cpu", d).acquire(timeout_s=1)


def test_new_private_lock_dir_is_created_0700(tmp_path: Path) -> None:
    d = tmp_path / "deep" / "locks"
    with DeviceLock("cpu", d):
        pass
    assert stat.S_IMODE(d.stat().st_mode) == 0o700


def test_launch_with_a_planted_symlink_is_one_line(tmp_path: Path) -> None:
    d, victim = _shared_dir(tmp_path), _victim(tmp_path)
    (d / "cpu.lock").symlink_to(victim)
    with pytest.raises(ServerStartError) as ei:
        launch(fake_spec(d))
    assert "is a symlink" in str(ei.value) and "\n" not in str(ei.value)
    assert stat.S_IMODE(victim.stat().st_mode) == 0o600


def test_read_only_lock_fd_still_excludes_another_process(tmp_path: Path) -> None:
    """flock on the read-only descriptor serialises across processes (no write access needed)."""
    d = _shared_dir(tmp_path)
    code = ("import sys; from pytest_inference.server import DeviceLock, DeviceLockTimeout\n"
            "try:\n DeviceLock('cpu', sys.argv[1]).acquire(timeout_s=0.3)\nexcept DeviceLockTimeout: sys.exit(3)\n")
    with DeviceLock("cpu", d):
        busy = subprocess.run([sys.executable, "-c", code, str(d)], timeout=60)
    free = subprocess.run([sys.executable, "-c", code, str(d)], timeout=60)
    assert (busy.returncode, free.returncode) == (3, 0)
