"""Benchmark the measurement engine against the fake OpenAI server (its own process).

    python benchmarks/bench_engine.py            # full table (~1 min on a 2-core box)
    python benchmarks/bench_engine.py --quick

Prints, per client and concurrency:
* TTFT error = measured TTFT − the server's true TTFT (its own CLOCK_MONOTONIC stamps:
  request fully read → first token event written), median and p99;
* spread inflation = (max − min of measured TTFT) − (max − min of true TTFT);
* starved = samples where the client's own run-queue wait in the wake that stamped the
  first token exceeded 0.3 ms (engine only; a loaded machine, not a slow server);
then the client CPU time (``time.process_time`` of this process) per streamed 32-token
request against a zero-delay server, and the requests/s one client process sustains; last,
the cost of decoding one chunk on the timed path (``StreamDecoder.feed``, no server).

The comparison client is the openai SDK used plainly: ``AsyncOpenAI`` streaming, built
once outside the timed region, stamping ``perf_counter_ns`` right before ``create`` and
at the first chunk carrying content.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import sys
import time
import timeit
from pathlib import Path
from time import perf_counter_ns

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pytest_inference.engine import RequestSpec, StreamClient  # noqa: E402
from pytest_inference.engine.openai_stream import StreamDecoder  # noqa: E402
from pytest_inference.stats import percentile  # noqa: E402
from pytest_inference.testing.fake_openai import FakeOpenAIServer  # noqa: E402

MODEL = "fake-model"


def engine_ttft(server: FakeOpenAIServer, conc: int, n: int, max_tokens: int) -> dict:
    with StreamClient(server.base_url) as c:
        c.run([RequestSpec(model=MODEL, max_tokens=max_tokens)] * conc, concurrency=conc, warmup=0)
        server.reset()
        run = c.run([RequestSpec(model=MODEL, max_tokens=max_tokens)] * n, concurrency=conc, warmup=0)
    truth = server.truth()
    bad = [r.error for r in run.results if not r.ok]
    if bad:
        raise SystemExit(f"engine failures: {bad[:3]}")
    pairs = [(r.ttft_ms, truth[r.response_id]["ttft_ms"]) for r in run.results]
    return summarize(pairs) | {"starved": len(run.stalled(0.3))}


def sdk_ttft(server: FakeOpenAIServer, conc: int, n: int, max_tokens: int) -> dict | None:
    try:
        from openai import AsyncOpenAI
    except ImportError:
        return None

    async def main() -> list[tuple[float, str]]:
        client = AsyncOpenAI(base_url=server.base_url, api_key="unused", max_retries=0)
        sem = asyncio.Semaphore(conc)

        async def one() -> tuple[float, str]:
            async with sem:
                t0 = perf_counter_ns()
                stream = await client.chat.completions.create(
                    model=MODEL, messages=[{"role": "user", "content": "hello"}], max_tokens=max_tokens,
                    temperature=0.0, stream=True, stream_options={"include_usage": True},
                    extra_body={"ignore_eos": True})
                first, rid = None, ""
                async for chunk in stream:
                    if first is None and chunk.choices and chunk.choices[0].delta.content:
                        first = perf_counter_ns()
                        rid = chunk.id
                return (first - t0) / 1e6, rid  # type: ignore[operator]

        await asyncio.gather(*(one() for _ in range(conc)))  # warm-up
        server.reset()
        out = await asyncio.gather(*(one() for _ in range(n)))
        await client.close()
        return out

    res = asyncio.run(main())
    truth = server.truth()
    return summarize([(ms, truth[rid]["ttft_ms"]) for ms, rid in res]) | {"starved": None}


def summarize(pairs: list[tuple[float, float]]) -> dict:
    errs = [m - t for m, t in pairs]
    measured = [m for m, _ in pairs]
    true = [t for _, t in pairs]
    return {
        "n": len(pairs),
        "err_median": statistics.median(errs),
        "err_p99": percentile(errs, 99),
        "err_min": min(errs),
        "spread_infl": (max(measured) - min(measured)) - (max(true) - min(true)),
    }


def engine_cpu(server: FakeOpenAIServer, conc: int, n: int) -> dict:
    with StreamClient(server.base_url) as c:
        c.run([RequestSpec(model=MODEL, max_tokens=32)] * conc, concurrency=conc, warmup=conc)
        run = c.run([RequestSpec(model=MODEL, max_tokens=32)] * n, concurrency=conc, warmup=0)
    assert all(r.ok and r.output_tokens == 32 for r in run.results)
    return {"cpu_ms": run.client_cpu_s / n * 1e3, "rps": n / run.wall_s,
            "reads": sum(r.socket_reads for r in run.results) / n}


def sdk_cpu(server: FakeOpenAIServer, conc: int, n: int) -> dict | None:
    try:
        from openai import AsyncOpenAI
    except ImportError:
        return None

    async def main() -> tuple[float, float]:
        client = AsyncOpenAI(base_url=server.base_url, api_key="unused", max_retries=0)
        sem = asyncio.Semaphore(conc)

        async def one() -> None:
            async with sem:
                stream = await client.chat.completions.create(
                    model=MODEL, messages=[{"role": "user", "content": "hello"}], max_tokens=32,
                    stream=True, stream_options={"include_usage": True}, extra_body={"ignore_eos": True})
                async for _ in stream:
                    pass

        await asyncio.gather(*(one() for _ in range(conc)))
        cpu0, t0 = time.process_time(), time.perf_counter()
        await asyncio.gather(*(one() for _ in range(n)))
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
        await client.close()
        return cpu, wall

    gc.collect()
    cpu, wall = asyncio.run(main())
    return {"cpu_ms": cpu / n * 1e3, "rps": n / wall, "reads": float("nan")}


def vllm_chat_payloads(tokens: int = 64) -> list[bytes]:
    """The ``data:`` payloads of a vLLM chat stream: role chunk, one per token, usage, [DONE]."""
    import json

    def ev(obj: dict) -> bytes:
        return json.dumps(obj, separators=(",", ":")).encode()

    base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": MODEL}
    out = [ev({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})]
    out += [ev({**base, "choices": [{"index": 0, "delta": {"content": f" tok{i}"}, "finish_reason": None}]})
            for i in range(tokens)]
    out.append(ev({**base, "choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": tokens}}))
    return out + [b"[DONE]"]


def decode_cost_ns(repeat: int = 300) -> float:
    """Best-of-``repeat`` ns per chunk of :meth:`StreamDecoder.feed` over a 64-token stream."""
    payloads = vllm_chat_payloads()

    def one() -> None:
        feed = StreamDecoder().feed
        for p in payloads:
            feed(p)

    best = min(timeit.repeat(one, number=5, repeat=repeat)) / 5
    return best / len(payloads) * 1e9


def fmt(x: float | None, spec: str = "8.3f") -> str:
    return format(x, spec) if x is not None else " " * (int(spec.split(".")[0]) - 1) + "-"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer requests")
    ap.add_argument("--no-sdk", action="store_true", help="skip the openai SDK comparison")
    args = ap.parse_args()
    scale = 0.25 if args.quick else 1.0

    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; python {sys.version.split()[0]}")
    print("\nTTFT accuracy vs server ground truth (injected TTFT uniform 20-60 ms, 2 ms/token, 16 tokens)")
    print(f"{'client':<12}{'conc':>5}{'n':>6}{'err med ms':>12}{'err p99 ms':>12}{'err min':>9}"
          f"{'spread+ ms':>12}{'starved':>9}")
    for conc, n in ((1, 60), (16, 320), (64, 640)):
        n = max(conc, int(n * scale))
        rows = []
        with FakeOpenAIServer(ttft_range="20:60", token_ms=2, seed=conc) as s:
            rows.append(("engine", engine_ttft(s, conc, n, 16)))
        if not args.no_sdk:
            with FakeOpenAIServer(ttft_range="20:60", token_ms=2, seed=conc) as s:
                r = sdk_ttft(s, conc, n, 16)
            if r is not None:
                rows.append(("openai-sdk", r))
        for name, r in rows:
            print(f"{name:<12}{conc:>5}{r['n']:>6}{fmt(r['err_median'], '12.3f')}{fmt(r['err_p99'], '12.3f')}"
                  f"{fmt(r['err_min'], '9.3f')}{fmt(r['spread_infl'], '12.3f')}"
                  f"{(str(r['starved']) if r['starved'] is not None else '-'):>9}")

    print("\nClient cost: streamed 32-token chat requests, zero-delay server (process_time of this process)")
    print(f"{'client':<12}{'conc':>5}{'n':>6}{'CPU ms/req':>12}{'req/s':>9}{'reads/req':>11}")
    for conc, n in ((1, 1000), (16, 3000)):
        n = max(conc, int(n * scale))
        with FakeOpenAIServer(ttft_ms=0, token_ms=0) as s:
            r = engine_cpu(s, conc, n)
            print(f"{'engine':<12}{conc:>5}{n:>6}{r['cpu_ms']:>12.3f}{r['rps']:>9.0f}{r['reads']:>11.1f}")
            if not args.no_sdk:
                r2 = sdk_cpu(s, conc, n)
                if r2:
                    print(f"{'openai-sdk':<12}{conc:>5}{n:>6}{r2['cpu_ms']:>12.3f}{r2['rps']:>9.0f}{'-':>11}")
    print("\nClient cost when every token is its own read (1 ms/token server, 32 tokens, concurrency 1)")
    with FakeOpenAIServer(ttft_ms=1, token_ms=1) as s:
        n = max(20, int(200 * scale))
        r = engine_cpu(s, 1, n)
        print(f"{'engine':<12}{1:>5}{n:>6}{r['cpu_ms']:>12.3f}{r['rps']:>9.0f}{r['reads']:>11.1f}")
    print(f"\nChunk decoding on the timed path: {decode_cost_ns():.0f} ns per chunk "
          "(StreamDecoder.feed, 64-token vLLM chat stream, best of 300)")
    print("\nNote: on a 2-core box the fake server shares the CPUs with the client; req/s is bounded by both.")


if __name__ == "__main__":
    main()
