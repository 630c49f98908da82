"""matplotlib's config folder in the shared temp dir is used only when it is ours (a planted symlink or
another user's folder must not receive the files the charts write)."""

from __future__ import annotations

import os
import stat

import pytest

from pytest_inference.report import charts


@pytest.fixture
def tmpdir_env(tmp_path, monkeypatch):
    monkeypatch.setattr(charts.tempfile, "tempdir", str(tmp_path))
    return tmp_path


def test_a_planted_symlink_is_not_followed(tmpdir_env):
    target = tmpdir_env / "attacker-chosen"
    target.mkdir()
    (tmpdir_env / f"pytest-inference-mpl-{os.getuid()}").symlink_to(target)
    got = charts._private_mpl_dir()
    assert os.path.realpath(got) != str(target) and os.path.isdir(got)
    assert stat.S_IMODE(os.stat(got).st_mode) == 0o700


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the folder to another user")
def test_another_users_folder_is_not_used(tmpdir_env):
    theirs = tmpdir_env / f"pytest-inference-mpl-{os.getuid()}"
    theirs.mkdir()
    os.chown(theirs, 54321, 54321)
    assert charts._private_mpl_dir() != str(theirs)


def test_our_folder_is_reused_and_made_private(tmpdir_env):
    ours = tmpdir_env / f"pytest-inference-mpl-{os.getuid()}"
    ours.mkdir(mode=0o755)
    os.chmod(ours, 0o755)
    assert charts._private_mpl_dir() == str(ours)
    assert stat.S_IMODE(os.stat(ours).st_mode) == 0o700
