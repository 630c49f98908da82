"""The weight-read bandwidth probe (storage/read.py): every byte, the page cache kept out, the method said."""

from __future__ import annotations

import os

import pytest

from pytest_inference.storage import read
from pytest_inference.storage.read import MB, MiB, read_bandwidth, resident_fraction, weight_bytes, weight_files


def _write(path, size: int) -> None:
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 4 * MiB)
            f.write(os.urandom(n))
            left -= n
        f.flush()
        os.fsync(f.fileno())


def _page_cache_droppable(path) -> bool:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    frac = resident_fraction(path)
    return frac is not None and frac < 0.05


def test_read_bandwidth_reads_every_byte(tmp_path):
    f = tmp_path / "model-00001-of-00001.safetensors"
    _write(f, 24 * MiB + 123)  # not a multiple of the block or of 4 KiB
    r = read_bandwidth([f], readers=4, block=1 * MiB)
    assert r.bytes == f.stat().st_size
    assert r.files == 1 and r.readers == 4 and r.block == MiB
    assert r.seconds > 0 and r.MBps == pytest.approx(r.bytes / r.seconds / MB)
    assert 1 < r.MBps < 1_000_000  # anything from a slow disk to a fast page cache, never nonsense
    assert r.fadvise is True and "POSIX_FADV_DONTNEED" in r.method
    assert ("O_DIRECT" in r.method) == r.o_direct


def test_read_bandwidth_buffered_path_drops_the_cache_first(tmp_path):
    f = tmp_path / "w.bin"
    _write(f, 8 * MiB)
    if not _page_cache_droppable(f):
        pytest.skip("this filesystem keeps pages on POSIX_FADV_DONTNEED (tmpfs?)")
    assert resident_fraction(f) < 0.05
    f.read_bytes()  # cached again
    assert resident_fraction(f) > 0.95
    r = read_bandwidth(f, o_direct=False)
    assert not r.o_direct and r.fadvise
    assert r.method.startswith("posix_fadvise(POSIX_FADV_DONTNEED) then buffered reads")
    assert r.cached_fraction is not None and r.cached_fraction < 0.05  # the clock started on a cold file
    assert r.bytes == 8 * MiB


def test_read_bandwidth_o_direct_bypasses_the_cache(tmp_path):
    f = tmp_path / "w.safetensors"
    _write(f, 8 * MiB)
    r = read_bandwidth(f)
    if not r.o_direct:
        pytest.skip(f"no O_DIRECT here: {r.method}")
    assert r.method.startswith("O_DIRECT")
    assert resident_fraction(f) < 0.05  # the read left nothing in the page cache


def test_read_bandwidth_falls_back_when_o_direct_fails(tmp_path, monkeypatch):
    f = tmp_path / "w.pt"
    _write(f, 2 * MiB)
    monkeypatch.setattr(read, "_open_direct", lambda path, buf: (None, "O_DIRECT open failed: Invalid argument"))
    r = read_bandwidth(f)
    assert not r.o_direct and r.fadvise
    assert "O_DIRECT open failed" in r.method and "POSIX_FADV_DONTNEED" in r.method
    assert r.bytes == 2 * MiB


def test_read_bandwidth_keeping_the_cache_says_so(tmp_path):
    f = tmp_path / "w.gguf"
    _write(f, MiB)
    r = read_bandwidth(f, drop_cache=False)
    assert not r.fadvise and not r.o_direct and "page cache kept" in r.method


def test_weight_files_in_a_model_folder(tmp_path):
    (tmp_path / "sub").mkdir()
    for name, size in [("a.safetensors", 5000), ("sub/b.bin", 3000), ("c.pt", 10), ("d.gguf", 7), ("config.json", 99),
                       ("tokenizer.json", 99), ("e.safetensors.index.json", 50)]:
        _write(tmp_path / name, size)
    files = weight_files(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in files] == ["a.safetensors", "c.pt", "d.gguf", "sub/b.bin"]
    assert weight_bytes(tmp_path) == 5000 + 3000 + 10 + 7
    assert weight_files([tmp_path, tmp_path / "c.pt"]) == files  # each file once
    r = read_bandwidth(tmp_path, readers=8)  # more readers than pieces
    assert r.bytes == 8017 and r.files == 4


def test_read_bandwidth_errors(tmp_path):
    with pytest.raises(ValueError, match="no weight files"):
        read_bandwidth(tmp_path)
    with pytest.raises(FileNotFoundError):
        read_bandwidth(tmp_path / "missing.safetensors")


def test_read_bandwidth_empty_file(tmp_path):
    f = tmp_path / "empty.safetensors"
    f.write_bytes(b"")
    r = read_bandwidth(f)
    assert r.bytes == 0 and r.MBps == 0.0


def test_read_bandwidth_reader_failure_raises_not_hangs(tmp_path, monkeypatch):
    f = tmp_path / "w.safetensors"
    _write(f, 4 * MiB)

    def broken(*a, **k):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(read, "_open_direct", lambda path, buf: (None, "test"))
    monkeypatch.setattr(read.os, "preadv", broken)
    with pytest.raises(OSError, match="Input/output"):
        read_bandwidth(f, readers=3, block=MiB)
