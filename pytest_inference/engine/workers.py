"""One open-loop schedule driven by several worker processes (when one process cannot keep it).

    run = run_open_loop_workers("http://127.0.0.1:8000/v1", specs, arrivals.poisson(400, n=4000),
                                workers=2)
    run.workers, run.client_saturated, run.ttft_ms()

The schedule is split round-robin (request ``i`` goes to worker ``i % N``); each worker is its own
Python process (``python -m pytest_inference.engine.workers``) with its own
:class:`~.client.StreamClient`. The barrier: every worker opens its connections (and sends its
warm-up) first and says it is ready; then the caller picks one start time,
``time.perf_counter_ns()`` a little ahead (CLOCK_MONOTONIC: the same clock in every process of the
machine), and gives it to all. Each sends its share at ``start + offset``; the caller merges the
results back into submission order (``index``; ``worker`` says which process sent it) and computes
the run's figures over the merged requests (:func:`.openloop.summarize`). ``workers`` on the result
says how many processes ran.

Workers die with the caller: each watches its parent (pidfd / getppid, :class:`..supervise.ParentWatch`)
and exits within ~0.25 s of its death; the caller kills them on any error or overrun.
"""

from __future__ import annotations

import os
import pickle
import select
import struct
import subprocess
import sys
import threading
import time
from time import perf_counter_ns
from typing import Any, Sequence

from ..supervise import kill_and_reap
from .errors import EndpointError
from .results import RequestSpec

__all__ = ["run_open_loop_workers", "MAX_WORKERS"]

MAX_WORKERS = 64
#: the common start is this long after the last worker said ready (the start time has to reach
#: every worker, each blocked in a read, before it comes)
START_LEAD_S = 0.05
_HDR = struct.Struct("!Q")


def _write_msg(f: Any, obj: Any) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    f.write(_HDR.pack(len(data)) + data)
    f.flush()


def _read_exact(fd: int, n: int, deadline: float) -> bytes:
    out = bytearray()
    while len(out) < n:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise TimeoutError
        chunk = os.read(fd, min(n - len(out), 1 << 20))
        if not chunk:
            raise EOFError
        out += chunk
    return bytes(out)


def _read_msg(fd: int, deadline: float) -> Any:
    (n,) = _HDR.unpack(_read_exact(fd, _HDR.size, deadline))
    return pickle.loads(_read_exact(fd, n, deadline))


def _error(worker: int, kind: str, msg: str) -> Exception:
    from . import errors

    cls = getattr(errors, kind, None)
    text = f"open-loop worker {worker}: {msg}"
    if isinstance(cls, type) and issubclass(cls, EndpointError):
        try:
            return cls(text)
        except TypeError:
            return EndpointError(text)
    return RuntimeError(text)


def run_open_loop_workers(base_url: str, specs: Sequence[RequestSpec], offsets: Sequence[float], *,
                          workers: int = 2, api_key: str | None = None, timeout_s: float = 60.0,
                          verify: bool | str = True, deadline_s: float | None = None,
                          connections: int | None = None, warmup: int = 0, max_lag_ms: float | None = None,
                          max_connections: int | None = None, ready_timeout_s: float = 30.0,
                          stop_early: bool = True):
    """Run one open-loop schedule over ``workers`` processes; returns an
    :class:`~.openloop.OpenLoopResult` of every request once, in submission order.

    ``stop_early`` as :class:`~.client.StreamClient`'s (False under load: a run of timeouts is
    misses, not a dead endpoint). ``connections`` and ``max_connections`` are per worker (default: its share, at most 64, and no
    cap: see :meth:`~.client.StreamClient.run_open_loop`); ``warmup`` per worker (closed
    loop, before the barrier). The run is bounded: the schedule's span, plus ``deadline_s`` (or
    ``timeout_s``) for the last responses, plus ``ready_timeout_s``; a worker past that is killed
    and the run raises. A worker's fatal error (endpoint unreachable, auth, ...) is raised here as
    one line naming the worker.
    """
    from .client import check_schedule
    from .hostload import CpuPressure
    from .openloop import OpenLoopResult, summarize, with_contention

    if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= MAX_WORKERS:
        raise ValueError(f"workers must be an integer in [1, {MAX_WORKERS}], not {workers!r}")
    specs = list(specs)
    offs, lag_bound = check_schedule(specs, offsets, max_lag_ms)
    n_workers = min(workers, len(specs))
    env = dict(os.environ)
    pkg_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = pkg_root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for k in range(n_workers):
            p = subprocess.Popen([sys.executable, "-m", "pytest_inference.engine.workers", "--parent-pid",
                                  str(os.getpid())], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL, env=env)
            procs.append(p)
            share = list(range(k, len(specs), n_workers))
            _write_msg(p.stdin, {
                "worker": k, "base_url": base_url, "api_key": api_key, "timeout_s": timeout_s, "verify": verify,
                "specs": [specs[i] for i in share], "offsets": [offs[i] for i in share],
                "deadline_s": deadline_s, "connections": connections, "warmup": warmup, "max_lag_ms": lag_bound,
                "max_connections": max_connections, "stop_early": stop_early,
            })
        ready_by = time.monotonic() + ready_timeout_s
        for k, p in enumerate(procs):
            msg = _read_or_raise(p, k, ready_by, "to get ready")
            if msg.get("error"):
                raise _error(k, msg["kind"], msg["error"])
        load0 = os.getloadavg()[0]
        psi = CpuPressure()
        start_ns = perf_counter_ns() + int(START_LEAD_S * 1e9)
        for p in procs:
            _write_msg(p.stdin, {"start_ns": start_ns})
        tail = deadline_s if deadline_s is not None else timeout_s
        done_by = time.monotonic() + START_LEAD_S + offs[-1] + tail + ready_timeout_s
        parts = []
        for k, p in enumerate(procs):
            msg = _read_or_raise(p, k, done_by, "to finish its share")
            if msg.get("error"):
                raise _error(k, msg["kind"], msg["error"])
            parts.append(msg["run"])
        pressure = psi.window()
    finally:
        for p in procs:
            kill_and_reap(p)
    merged: list[Any] = [None] * len(specs)
    warm: list[Any] = []
    for k, run in enumerate(parts):
        for j, r in enumerate(run.results):
            r.index = k + j * n_workers
            r.worker = k
            merged[r.index] = r
        for r in run.warmup_results:
            r.worker = k
            warm.append(r)
    runqs = [run.client_runq_ms for run in parts]
    figures = summarize(merged, max_lag_ms=lag_bound)
    figures["client_saturated"] = with_contention(figures["client_saturated"],
                                                  None if None in runqs else sum(runqs), pressure)  # type: ignore[arg-type]
    return OpenLoopResult(
        results=merged, warmup_results=warm, wall_s=max(run.wall_s for run in parts),
        concurrency=sum(run.concurrency for run in parts),
        connections_opened=sum(run.connections_opened for run in parts),
        client_cpu_s=sum(run.client_cpu_s for run in parts), loadavg_before=load0,
        loadavg_after=os.getloadavg()[0], client_runq_ms=None if None in runqs else sum(runqs),  # type: ignore[arg-type]
        cpu_pressure=pressure, max_lag_ms=lag_bound, workers=n_workers, start_ns=start_ns,
        **figures)


def _read_or_raise(p: subprocess.Popen[bytes], k: int, deadline: float, what: str) -> dict[str, Any]:
    try:
        return _read_msg(p.stdout.fileno(), deadline)  # type: ignore[union-attr]
    except TimeoutError:
        raise RuntimeError(f"open-loop worker {k} took too long {what}: killed") from None
    except (EOFError, pickle.UnpicklingError, struct.error):
        rc = p.poll()
        raise RuntimeError(f"open-loop worker {k} exited before it was done {what}"
                           f"{f' (exit status {rc})' if rc is not None else ''}") from None


# ------------------------------------------------------------------------------- the worker side


def _watch_parent(parent: int) -> None:
    from ..supervise import ParentWatch

    watch = ParentWatch(parent)

    def wait() -> None:
        if watch.wait() == "gone":
            os._exit(3)

    threading.Thread(target=wait, name="parent-watch", daemon=True).start()


def _worker(parent: int) -> int:
    _watch_parent(parent)
    fin = sys.stdin.buffer.fileno()
    out = sys.stdout.buffer
    forever = time.monotonic() + 10 * 365 * 86400
    job = _read_msg(fin, forever)
    from .client import StreamClient

    def fail(e: BaseException) -> int:
        _write_msg(out, {"error": str(e) or type(e).__name__, "kind": type(e).__name__})
        return 1

    try:
        client = StreamClient(job["base_url"], api_key=job["api_key"], timeout_s=job["timeout_s"],
                              verify=job["verify"], stop_early=job.get("stop_early", True))
        specs, offs = job["specs"], job["offsets"]
        n_conn = job["connections"] or min(len(specs), 64)
        warm = []
        if job["warmup"]:
            warm = client.run([specs[i % len(specs)] for i in range(job["warmup"])], concurrency=n_conn, warmup=0,
                              deadline_s=job["deadline_s"]).results
            for r in warm:
                r.warmup = True
        client.open_connections(n_conn)
    except Exception as e:  # noqa: BLE001 - reported to the caller as one line
        return fail(e)
    _write_msg(out, {"ready": True})
    start = _read_msg(fin, forever)["start_ns"]
    try:
        run = client.run_open_loop(specs, offs, deadline_s=job["deadline_s"], connections=n_conn, warmup=0,
                                   start_ns=start, max_lag_ms=job["max_lag_ms"],
                                   max_connections=job["max_connections"])
    except Exception as e:  # noqa: BLE001
        return fail(e)
    finally:
        client.close()
    for r in run.results:
        r.worker = job["worker"]
    run.warmup_results = warm
    _write_msg(out, {"run": run})
    return 0


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m pytest_inference.engine.workers",
                                 description="an open-loop worker process (driven by run_open_loop_workers)")
    ap.add_argument("--parent-pid", type=int, required=True)
    args = ap.parse_args(argv)
    try:
        return _worker(args.parent_pid)
    except (EOFError, TimeoutError, BrokenPipeError, KeyboardInterrupt):
        return 2


if __name__ == "__main__":
    sys.exit(main())
