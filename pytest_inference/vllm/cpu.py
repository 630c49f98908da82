"""vLLM on the CPU: put the EngineCore on its Worker's CPUs and the API server on the rest.

vLLM's CPU worker binds itself to some CPUs (on 2 cores: cpu 0, ``reserved_cpus=[1]``) and leaves
the API server and the EngineCore free to share the rest. On a 2-core machine the EngineCore's
wait loop then starves the API server for the whole decode: the client gets every token at once,
at the end (client TTFT ~45-50 ms against the server's own ~5 ms). Pinning the EngineCore to the
worker's CPUs and every other process of the server's group (the API server) to the others removes
that (client TTFT within ~1 ms of the server's; TPOT ~25 % higher).

``mode``: ``"auto"`` pins on machines with at most :data:`AUTO_MAX_CPUS` CPUs; true values
(``True``, ``"1"``, ``"true"``, ``"yes"``, ``"on"``) always; anything else never.

    python -m pytest_inference.vllm.cpu --pin PGID [--mode auto|1|0]

pins a running group (``scripts/start-vllm-cpu.sh`` does, after ``/health``) and prints what it did.
Stdlib only.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Sequence

#: process names (``comm``, 15 characters) vLLM gives its engine-core and worker processes
ENGINE_CORE_COMM = "VLLM::EngineCor"
WORKER_COMM = "VLLM::Worker"
#: "auto" pins on machines with at most this many CPUs
AUTO_MAX_CPUS = 4

Member = tuple[int, str, str]  # (pid, state, comm), as supervise.group_members returns


def cpu_count() -> int:
    return os.cpu_count() or 1


def pin_wanted(mode: bool | str) -> bool:
    """Whether ``mode`` asks for pinning on this machine."""
    if isinstance(mode, str):
        m = mode.strip().lower()
        if m == "auto":
            return cpu_count() <= AUTO_MAX_CPUS
        return m in ("1", "true", "yes", "on")
    return bool(mode)


def split(members: Sequence[Member]) -> tuple[int | None, int | None, list[int]]:
    """(EngineCore pid, Worker pid, the other pids: the API server and its helpers) of a group."""
    ec = next((p for p, _, c in members if c.startswith(ENGINE_CORE_COMM)), None)
    w = next((p for p, _, c in members if c.startswith(WORKER_COMM)), None)
    return ec, w, [p for p, _, _ in members if p not in (ec, w)]


def _set_all_threads(pid: int, cpus: set[int]) -> int:
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0
    n = 0
    for tid in tids:
        try:
            os.sched_setaffinity(int(tid), cpus)
            n += 1
        except OSError:
            pass
    return n


def pin_group(pgid: int, members: Sequence[Member]) -> dict[str, Any]:
    """Put the EngineCore (every thread) on its Worker's CPUs and every other member of the group on
    the remaining CPUs. Best effort; returns what was done (``done``, and ``reason`` when not)."""
    ec, w, api = split(members)
    if ec is None or w is None:
        return {"done": False, "reason": "no separate EngineCore and Worker processes"}
    try:
        wcpus = os.sched_getaffinity(w)
        rest = os.sched_getaffinity(pgid) - wcpus
    except OSError as e:
        return {"done": False, "reason": f"cannot read CPU affinity: {e}"}
    if not rest:
        return {"done": False, "reason": "the worker may run on every CPU"}
    threads = _set_all_threads(ec, wcpus)
    for p in api:
        threads += _set_all_threads(p, rest)
    return {"done": True, "engine_core_pid": ec, "worker_pid": w, "engine_cpus": sorted(wcpus),
            "api_server_pids": api, "api_cpus": sorted(rest), "threads": threads}


def pin(pgid: int, members: Sequence[Member], mode: bool | str = "auto") -> dict[str, Any]:
    """:func:`pin_group` when ``mode`` wants it here, else why not."""
    if not pin_wanted(mode):
        return {"done": False, "reason": f"pin_cpus={mode!r} on {cpu_count()} CPUs"}
    return pin_group(pgid, members)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pytest_inference.vllm.cpu", description=__doc__.split("\n\n")[0])
    ap.add_argument("--pin", type=int, required=True, metavar="PGID", help="process group of a running vLLM server")
    ap.add_argument("--mode", default="auto", help="auto (default: on <= 4 CPUs) | 1 | 0")
    ap.add_argument("--json", action="store_true", help="print the result as JSON")
    a = ap.parse_args(argv)
    from ..supervise import group_members

    result = pin(a.pin, group_members(a.pin), a.mode)
    if a.json:
        print(json.dumps(result))
    elif result["done"]:
        print(f"pinned EngineCore {result['engine_core_pid']} to cpus {result['engine_cpus']} with the worker, "
              f"API server to cpus {result['api_cpus']} (PYTEST_INFERENCE_VLLM_PIN=0 disables)")
    else:
        print(f"pinning skipped: {result['reason']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
