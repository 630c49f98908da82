"""The lab registry is believed only when it is ours: root tears down what a record names (a temp
folder, namespaces, host sysctls), so a record planted by another user in the shared lock folder
must never be acted on (issue 10 B11's sibling). Pure file-system tests, no lab started."""

from __future__ import annotations

import json
import os
import time

import pytest

from pytest_inference.netlab import LabError, registry

OTHER_UID = 54321


def _planted(victim) -> dict:
    # a lab whose owner and guardian are long dead: reaping it removes its tmpdir
    return {"token": "evil", "owner_pid": 1 << 22, "owner_start": 1, "guardian_pid": 1 << 22,
            "guardian_start": 1, "tmpdir": str(victim), "server_netns": "pti-no-such-ns-a",
            "node_netns": "pti-no-such-ns-b", "host_restore": {}, "started_at": time.time()}


@pytest.fixture
def lock_dir(tmp_path, monkeypatch):
    if os.geteuid() != 0:
        pytest.skip("needs root to create files owned by another user")
    d = tmp_path / "locks"
    d.mkdir(mode=0o1777)
    os.chmod(d, 0o1777)
    monkeypatch.setenv("PYTEST_INFERENCE_LOCK_DIR", str(d))
    return d


def test_a_registry_folder_owned_by_another_user_is_refused(lock_dir, tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious").write_text("keep me")
    reg = lock_dir / "netlab"
    reg.mkdir(mode=0o755)
    (reg / "evil.json").write_text(json.dumps(_planted(victim)))
    os.chown(reg / "evil.json", OTHER_UID, OTHER_UID)
    os.chown(reg, OTHER_UID, OTHER_UID)
    with pytest.raises(LabError) as exc:
        registry.reap_orphans()
    assert "unsafe lab registry" in str(exc.value) and "\n" not in str(exc.value)
    assert (victim / "precious").read_text() == "keep me"


def test_a_record_planted_by_another_user_in_our_registry_is_ignored(lock_dir, tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious").write_text("keep me")
    reg = lock_dir / "netlab"
    reg.mkdir(mode=0o700)
    planted = reg / "evil.json"
    planted.write_text(json.dumps(_planted(victim)))
    os.chown(planted, OTHER_UID, OTHER_UID)
    assert registry.reap_orphans() == []
    assert (victim / "precious").read_text() == "keep me"


def test_a_symlinked_record_is_not_followed(lock_dir, tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text(json.dumps(_planted(victim)))
    reg = lock_dir / "netlab"
    reg.mkdir(mode=0o700)
    (reg / "evil.json").symlink_to(elsewhere)
    assert registry.reap_orphans() == []
    assert victim.is_dir()


def test_our_own_orphan_record_is_still_reaped(lock_dir, tmp_path):
    """The control: the checks keep the orphan cleanup working for records we wrote."""
    victim = tmp_path / "ours"
    victim.mkdir()
    reg = lock_dir / "netlab"
    reg.mkdir(mode=0o700)
    (reg / "mine.json").write_text(json.dumps(_planted(victim)))
    lines = registry.reap_orphans()
    assert len(lines) == 1 and "torn down" in lines[0]
    assert not victim.exists()
