"""Open-loop load: does the engine keep the schedule? (issue 12, item 8, the engine's half)

    python benchmarks/bench_openloop.py                 # ladder 25 .. 800 req/s, 1 and 2 workers
    python benchmarks/bench_openloop.py --quick
    python benchmarks/bench_openloop.py --rates 50,100 --seconds 4 --workers 1,2,4

Per server, per offered Poisson rate, per number of engine worker processes, one run of
``--seconds`` of arrivals; prints achieved ÷ offered rate, p99 dispatch lag (scheduled time →
bytes written), the client's CPU per request (process time of every worker; the caller's own for
1 worker), and the TTFT error against the fake server's own ground truth (measured TTFT from the
*scheduled* time − the server's request-read → first-token-written; so it includes the dispatch
lag), median and p99, and whether the run says the client was saturated. Two servers: a
zero-delay one (what the client costs) and one with a known 20 ms TTFT. Both are the project's
fake server in their own process, on the same 2-core box as the client: at high rates the server
saturates first; rows where it did (requests failing or queueing) say so.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pytest_inference.engine import RequestSpec, StreamClient, arrivals  # noqa: E402
from pytest_inference.engine.workers import run_open_loop_workers  # noqa: E402
from pytest_inference.stats import percentile  # noqa: E402
from pytest_inference.testing.fake_openai import FakeOpenAIServer  # noqa: E402


def one(server, rate: float, seconds: float, workers: int, tokens: int):
    offs = arrivals.poisson(rate, duration_s=seconds, seed=int(rate))
    specs = [RequestSpec(model="fake-model", max_tokens=tokens)] * len(offs)
    conns = max(4, min(64, int(rate * 0.1) + 4))
    server.reset()
    if workers == 1:
        with StreamClient(server.base_url) as c:
            c.run_open_loop(specs[:4], [0.0, 0.01, 0.02, 0.03], connections=conns)  # warm code paths
            run = c.run_open_loop(specs, offs, connections=conns)
    else:
        run = run_open_loop_workers(server.base_url, specs, offs, workers=workers, connections=max(2, conns // workers),
                                    warmup=2)
    truth = server.truth()
    errs = [r.ttft_ms - truth[r.response_id]["ttft_ms"] for r in run.results if r.ok and r.response_id in truth]
    failed = len(run.failed)
    return run, errs, failed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rates", default=None, help="comma-separated offered rates (req/s)")
    ap.add_argument("--seconds", type=float, default=None)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--tokens", type=int, default=32)
    args = ap.parse_args()
    rates = [float(x) for x in args.rates.split(",")] if args.rates else (
        [25, 100, 400] if args.quick else [25, 50, 100, 200, 400, 800])
    seconds = args.seconds or (2.0 if args.quick else 5.0)
    workers = [int(x) for x in args.workers.split(",")]
    print(f"machine: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}; Poisson arrivals, {seconds:g} s per row, "
          f"{args.tokens}-token streams")
    hdr = (f"{'server':<10} {'rate':>6} {'wk':>3} {'n':>5} {'ach/off':>8} {'lag p50':>8} {'lag p99':>8} "
           f"{'CPU ms/req':>10} {'err p50':>8} {'err p99':>8} {'fail':>5} {'runq ms':>8} {'foreign':>7}  saturated")
    for name, opts in (("zero-delay", dict(ttft_ms=0, token_ms=0)), ("ttft-20ms", dict(ttft_ms=20, token_ms=0))):
        with FakeOpenAIServer(**opts) as s:
            print(hdr)
            for rate in rates:
                for w in workers:
                    t = time.monotonic()
                    run, errs, failed = one(s, rate, seconds, w, args.tokens)
                    lags = run.dispatch_lag_ms()
                    n = len(run.results)
                    ratio = (run.achieved_rps / run.offered_rps) if run.offered_rps and run.achieved_rps else float("nan")
                    print(f"{name:<10} {rate:>6g} {w:>3} {n:>5} {ratio:>8.4f} {percentile(lags, 50):>8.3f} "
                          f"{run.dispatch_lag_p99_ms or float('nan'):>8.3f} {run.client_cpu_s / n * 1e3:>10.3f} "
                          f"{percentile(errs, 50) if errs else float('nan'):>8.3f} "
                          f"{percentile(errs, 99) if errs else float('nan'):>8.3f} {failed:>5} "
                          f"{run.client_runq_ms if run.client_runq_ms is not None else float('nan'):>8.1f} "
                          f"{(run.cpu_pressure or {}).get('foreign_cores', float('nan')):>7.2f}  "
                          f"{'yes' if run.client_saturated else 'no'}", flush=True)
                    del t
    print("lag: scheduled send -> bytes written (ms); err: measured TTFT from the schedule - the server's true TTFT;\n"
          "runq: the measuring threads' run-queue wait over the run; foreign: CPU cores other processes used (PSI)")


if __name__ == "__main__":
    main()
