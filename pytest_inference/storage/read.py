"""The timed read of a model's weight files: several parallel readers, the page cache kept out.

:func:`read_bandwidth` is the probe the storage suite (``--model-path`` mode) and the cold-start
floor (:mod:`pytest_inference.probes.cold_series`) both use: each file's cached pages are dropped
with ``posix_fadvise(DONTNEED)``, then read with ``O_DIRECT`` where the file system allows it (the
method used is reported, with the share of pages still cached when the clock started).
:func:`weight_files` / :func:`weight_bytes` find the weights under a path. MB here is 10**6 bytes,
MiB 2**20.
"""

from __future__ import annotations

import mmap
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

MB = 1_000_000
MiB = 1 << 20
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".gguf")
#: O_DIRECT needs buffers, offsets and lengths aligned to the logical block size; 4 KiB covers 512 B and 4 KiB
_ALIGN = 4096

@dataclass
class ReadResult:
    bytes: int
    seconds: float
    MBps: float
    method: str  # how the page cache was kept out, in words
    files: int = 0
    readers: int = 1
    block: int = 8 * MiB
    o_direct: bool = False
    fadvise: bool = False
    cached_fraction: float | None = None  # share of the files' pages resident just before the timed read

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def weight_files(paths: str | os.PathLike | Iterable[str | os.PathLike]) -> list[Path]:
    """The weight files under ``paths``: files named directly, and ``*.safetensors``, ``*.bin``,
    ``*.pt``, ``*.gguf`` found (recursively) under directories; sorted, each once."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    found: dict[str, Path] = {}
    for p in paths:
        path = Path(p)
        if path.is_dir():
            for f in sorted(path.rglob("*")):
                if f.is_file() and f.name.endswith(WEIGHT_SUFFIXES):
                    found.setdefault(os.path.realpath(f), f)
        elif path.is_file():
            found.setdefault(os.path.realpath(path), path)
        else:
            raise FileNotFoundError(f"no such file or directory: {path}")
    return sorted(found.values())


def weight_bytes(paths: str | os.PathLike | Iterable[str | os.PathLike]) -> int:
    return sum(f.stat().st_size for f in weight_files(paths))


def resident_fraction(path: str | os.PathLike) -> float | None:
    """Share of a file's pages in the page cache (``mincore``); ``None`` where that cannot be asked."""
    try:
        import ctypes

        size = os.path.getsize(path)
        if size == 0:
            return 0.0
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mmap.restype = ctypes.c_void_p
        libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                              ctypes.c_long]
        libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
        page = os.sysconf("SC_PAGE_SIZE")
        pages = (size + page - 1) // page
        fd = os.open(path, os.O_RDONLY)
        try:
            addr = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
            if addr in (None, ctypes.c_void_p(-1).value):
                return None
            try:
                vec = (ctypes.c_ubyte * pages)()
                if libc.mincore(ctypes.c_void_p(addr), size, vec) != 0:
                    return None
                return sum(1 for b in vec if b & 1) / pages
            finally:
                libc.munmap(ctypes.c_void_p(addr), size)
        finally:
            os.close(fd)
    except (OSError, AttributeError, ValueError, TypeError):
        return None


def _drop(fd: int) -> bool:
    """Ask the kernel to drop the file's clean cached pages; written (dirty) pages are flushed first."""
    if not hasattr(os, "posix_fadvise"):
        return False
    try:
        os.fdatasync(fd)  # DONTNEED leaves dirty pages in memory
    except OSError:
        pass
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        return True
    except OSError:
        return False


def _open_direct(path: Path, buf: mmap.mmap) -> tuple[int | None, str]:
    """An O_DIRECT descriptor that really reads, or ``(None, why not)``."""
    flag = getattr(os, "O_DIRECT", 0)
    if not flag:
        return None, "no O_DIRECT on this platform"
    try:
        fd = os.open(path, os.O_RDONLY | flag)
    except OSError as e:
        return None, f"O_DIRECT open failed: {e.strerror or e}"
    try:
        os.preadv(fd, [memoryview(buf)[:_ALIGN]], 0)  # some filesystems accept the flag, then refuse the read
    except OSError as e:
        os.close(fd)
        return None, f"O_DIRECT read failed: {e.strerror or e}"
    return fd, ""


def read_bandwidth(paths: str | os.PathLike | Iterable[str | os.PathLike], readers: int = 4, block: int = 8 * MiB,
                   drop_cache: bool = True, o_direct: bool = True) -> ReadResult:
    """Read the weight files end to end with ``readers`` parallel threads, ``block`` bytes a read.

    The files are cut into ``block``-sized pieces that the readers take in order, as a
    parallel weight loader does.  With ``drop_cache`` each file is first synced and
    ``posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED)`` drops its cached pages; then, with
    ``o_direct``, the reads use ``O_DIRECT`` (bypassing the page cache altogether) where the
    filesystem supports it, else ordinary reads after the drop.  ``method`` says which, and
    ``cached_fraction`` how much of the files was still resident when the clock started
    (measured with ``mincore``; it should be ~0 for a buffered read to mean anything).
    MBps = bytes / seconds / 10**6.
    """
    files = weight_files(paths)
    if not files:
        raise ValueError(f"no weight files ({', '.join(WEIGHT_SUFFIXES)}) under {paths!r}")
    readers = max(1, int(readers))
    block = max(_ALIGN, int(block))
    block = (block + _ALIGN - 1) // _ALIGN * _ALIGN
    sizes = [f.stat().st_size for f in files]

    fds: list[int] = []
    dropped = []
    direct_ok = drop_cache and o_direct
    why_not_direct = "" if direct_ok else ("drop_cache=False" if not drop_cache else "o_direct=False")
    probe_buf = mmap.mmap(-1, block)
    try:
        for f in files:
            fd = os.open(f, os.O_RDONLY)
            try:
                dropped.append(_drop(fd) if drop_cache else False)
            finally:
                os.close(fd)
        if direct_ok:
            for f in files:
                fd, why = _open_direct(f, probe_buf)
                if fd is None:
                    direct_ok, why_not_direct = False, why
                    break
                fds.append(fd)
            if not direct_ok:
                for fd in fds:
                    os.close(fd)
                fds = []
        if not direct_ok:
            fds = [os.open(f, os.O_RDONLY) for f in files]
        # what the clock starts on: ~0 after a working drop, 1.0 for a file read from the cache
        cached = None
        fractions = [resident_fraction(f) for f in files]
        if all(x is not None for x in fractions) and sum(sizes):
            cached = sum(x * s for x, s in zip(fractions, sizes)) / sum(sizes)  # type: ignore[operator]

        pieces = [(i, off) for i, size in enumerate(sizes) for off in range(0, size, block)]
        lock = threading.Lock()
        nxt = [0]
        done = [0] * readers
        errors: list[BaseException] = []
        start_gate = threading.Barrier(readers + 1)

        def work(k: int) -> None:
            buf = view = None
            try:
                buf = mmap.mmap(-1, block)  # page aligned, as O_DIRECT needs
                view = memoryview(buf)
                start_gate.wait()
                while True:
                    with lock:
                        j = nxt[0]
                        nxt[0] += 1
                    if j >= len(pieces) or errors:
                        return
                    i, off = pieces[j]
                    want = min(block, sizes[i] - off)
                    if direct_ok:
                        # aligned length; the read stops short at the end of the file
                        n = os.preadv(fds[i], [view[: (want + _ALIGN - 1) // _ALIGN * _ALIGN]], off)
                        n = min(n, want)
                    else:
                        n = os.preadv(fds[i], [view[:want]], off)
                    done[k] += n
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(e)
                start_gate.abort()  # nobody waits for a reader that died before the start
            finally:
                try:
                    if view is not None:
                        view.release()
                    if buf is not None:
                        buf.close()
                except BufferError:  # a slice still held by a failed read's traceback: let GC free it
                    pass

        threads = [threading.Thread(target=work, args=(k,), daemon=True) for k in range(readers)]
        for th in threads:
            th.start()
        try:
            start_gate.wait()
        except threading.BrokenBarrierError:
            pass
        t0 = time.perf_counter()
        for th in threads:
            th.join()
        seconds = time.perf_counter() - t0
        if errors:
            raise errors[0]
    finally:
        probe_buf.close()
        for fd in fds:
            os.close(fd)

    total = sum(done)
    seconds = max(seconds, 1e-9)
    fadvised = bool(dropped) and all(dropped)
    if not drop_cache:
        method = "buffered reads, page cache kept (drop_cache=False)"
    elif direct_ok:
        method = "O_DIRECT (page cache bypassed), after posix_fadvise(POSIX_FADV_DONTNEED)" if fadvised else \
            "O_DIRECT (page cache bypassed)"
    elif fadvised:
        method = f"posix_fadvise(POSIX_FADV_DONTNEED) then buffered reads ({why_not_direct})"
        if cached is not None and cached > 0.05:
            method += f"; {cached:.0%} of the pages were still cached after the drop"
    else:
        method = f"buffered reads, page cache NOT dropped (posix_fadvise unavailable; {why_not_direct})"
    return ReadResult(bytes=total, seconds=seconds, MBps=total / seconds / MB,
                      method=method, files=len(files), readers=readers, block=block, o_direct=direct_ok,
                      fadvise=fadvised, cached_fraction=cached)
