"""Cold start: launch → first token, its phases, and the storage floor under it.

Pure helpers (no server needed):

- :class:`ColdStartRun` — one cold start: milestones in seconds since launch (port open,
  ``/health`` 200, first streamed token), the phases parsed from the server log
  (:mod:`.vllm_log`), the cache state and the time spent waiting for a lock before the
  launch (not part of the cold start).  ``timeline_rows()`` feeds the chart.
- :func:`floor_s` — the least time the weights can take to come off storage at a measured
  bandwidth; :func:`floor_ratio` — cold start ÷ floor; :func:`spread_s` over several runs.
- :func:`timeline_chart_png`, :func:`timeline_json`.

One probe: :func:`read_bandwidth` reads the model's weight files with several parallel
readers, excluding the page cache.  MB here is 10**6 bytes, MiB 2**20.
"""

from __future__ import annotations

import json
import math
import mmap
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from .vllm_log import HIERARCHY, Phase, StartupLog, parse_log, top_level, total_covered_s, tree_order

MB = 1_000_000
MiB = 1 << 20
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".gguf")
CACHE_STATES = ("fresh", "warm")
#: O_DIRECT needs buffers, offsets and lengths aligned to the logical block size; 4 KiB covers 512 B and 4 KiB
_ALIGN = 4096

MILESTONES = (("port_open_s", "launch → port open"), ("health_s", "launch → /health 200"),
              ("first_token_s", "launch → first token"))


def _opt_float(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


# --------------------------------------------------------------------------- one run


@dataclass
class ColdStartRun:
    """One cold start.  Times are seconds since the launch on a monotonic clock.

    ``launched_at`` is the wall-clock time of the launch (epoch seconds or an ISO string),
    for the report only; it is never used for arithmetic.  ``lock_wait_s`` is time spent
    waiting for a lock *before* the launch (a shared GPU, a port): excluded from every figure.
    """

    launched_at: float | str | None = None
    port_open_s: float | None = None
    health_s: float | None = None
    first_token_s: float | None = None
    phases: list[Phase] = field(default_factory=list)
    cache_state: str = "fresh"
    lock_wait_s: float = 0.0
    facts: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.cache_state not in CACHE_STATES:
            raise ValueError(f"cache_state must be one of {CACHE_STATES}, not {self.cache_state!r}")

    @classmethod
    def from_log(cls, log: Any, **kwargs: Any) -> "ColdStartRun":
        """Parse ``log`` (``(t_s, line)`` pairs or a whole text) into ``phases`` and ``facts``."""
        parsed = log if isinstance(log, StartupLog) else parse_log(log)
        facts = dict(parsed.facts)
        facts["log_clock"] = parsed.clock
        facts.update(kwargs.pop("facts", {}) or {})
        return cls(phases=list(parsed.phases), facts=facts, **kwargs)

    @property
    def total_s(self) -> float | None:
        """Launch → first token: the cold start."""
        return _opt_float(self.first_token_s)

    @property
    def covered_s(self) -> float:
        """Seconds the log's top-level phases cover (union, never a sum)."""
        return total_covered_s(self.phases)

    @property
    def uncovered_s(self) -> float | None:
        """Cold start the log's phases do not explain (process start, imports, …)."""
        total = self.total_s
        return None if total is None else max(0.0, total - self.covered_s)

    def phase(self, name: str) -> Phase | None:
        return next((p for p in self.phases if p.name == name), None)

    def timeline_rows(self) -> list[tuple[str, float, float]]:
        """``(label, start_s, end_s)`` rows for :func:`charts.timeline_png`.

        The timed phases depth first, nested ones marked ``└ `` (``└── `` one level deeper) under their parent, then the
        milestones as bars from the launch (0) to the moment they were reached.
        """
        rows: list[tuple[str, float, float]] = []
        for phase, depth in _with_depth(self.phases):
            if phase.start_s is None or phase.end_s is None or phase.end_s < phase.start_s:
                continue
            # labels are right-aligned on the chart: depth shows as a longer branch, "└── " under "└ "
            label = ("└" + "──" * (depth - 1) + " " if depth else "") + phase.name
            rows.append((label, float(phase.start_s), float(phase.end_s)))
        for attr, label in MILESTONES:
            t = _opt_float(getattr(self, attr))
            if t is not None and t >= 0:
                rows.append((label, 0.0, t))
        return rows

    def to_dict(self) -> dict[str, Any]:
        launched = self.launched_at
        out: dict[str, Any] = {
            "launched_at": launched,
            "port_open_s": _opt_float(self.port_open_s),
            "health_s": _opt_float(self.health_s),
            "first_token_s": _opt_float(self.first_token_s),
            "total_s": self.total_s,
            "cache_state": self.cache_state,
            "lock_wait_s": _opt_float(self.lock_wait_s),
            "covered_s": self.covered_s,
            "uncovered_s": self.uncovered_s,
            "phases": [p.to_dict() for p in self.phases],
            "top_level": [p.name for p in top_level(self.phases)],
            "facts": dict(self.facts),
        }
        if isinstance(launched, (int, float)) and not isinstance(launched, bool) and math.isfinite(launched):
            out["launched_at_iso"] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(launched)) + "Z"
        return out


def _with_depth(phases: Sequence[Phase]) -> list[tuple[Phase, int]]:
    present = {p.name for p in phases}
    out = []
    for p in tree_order(phases):
        depth, name, seen = 0, p.parent, set()
        while name and name in present and name not in seen:
            seen.add(name)
            depth += 1
            name = next((a for a in HIERARCHY.get(name, ()) if a in present), None)
        out.append((p, depth))
    return out


# --------------------------------------------------------------------------- pure math


def floor_s(weight_bytes: float, MBps: float) -> float:
    """Seconds to read ``weight_bytes`` at ``MBps`` (MB = 10**6 bytes): the storage floor."""
    b, rate = float(weight_bytes), float(MBps)
    if not math.isfinite(b) or b < 0:
        raise ValueError(f"weight_bytes must be finite and >= 0, not {weight_bytes!r}")
    if not math.isfinite(rate) or rate <= 0:
        raise ValueError(f"MBps must be finite and > 0, not {MBps!r}")
    return b / (rate * MB)


def floor_ratio(cold_start_s: float, floor: float) -> float | None:
    """Cold start ÷ storage floor (1.0 = the cold start is all storage); ``None`` without a floor."""
    c, f = _opt_float(cold_start_s), _opt_float(floor)
    if c is None or f is None or f <= 0 or c < 0:
        return None
    return c / f


def spread_s(runs: Iterable[ColdStartRun | float | None]) -> float | None:
    """max − min of the runs' cold starts (``first_token_s``, or plain numbers).

    Runs without a first token are left out; ``None`` when fewer than two remain.
    """
    values = []
    for r in runs:
        v = _opt_float(r.total_s if isinstance(r, ColdStartRun) else r)
        if v is not None:
            values.append(v)
    return max(values) - min(values) if len(values) >= 2 else None


# --------------------------------------------------------------------------- report


def timeline_chart_png(run: ColdStartRun, title: str | None = None) -> bytes | None:
    """The run's timeline as a PNG (``None`` with nothing to draw)."""
    from ..report import charts

    if title is None:
        total = run.total_s
        title = f"Cold start ({run.cache_state})" + (f": {total:.1f} s to first token" if total is not None else "")
    return charts.timeline_png(run.timeline_rows(), title)


def timeline_json(run: ColdStartRun) -> str:
    """The timeline as JSON: the chart's rows (phase or milestone, depth, parent) and the run."""
    rows = []
    for phase, depth in _with_depth(run.phases):
        rows.append({"kind": "phase", "name": phase.name, "start_s": phase.start_s, "end_s": phase.end_s,
                     "duration_s": phase.duration_s, "parent": phase.parent, "depth": depth,
                     "method": phase.method})
    for attr, label in MILESTONES:
        t = _opt_float(getattr(run, attr))
        if t is not None:
            rows.append({"kind": "milestone", "name": label, "start_s": 0.0, "end_s": t, "duration_s": t,
                         "parent": None, "depth": 0, "method": "harness"})
    return json.dumps({"rows": rows, "run": run.to_dict()}, indent=1, default=str, allow_nan=False)


# --------------------------------------------------------------------------- the bandwidth probe


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
