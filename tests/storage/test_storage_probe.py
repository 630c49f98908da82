"""Storage probe without a server: path inspection, URL checks, the mounted read, one-line errors."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_inference.node import Node, RecordedBackend
from pytest_inference.storage.probe import (
    StorageError,
    drop_file_cache,
    inspect_path,
    inspect_url,
    measure_url_version,
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
    # the URL's version= is what the client is asked to speak, never the server's version: unmeasured
    assert (info.mode, info.is_nfs, info.version, info.nfs_server) == ("url", True, None, "10.0.0.5")
    assert info.to_dict()["options"]["vers_source"] == "not measured"
    assert version_number("4.1") == 4.1 and version_number("4") == 4.0 and version_number("x") is None


@pytest.mark.parametrize(("url", "says"), [
    ("nfs://[fe80::1/export/llama", "not a valid nfs:// URL (Invalid IPv6 URL)"),
    ("nfs://[zz::1]/export/llama", "not a valid nfs:// URL"),
    ("nfs://10.0.0.5:99999/export/llama", "not a valid nfs:// URL (Port out of range 0-65535)"),
    ("nfs://10.0.0.5:0/export/llama", "port 0 is not 1-65535"),
    ("nfs://10.0.0.5/export/llama?version=nan", "version='nan': the userspace client speaks version=3 or version=4"),
    ("nfs://10.0.0.5/export/llama?version=inf", "version='inf'"),
    ("nfs://10.0.0.5/export/llama?version=4.1", "version='4.1'"),
    ("nfs://10.0.0.5/export/llama?version=4&version=3", "version='3'"),
    ("nfs://10.0.0.5/export/llama?vers=4", "unknown query parameter 'vers'"),
    ("nfs://admin:s3cr3tpw@10.0.0.5/export/llama", "carries no user or password"),
    ("nfs://admin:s3cr3tpw@10.0.0.5:99999/export/llama", "Port out of range"),
    ("nfs://admin:s3cr3tpw@[fe80::1/export/llama", "Invalid IPv6 URL"),
    ("nfs://:s3cr3tpw@10.0.0.5/export/llama?version=nan", "carries no user or password"),
])
def test_bad_nfs_url_is_one_line_without_the_password(url, says):
    with pytest.raises(StorageError) as e:
        inspect_url(url)
    msg = str(e.value)
    assert msg.startswith("--nfs-url nfs://") and says in msg and "\n" not in msg, msg
    assert "s3cr3tpw" not in msg and "admin" not in msg


def test_the_suite_never_passes_an_nfs_version_from_the_url(tmp_path):
    """A1: nothing answers at 127.0.0.1:1 — storage.nfs_version must not pass on the URL's
    ?version=4 (it did, as 4.1, from ?version=4.1); a version the client cannot speak is one line."""
    root = Path(__file__).resolve().parents[2]

    def run(url):
        report = tmp_path / f"r{len(list(tmp_path.iterdir()))}"
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", str(root / "suites/storage/test_storage.py"), "-p", "no:cacheprovider",
             "--rootdir", str(root), "--target", "cpu-local", "--nfs-url", url, "--inference-report", str(report),
             "-k", "on_nfs"], capture_output=True, text=True, cwd=tmp_path, timeout=300)
        summary = report / "summary.json"
        claims = json.loads(summary.read_text())["claims"] if summary.exists() else []
        return proc, proc.stdout + proc.stderr, {c["metric"]: c["verdict"] for c in claims}

    proc, out, verdicts = run("nfs://127.0.0.1:1/export/llama?version=4")
    assert proc.returncode != 0 and verdicts.get("storage.nfs_version") != "pass", out[-3000:]
    assert "cannot reach the NFS server 127.0.0.1:1: Connection refused" in out and "Traceback" not in out
    proc, out, verdicts = run("nfs://u:s3cr3tpw@127.0.0.1:1/export/llama?version=inf")
    assert proc.returncode != 0 and verdicts.get("storage.nfs_version") != "pass", out[-3000:]
    assert "carries no user or password" in out and "s3cr3tpw" not in out and "Traceback" not in out


def test_server_version_of_something_that_is_not_nfs_is_one_line():
    """A TCP server that answers garbage (not ONC RPC) gives a one-line error, not a version."""
    import socket
    import threading

    srv = socket.create_server(("127.0.0.1", 0))
    port = srv.getsockname()[1]

    def serve():
        conn, _ = srv.accept()
        with conn:
            conn.recv(4096)
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        with pytest.raises(StorageError) as e:
            measure_url_version(inspect_url(f"nfs://127.0.0.1:{port}/export/llama"), timeout=30)
    finally:
        srv.close()
    assert "\n" not in str(e.value) and str(e.value).startswith(f"--nfs-url nfs://127.0.0.1:{port}/export/llama: ")


def test_unreachable_nfs_server_is_one_line():
    """Nothing listens on 127.0.0.1:1: the reader says so in one line, fast."""
    with pytest.raises(StorageError) as e:
        read_url("nfs://127.0.0.1:1/export/model", readers=1, timeout=60)
    assert str(e.value) == ("--nfs-url nfs://127.0.0.1:1/export/model: cannot reach the NFS server "
                            "127.0.0.1:1: Connection refused")


def test_reader_cli_prints_json_errors():
    out = subprocess.run([sys.executable, "-m", "pytest_inference.storage.nfs_reader", "http://x/y"],
                         capture_output=True, text=True)
    assert out.returncode == 2 and json.loads(out.stdout) == {"error": "http://x/y: expected nfs://SERVER/EXPORT[/PATH]"}


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


WITHOUT_LIBNFS = "import sys; sys.modules['libnfs'] = None; sys.modules['libnfs.libnfs'] = None\n"


def test_without_the_binding_the_reader_says_what_to_install():
    """C19: a Python without the libnfs binding (a fresh virtualenv) is told the extra to install and
    the Debian packages it builds against, naming that Python."""
    code = WITHOUT_LIBNFS + ("from pytest_inference.storage.nfs_reader import main\n"
                             "sys.exit(main(['nfs://127.0.0.1:1/export/m', '--readers', '1']))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    err = json.loads(out.stdout)["error"]
    assert out.returncode == 2 and f"not installed in {sys.executable}" in err
    assert "pip install 'pytest-inference[nfs]'" in err and "libnfs-dev swig build-essential" in err


def test_without_the_binding_the_lab_skip_says_what_to_install():
    code = WITHOUT_LIBNFS + ("from pytest_inference.netlab import NetLab, LabUnavailable\n"
                             "try:\n    NetLab.check_available()\nexcept LabUnavailable as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout.strip()
    if "libnfs" not in out:
        pytest.skip(f"the lab stops at an earlier prerequisite here: {out}")
    assert "pip install 'pytest-inference[nfs]'" in out and "apt-get install libnfs-dev swig build-essential" in out
    assert "PYTHON=" in out and "scripts/install-nfs-lab.sh" in out
