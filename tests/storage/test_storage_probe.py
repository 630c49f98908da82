"""Storage probe without a server: path inspection, URL checks, the mounted read, one-line errors."""

import json
import subprocess
import sys

import pytest

from pytest_inference.node import Node, RecordedBackend
from pytest_inference.storage.probe import (
    StorageError,
    drop_file_cache,
    inspect_path,
    inspect_url,
    read_mount,
    read_url,
    version_number,
)

MOUNTINFO = ("22 1 252:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw\n"
             "36 22 0:52 / /mnt/models rw,relatime shared:81 - nfs4 10.0.0.5:/export rw,vers=4.1,rsize=1048576,"
             "wsize=1048576,namlen=255,hard,proto=tcp,timeo=600,retrans=2,sec=sys,clientaddr=10.0.0.9,"
             "local_lock=none,addr=10.0.0.5\n")


def test_local_path_is_reported_as_not_nfs(tmp_path):
    info = inspect_path(tmp_path)
    assert info.mode == "mount" and not info.is_nfs
    reason = info.not_nfs_reason()
    assert reason.startswith(f"{tmp_path.resolve()} is on {info.mount.fstype} (mount ") and reason.endswith("not NFS")


def test_missing_model_path_is_one_line(tmp_path):
    with pytest.raises(StorageError, match=r"^--model-path .*/nope: no such file or folder$"):
        inspect_path(tmp_path / "nope")


def test_nfs_mount_from_a_recording_without_nconnect(tmp_path):
    (tmp_path / "proc/self").mkdir(parents=True)
    (tmp_path / "proc/self/mountinfo").write_text(MOUNTINFO)
    info = inspect_path("/mnt/models/llama", Node(RecordedBackend(tmp_path)))
    assert info.is_nfs and info.version == "4.1" and info.nconnect == 1 and info.nfs_server == "10.0.0.5"
    assert any("nconnect= only when it was set" in n for n in info.notes)
    assert info.to_dict()["options"]["rsize"] == 1048576


@pytest.mark.parametrize("url", ["http://server/export", "nfs:///export", "nfs://server", "nfs://server/"])
def test_malformed_nfs_url_is_one_line(url):
    with pytest.raises(StorageError, match=r"expected nfs://SERVER/EXPORT\[/PATH\]$"):
        inspect_url(url)


def test_url_mode_storage():
    info = inspect_url("nfs://10.0.0.5/export/llama?version=4")
    assert (info.mode, info.is_nfs, info.version, info.nfs_server) == ("url", True, "4", "10.0.0.5")
    assert version_number("4.1") == 4.1 and version_number("4") == 4.0 and version_number("x") is None


def test_unreachable_nfs_server_is_one_line():
    """Nothing listens on 127.0.0.1:1: the reader says so in one line, fast."""
    with pytest.raises(StorageError) as e:
        read_url("nfs://127.0.0.1:1/export/model", readers=1, timeout=60)
    assert str(e.value) == ("--nfs-url nfs://127.0.0.1:1/export/model: cannot reach the NFS server "
                            "127.0.0.1:1: Connection refused")


def test_reader_cli_prints_json_errors():
    out = subprocess.run([sys.executable, "-m", "pytest_inference.storage.nfs_reader", "http://x/y"],
                         capture_output=True, text=True)
    assert out.returncode == 2 and json.loads(out.stdout) == {"error": "http://x/y: not an nfs://SERVER/EXPORT/PATH URL"}


def test_mounted_read_counts_every_byte_without_the_cache(tmp_path):
    (tmp_path / "model-00001-of-00002.safetensors").write_bytes(b"\1" * (3 << 20))
    (tmp_path / "model-00002-of-00002.safetensors").write_bytes(b"\2" * ((2 << 20) + 123))
    (tmp_path / "config.json").write_text("{}")
    assert drop_file_cache(tmp_path) == 3
    r = read_mount(tmp_path, readers=3, block=1 << 20)
    assert r.bytes == (5 << 20) + 123 and r.readers == 3 and r.MBps > 0
    assert "O_DIRECT" in r.method or "posix_fadvise" in r.method


def test_mounted_read_of_a_folder_without_weights_is_one_line(tmp_path):
    with pytest.raises(StorageError, match=r"^--model-path .*: no weight files"):
        read_mount(tmp_path)
