"""Open-loop load: does the client keep the schedule, and what does it cost? The engine beside
``vllm bench serve`` (issue 12, item 8)

    python benchmarks/bench_openloop.py                 # ladder 25 .. 800 req/s, both servers (~6 min)
    python benchmarks/bench_openloop.py --quick         # 25, 100, 400 req/s, 2 s each
    python benchmarks/bench_openloop.py --rates 50,100 --seconds 4 --workers 1,2,4 --no-vllm
    python benchmarks/bench_openloop.py --quick --json out.json   # the rows, machine-readable too

Per server, per offered Poisson rate, one run of ``--seconds`` of arrivals for each client: the
engine with 1 process, the engine over N worker processes (``run_open_loop_workers``), and
``vllm bench serve`` from ``.venv-vllm`` at the same rate and request count (``--request-rate R
--num-prompts N --dataset-name random``, the completions endpoint, ``--ignore-eos``; see
``_vllm_bench.py``). Both clients send the same shape of request: a completions stream of
``--tokens`` tokens. Printed per row:

* ``ach/req``: achieved ÷ requested rate — the scheduled span over the span the client took to send
  every request (engine: ``achieved_rps / offered_rps``; vLLM: the same on vLLM's own schedule);
* ``lag p99``: (every percentile here is ``stats.percentile``, interpolated, for both clients
  alike) the client's dispatch lag, scheduled time -> sent (engine: bytes written; vLLM:
  its request function starts, derived from vLLM's schedule, a lower bound), and ``read p99``:
  scheduled time -> the *server* read the request (the server's clock; the same for both
  clients: an upper bound of the lag), and ``stamp p99``: the server wrote the first token -> the
  client stamped it (the receiving side of the TTFT error, the same figure for both clients);
* ``CPU ms/req``: client CPU per request over the measured window (engine: ``process_time`` of
  every worker process; vLLM: its process's CPU from the start of its schedule to its last
  response — interpreter start, imports, tokenizer and prompt sampling excluded; its whole
  rusage is printed under the table);
* ``err p50``/``err p99``: the TTFT the client reports minus the server's true TTFT (its own
  ``CLOCK_MONOTONIC`` stamps, request read -> first token written). The engine's TTFT runs from the
  *scheduled* time (its dispatch lag is in it); vLLM's from its request function's start (its lag
  is not: a late send hides its wait). vLLM keeps no response id: requests are matched to the
  server's records by time (``_vllm_bench.ttft_errors_ms``);
* ``srv+ p50``/``srv+ p99``: the server's own TTFT above the injected TTFT, median and p99: a
  server that no longer holds the rate queues, and its median grows (``held`` = no failures and
  ``srv+ p50`` <= 2 ms; the p99 also moves when other work on the box starves the server for a
  moment, which is not saturation, and the errors are against the server's truth either way);
* ``saturated``: whether the engine run said the client could not keep the schedule.

Two servers, the project's fake in its own process on the same box as the clients: a zero-delay
one (what the client costs) and one with a known 20 ms TTFT. Last, the goals line, over the rows
where the server held: achieved >= 0.98 x requested, p99 lag <= 1 ms, TTFT error <= 1 ms (median
and p99), engine CPU per request <= half of vllm bench serve's. Loopback only.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from pytest_inference.engine import RequestSpec, StreamClient, arrivals  # noqa: E402
from pytest_inference.engine.workers import run_open_loop_workers  # noqa: E402
from pytest_inference.stats import percentile  # noqa: E402
from pytest_inference.testing.fake_openai import FakeOpenAIServer  # noqa: E402

import _vllm_bench  # noqa: E402

SERVERS = {"zero-delay": dict(ttft_ms=0, token_ms=0), "ttft-20ms": dict(ttft_ms=20, token_ms=0)}
#: the server held a rate when its own median TTFT stayed within this of the injected TTFT (ms)
SERVER_SLACK_MS = 2.0
GOAL_SHARE, GOAL_LAG_MS, GOAL_ERR_MS, GOAL_CPU_RATIO = 0.98, 1.0, 1.0, 0.5
PROMPT = " ".join(["hello"] * 16)


@dataclass
class Row:
    server: str
    rate: float
    client: str  # "engine x1", "engine x2", "vllm bench serve"
    n: int
    share: float | None = None  # achieved / requested
    lag_p99_ms: float | None = None  # None: not recorded
    read_p99_ms: float | None = None  # scheduled -> server read, p99
    stamp_p99_ms: float | None = None  # server wrote the first token -> the client stamped it, p99
    cpu_ms: float | None = None
    err_p50_ms: float | None = None
    err_p99_ms: float | None = None
    err_min_ms: float | None = None
    matched: int = 0  # requests with a server record to compare
    failed: int = 0
    srv_excess_p50_ms: float | None = None
    srv_excess_p99_ms: float | None = None
    saturated: str | None = None  # the engine's own line; None: kept the schedule
    runq_ms: float | None = None
    foreign_cores: float | None = None
    note: str | None = None
    cpu_startup_s: float | None = None  # vLLM only
    cpu_total_s: float | None = None  # vLLM only

    @property
    def server_held(self) -> bool:
        return self.failed == 0 and self.srv_excess_p50_ms is not None and self.srv_excess_p50_ms <= SERVER_SLACK_MS


def _p(xs: list[float], q: float) -> float | None:
    return percentile(xs, q) if xs else None


def _server_excess(pairs: list[dict], injected: float) -> dict[str, float | None]:
    xs = [t["ttft_ms"] - injected for t in pairs]
    return {"srv_excess_p50_ms": _p(xs, 50), "srv_excess_p99_ms": _p(xs, 99)}


def engine_row(server: FakeOpenAIServer, name: str, rate: float, offs: list[float], workers: int,
               tokens: int) -> Row:
    specs = [RequestSpec(model="fake-model", prompt=PROMPT, max_tokens=tokens, api="completions")] * len(offs)
    conns = max(4, min(64, int(rate * 0.1) + 4))
    server.reset()
    if workers == 1:
        with StreamClient(server.base_url) as c:
            run = c.run_open_loop(specs, offs, connections=conns, warmup=4)
    else:
        run = run_open_loop_workers(server.base_url, specs, offs, workers=workers,
                                    connections=max(2, conns // workers), warmup=2)
    truth = server.truth()
    ok = [r for r in run.results if r.ok and r.response_id in truth and truth[r.response_id]["ttft_ms"] is not None]
    errs = [r.ttft_ms - truth[r.response_id]["ttft_ms"] for r in ok]
    reads = [(truth[r.response_id]["recv_ns"] - r.scheduled_ns) / 1e6 for r in ok]
    stamps = [(r.scheduled_ns + r.ttft_ms * 1e6 - truth[r.response_id]["first_token_ns"]) / 1e6 for r in ok]
    n = len(run.results)
    return Row(server=name, rate=rate, client=f"engine x{workers}", n=n,
               share=(run.achieved_rps / run.offered_rps) if run.offered_rps and run.achieved_rps is not None else None,
               lag_p99_ms=_p(run.dispatch_lag_ms(), 99), read_p99_ms=_p(reads, 99), stamp_p99_ms=_p(stamps, 99),
               cpu_ms=run.client_cpu_s / n * 1e3,
               err_p50_ms=_p(errs, 50), err_p99_ms=_p(errs, 99), err_min_ms=min(errs) if errs else None,
               matched=len(ok), failed=len(run.failed),
               **_server_excess([truth[r.response_id] for r in ok], SERVERS[name]["ttft_ms"]),
               saturated=run.client_saturated, runq_ms=run.client_runq_ms,
               foreign_cores=(run.cpu_pressure or {}).get("foreign_cores"))


def vllm_row(server: FakeOpenAIServer, name: str, rate: float, n: int, tokens: int, seed: int) -> Row:
    server.reset()
    run = _vllm_bench.run_bench_serve(server.base_url, num_prompts=n, rate=rate, output_len=tokens, seed=seed,
                                      warmups=4, timeout_s=180 + n / rate)
    errs, pairs = _vllm_bench.ttft_errors_ms(run, server.truth())
    lags = run.lag_ms
    reads = _vllm_bench.server_read_lag_ms(run.sched_ns, pairs)
    stamps = [(run.start_ns[i] + run.ttft_ms[i] * 1e6 - t["first_token_ns"]) / 1e6  # type: ignore[operator]
              for i, t in pairs]
    return Row(server=name, rate=rate, client="vllm bench serve", n=n, share=run.achieved_share,
               lag_p99_ms=_p(lags, 99) if lags else None, read_p99_ms=_p(reads, 99) if reads else None,
               stamp_p99_ms=_p(stamps, 99),
               cpu_ms=run.cpu_ms_per_request, err_p50_ms=_p(errs, 50), err_p99_ms=_p(errs, 99),
               err_min_ms=min(errs) if errs else None, matched=len(errs), failed=run.failed + (n - len(run.start_ns)),
               **_server_excess([t for _, t in pairs], SERVERS[name]["ttft_ms"]),
               note=run.note, cpu_startup_s=run.cpu_startup_s, cpu_total_s=run.cpu_total_s)


def fmt(x: float | None, width: int, spec: str = ".3f") -> str:
    return format(x, f">{width}{spec}") if x is not None else format("-", f">{width}")


def print_row(r: Row) -> None:
    vllm = r.client.startswith("vllm")
    sat = "n/a" if vllm else ("yes" if r.saturated else "no")
    lag = format("n/rec", ">8") if vllm and r.lag_p99_ms is None else fmt(r.lag_p99_ms, 8)
    print(f"{r.server:<10} {r.rate:>6g} {r.client:<16} {r.n:>5} {fmt(r.share, 8, '.4f')} {lag} "
          f"{fmt(r.read_p99_ms, 8)} {fmt(r.stamp_p99_ms, 9)} {fmt(r.cpu_ms, 10)} "
          f"{fmt(r.err_p50_ms, 8)} {fmt(r.err_p99_ms, 8)} "
          f"{r.failed:>5} {fmt(r.srv_excess_p50_ms, 8)} {fmt(r.srv_excess_p99_ms, 8)} "
          f"{'yes' if r.server_held else 'NO':>5}  {sat}", flush=True)


def goals(rows: list[Row], vllm_missing: str | None) -> list[str]:
    """One line per goal over the rates the server held in every client's run: met, MISSED (which
    rows), inconclusive or not measured. The timing goals (achieved share, lag, TTFT error) of a row
    whose run saw other processes use >= ``FOREIGN_CORES`` of the box (the project's host-load rule,
    :mod:`pytest_inference.engine.hostload`) are inconclusive, not missed: a starved client is not
    the client's cost. CPU per request is judged on every row."""
    from pytest_inference.engine.hostload import FOREIGN_CORES

    held: dict[tuple[str, float], bool] = {}
    for r in rows:
        held[(r.server, r.rate)] = held.get((r.server, r.rate), True) and r.server_held
    eng = [r for r in rows if r.client.startswith("engine") and held[(r.server, r.rate)]]
    vl = {(r.server, r.rate): r for r in rows if r.client.startswith("vllm")}
    skipped = sorted({f"{s} {g:g}/s" for (s, g), ok in held.items() if not ok})
    out = [f"rates the server held (in every client's run): {len(eng)} engine rows"
           + (f"; not held, left out: {', '.join(skipped)}" if skipped else "")]
    if not eng:
        return out + ["goals: not measured (no rate the server held)"]
    tag = lambda r: f"{r.server} {r.rate:g}/s {r.client}"  # noqa: E731
    loaded = {id(r) for r in eng if r.foreign_cores is None or r.foreign_cores >= FOREIGN_CORES}

    def line(what: str, value, bad, timing: bool = True) -> str:  # type: ignore[no-untyped-def]
        missed, unsure, unknown, met = [], [], [], 0
        for r in eng:
            v = value(r)
            if v is None:
                unknown.append(tag(r))
            elif timing and id(r) in loaded:
                unsure.append(f"{tag(r)} ({v}, {'?' if r.foreign_cores is None else f'{r.foreign_cores:.2f}'} "
                              "cores foreign)" if bad(r) else None)
            elif bad(r):
                missed.append(f"{tag(r)} ({v})")
            else:
                met += 1
        unsure_missed = [u for u in unsure if u]
        parts = [f"met at {met} of {len(eng)} rows"]
        if missed:
            parts.insert(0, f"MISSED at {len(missed)}: {'; '.join(missed)}")
        if unsure:
            parts.append(f"inconclusive at {len(unsure)} (other processes used >= {FOREIGN_CORES:g} cores"
                         + (f"; missed there: {'; '.join(unsure_missed)}" if unsure_missed else "") + ")")
        if unknown:
            parts.append(f"not measured at {len(unknown)}: {'; '.join(unknown)}")
        return f"{what}: " + ", ".join(parts)

    out.append(line(f"achieved >= {GOAL_SHARE} x requested",
                    lambda r: None if r.share is None else f"{r.share:.4f}", lambda r: r.share < GOAL_SHARE))
    out.append(line(f"p99 dispatch lag <= {GOAL_LAG_MS:g} ms",
                    lambda r: None if r.lag_p99_ms is None else f"{r.lag_p99_ms:.3f} ms",
                    lambda r: r.lag_p99_ms > GOAL_LAG_MS))
    out.append(line(f"TTFT error <= {GOAL_ERR_MS:g} ms (median and p99)",
                    lambda r: None if r.err_p99_ms is None or r.err_p50_ms is None
                    else f"{r.err_p50_ms:.3f} / {r.err_p99_ms:.3f} ms",
                    lambda r: max(abs(r.err_p50_ms), r.err_p99_ms) > GOAL_ERR_MS))

    def vcpu(r: Row) -> float | None:
        v = vl.get((r.server, r.rate))
        return v.cpu_ms if v is not None else None

    if vllm_missing:
        out.append(f"engine CPU/request <= {GOAL_CPU_RATIO:g} x vllm bench serve's: not measured "
                   "(no vllm bench serve figures)")
    else:
        out.append(line(f"engine CPU/request <= {GOAL_CPU_RATIO:g} x vllm bench serve's",
                        lambda r: None if r.cpu_ms is None or vcpu(r) is None
                        else f"{r.cpu_ms:.3f} vs {vcpu(r):.3f} ms, x{r.cpu_ms / vcpu(r):.2f}",  # type: ignore[operator]
                        lambda r: r.cpu_ms > GOAL_CPU_RATIO * vcpu(r), timing=False))  # type: ignore[operator]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="ladder 25, 100, 400 req/s, 2 s each")
    ap.add_argument("--rates", default=None, help="comma-separated requested rates (req/s)")
    ap.add_argument("--seconds", type=float, default=None, help="arrivals per row (default 5, quick 2)")
    ap.add_argument("--workers", default="1,2", help="engine process counts (default 1,2)")
    ap.add_argument("--tokens", type=int, default=32, help="streamed tokens per request")
    ap.add_argument("--servers", default=",".join(SERVERS), help=f"of {', '.join(SERVERS)}")
    ap.add_argument("--no-vllm", action="store_true", help="leave vllm bench serve out")
    ap.add_argument("--json", default=None, help="also write the rows and the goals here")
    args = ap.parse_args(argv)
    try:
        rates = [float(x) for x in args.rates.split(",")] if args.rates else (
            [25, 100, 400] if args.quick else [25, 50, 100, 200, 400, 800])
        workers = [int(x) for x in args.workers.split(",")]
        servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    except ValueError as e:
        ap.error(f"bad number: {e}")
    seconds = args.seconds or (2.0 if args.quick else 5.0)
    if any(not (r > 0) for r in rates) or not (seconds > 0) or any(w < 1 for w in workers) or args.tokens < 1:
        ap.error("rates, --seconds, --workers and --tokens must be > 0")
    if not servers or any(s not in SERVERS for s in servers):
        ap.error(f"--servers takes {', '.join(SERVERS)}, not {args.servers!r}")
    vllm_missing = "left out (--no-vllm)" if args.no_vllm else _vllm_bench.missing()

    print(f"machine: {os.cpu_count()} CPUs, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
          f"Poisson arrivals, {seconds:g} s per row, {args.tokens}-token completions streams", flush=True)
    if vllm_missing:
        print(f"vllm bench serve: not run: {vllm_missing}", flush=True)
    hdr = (f"{'server':<10} {'rate':>6} {'client':<16} {'n':>5} {'ach/req':>8} {'lag p99':>8} {'read p99':>8} "
           f"{'stamp p99':>9} {'CPU ms/req':>10} {'err p50':>8} {'err p99':>8} {'fail':>5} {'srv+ p50':>8} "
           f"{'srv+ p99':>8} "
           f"{'held':>5}  saturated")
    rows: list[Row] = []
    t_start = time.monotonic()
    for name in servers:
        with FakeOpenAIServer(**SERVERS[name]) as s:
            print(hdr, flush=True)
            for rate in rates:
                offs = arrivals.poisson(rate, duration_s=seconds, seed=int(rate))
                for w in workers:
                    rows.append(engine_row(s, name, rate, offs, w, args.tokens))
                    print_row(rows[-1])
                if not vllm_missing:
                    try:
                        rows.append(vllm_row(s, name, rate, len(offs), args.tokens, seed=int(rate)))
                        print_row(rows[-1])
                    except (RuntimeError, ValueError) as e:
                        print(f"{name:<10} {rate:>6g} vllm bench serve: {e}", flush=True)
    print("lag: scheduled -> sent (engine: bytes written; vllm: request function start, derived; n/rec: not "
          "recorded); read: scheduled -> the server read it;\nstamp: server wrote the first token -> the client "
          "stamped it; err: reported TTFT - the server's true TTFT; "
          f"srv+: the server's own TTFT above the injected; held: no failures and srv+ p50 <= {SERVER_SLACK_MS:g} ms")
    sat = [r for r in rows if r.saturated]
    for r in sat:
        print(f"saturated: {r.server} {r.rate:g}/s {r.client}: {r.saturated}")
    for r in rows:
        if r.note:
            print(f"note: {r.server} {r.rate:g}/s {r.client}: {r.note}")
    vr = [r for r in rows if r.cpu_total_s is not None]
    if vr:
        print("vllm bench serve whole-process CPU (rusage, s): "
              + ", ".join(f"{r.server} {r.rate:g}/s {r.cpu_total_s:.2f} (before the window {r.cpu_startup_s:.2f})"
                          for r in vr if r.cpu_startup_s is not None))
    eng = [r for r in rows if r.foreign_cores is not None]
    print(f"host: load average now {' '.join(f'{x:.2f}' for x in os.getloadavg())}; other processes used "
          f"{min((r.foreign_cores for r in eng), default=float('nan')):.2f} .. "
          f"{max((r.foreign_cores for r in eng), default=float('nan')):.2f} cores during the engine runs; "
          f"{time.monotonic() - t_start:.0f} s in all")
    lines = goals(rows, vllm_missing)
    for ln in lines:
        print("goals: " + ln if not ln.startswith("goals") else ln)
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": [asdict(r) | {"server_held": r.server_held} for r in rows],
                                               "vllm_missing": vllm_missing, "goals": lines}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
