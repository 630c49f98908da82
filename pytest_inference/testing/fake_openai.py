"""A fake OpenAI-compatible streaming server with known, injected delays.

It exists to test the measuring harness itself: it records, for every streamed
request, the ground truth the client cannot see, with ``time.perf_counter_ns``
(CLOCK_MONOTONIC, the same clock in every process on Linux):

* ``recv_ns``: when the request's last byte was read from the socket;
* ``first_token_ns``: right before the first token event was written to the socket
  (for a split event: before the write of its last piece, when it became complete);
  ``token_ns`` lists that time for every token event;

so the true TTFT is ``first_token_ns − recv_ns``, served as JSON by ``GET /_truth``,
keyed by the response id the server put in the chunks.

Run it as its own process (timing in the client must not share an interpreter with
the server)::

    python -m pytest_inference.testing.fake_openai --port 0 --ttft-ms 20 --token-ms 2

It prints the port it listens on as the first line on stdout. From Python use
:class:`FakeOpenAIServer` (a context manager that starts it, waits for the port and
kills it; the process also dies with its parent).

Behaviours: server-wide from the command line (``--help``), and per request with
``x-fake-<option>`` headers (``x-fake-ttft-ms: 35``) or a ``"fake": {...}`` object in
the request body. Options (underscore or dash spelling):

======================  ==========================================================
``ttft_ms``             fixed delay before the first token (ms)
``ttft_schedule``       list of delays cycled over requests ("20,40,60")
``ttft_range``          uniform random delay "lo:hi" (ms), seeded by ``--seed``
``token_ms``            delay between token events (ms)
``tokens``              number of tokens when max_tokens is absent (or ignored)
``ignore_max_tokens``   always send ``tokens`` tokens whatever max_tokens says
``eos_after``           stop after N tokens with finish_reason "stop" (drops ignore_eos)
``role_chunk``          role-only opening chunk (default on, like vLLM)
``empty_chunks``        an empty-content chunk after every token event
``usage``               "auto" (when stream_options.include_usage), "always", "never"
``split_events``        write each event in N pieces with ``split_pause_ms`` pauses
``reasoning_tokens``    the first N tokens are ``reasoning_content``
``reasoning_field``     "reasoning_content" (default) or "reasoning"
``tool_calls``          the (non-reasoning) tokens come as one tool call's arguments
``tokens_per_chunk``    tokens carried by one event (usage still counts tokens)
``burst``               compute everything, then send the whole stream in one late write
``content_length``      send the stream with Content-Length instead of chunked (one write)
``reply``               "sse" | "html" | "json" (other JSON shape) | "nonstream" | "sse_other"
``status``              answer with this HTTP error status and an OpenAI error body
``drop_after``          abort the connection after N token events
``close``               Connection: close after each response
``close_silently``      close the connection after each response without saying so
``framing``             "chunked" (default) or "close": no chunked encoding, no
                        Content-Length, the body ends when the connection closes
``cut_after``           close the connection cleanly (FIN, not RST) after N token
                        events: no ``[DONE]``, no usage, no finish_reason
``usage_tokens``        report this ``completion_tokens`` in usage, whatever was sent
``endless``             "tokens": token events forever, every ``token_ms``; "pings":
                        only ``: ping`` SSE comments forever (never a token)
``hang``                read the request, never answer (the connection stays open)
``metrics``             what ``GET /metrics`` serves (server-wide): "prom" (default),
                        "inf" (TTFT histogram sum ``+Inf``), "nan" (``NaN``), "html"
                        (an HTML page with status 200), "none" (404: no /metrics at all)
``strict``              a conformant OpenAI API server (below); off by default
======================  ==========================================================

Strict mode (``--strict``, or the per-request option ``strict``), for proving the API
conformance suite (``suites/api``): the server answers like a conformant OpenAI server.

* Validation (:func:`validate_request`): a body that is not a JSON object, a missing or
  malformed ``messages``/``prompt``, ``max_tokens``/``max_completion_tokens`` not an int ≥ 1,
  ``n`` not in 1..16, ``temperature`` not in [0, 2], ``top_p`` not in (0, 1], ``stream`` not a
  bool, ``stop`` not a string or ≤ 4 strings, ``seed`` not an int, chat ``top_logprobs`` not in
  0..20 or without ``logprobs: true``, completions ``logprobs`` not in 0..5, ``stream_options``
  without streaming, a ``model`` that is not a string: 400; another model than ``--model``:
  404 (param "model"); prompt words (chat: each message's words + 4) over ``--max-model-len``,
  or prompt + max_tokens over it: 400. The body is ``{"error": {"message", "type"
  ("BadRequestError"/"NotFoundError"), "param", "code"}}``. Unknown fields are ignored.
* Text: tokens are " " + a word of :data:`VOCAB` (211 words). Greedy (``temperature`` 0): a
  function of (prompt, position), the same for every choice; with a ``seed``: of (prompt,
  seed, choice index, position); otherwise from the server's RNG (different each time).
* Length: ``max_tokens`` tokens (finish "length"); without it ``tokens`` and then a natural
  end (finish "stop"; "length" if the context runs out first); ``ignore_eos`` runs to the
  context length; ``eos_after`` ends earlier with "stop".
* ``stop``: after each token the text is searched; at the first hit the text is cut at the
  stop string's start (it is never sent), finish "stop". The tokens kept are those with text
  before the cut (the last one may be cut short in the text; its logprobs entry is the whole
  token): ``usage.completion_tokens`` = the number of logprobs entries, always.
* ``n``: choices with index 0..n-1 (a list of prompts: index = prompt * n + choice); a stream
  interleaves them round robin, one role chunk each, each ends with its own finish_reason.
* Logprobs: chat ``logprobs``/``top_logprobs`` → ``{"content": [{"token", "logprob", "bytes",
  "top_logprobs"}]}``; completions ``logprobs: k`` → ``tokens``, ``token_logprobs``,
  ``top_logprobs`` (top k and the chosen token), ``text_offset``. Logprobs are a fixed
  distribution per (prompt, position) (:func:`token_ranking`); the greedy token is its best.
  ``return_tokens_as_token_ids`` writes tokens as ``"token_id:<index in VOCAB>"``.
* usage: always when not streaming; in a stream with ``stream_options.include_usage`` a last
  chunk with ``"choices": []``.
* ``/v1/models`` also says ``max_model_len``, as vLLM's does.

``--defect NAME`` (repeatable or comma-separated; implies strict) breaks one rule each; the
names and what they break are :data:`DEFECTS` (e.g. ``no_done``: no ``data: [DONE]``;
``mix_streams``: overlapping streams carry each other's tokens; ``any_key``: ``--api-key``
accepts any token).

Startup simulation (server-wide, for testing launchers and cold-start timing; see
:func:`simulate_startup`): ``--fork-children N`` forks N sleeping children first (like
vLLM's EngineCore and Worker; they do not die with the server, only with its process
group; ``--child-names``, ``--worker-cpus``, ``--children-ignore-term``), then
``--startup-log FILE`` replays log lines to stderr (``<delay_s><TAB><text>`` per line),
``--startup-s`` sleeps, ``--die-during-start`` prints an error line and exits with
``--die-exit-code`` (3); otherwise the server listens, and ``--health-delay-s`` keeps
``/health`` at 503 for that long. ``--max-lifetime-s`` makes the server (and the children,
``--children-max-s``) exit by themselves, a backstop for tests.

Known capacity (server-wide, ``--capacity K``): at most K streams are served at once and the
rest wait in one FIFO queue; a stream's clock (``ttft_ms``, then ``token_ms`` per token) starts
when it gets its slot, so the wait adds to its TTFT (``queue_ms`` in the ground truth), and the
slot is held until its last token is written: a service time ``S = ttft_ms + (n - 1) * token_ms``
for n tokens. Under a constant arrival rate λ the server is a D/D/K queue whose capacity is
``K / S`` requests/s: at or below it every TTFT is ``ttft_ms``; above it request i (0-based)
waits ``floor(i / K) * (S - K / λ)``. :func:`capacity_ttft_ms` computes the TTFT of each request
of such a run (``--max-running`` is different: it queues too, but the clock runs from the
request's arrival, so a short wait is hidden in the TTFT delay).

What it says it can hold (server-wide, off by default; for
:mod:`pytest_inference.probes.server_capacity`): ``--kv-cache-tokens N`` makes ``/metrics``
expose vLLM's ``vllm:cache_config_info`` (``kv_cache_size_tokens`` N, ``block_size``
``--block-size`` (16), ``num_gpu_blocks`` N // block size, ``kv_cache_max_concurrency`` N /
``--max-model-len`` (2048), ``kv_cache_memory_bytes`` ``--kv-cache-bytes`` or "None"), the gauge
``vllm:kv_cache_usage_perc``: the tokens the running streams hold (prompt words + tokens written
so far) / N, at most 1, and the counter ``vllm:num_preemptions_total``. ``--preempt-above K``
counts one preemption each time a stream starts while more than K streams are running (it is
only counted: the stream is served as usual) and marks it ``"preempted": true`` in the ground
truth; the counter is exposed with either option. Without them ``/metrics`` is unchanged.

Endpoints: ``POST /v1/chat/completions``, ``POST /v1/completions``, ``GET /v1/models``,
``GET /health``, ``GET /metrics`` (``vllm:time_to_first_token_seconds``,
``vllm:inter_token_latency_seconds``, ``vllm:e2e_request_latency_seconds`` histograms
from the server's own timestamps, ``vllm:num_requests_running/waiting`` gauges),
``GET /_truth``, ``GET /_stats``, ``GET /_reset``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import email.utils
import gc
import hashlib
import json
import math
import os
import random
import re
import select
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from time import perf_counter_ns
from typing import Any

DEFAULTS: dict[str, Any] = {
    "ttft_ms": 20.0,
    "ttft_schedule": None,
    "ttft_range": None,
    "token_ms": 2.0,
    "tokens": 16,
    "ignore_max_tokens": False,
    "eos_after": None,
    "role_chunk": True,
    "empty_chunks": False,
    "usage": "auto",
    "split_events": 0,
    "split_pause_ms": 1.0,
    "reasoning_tokens": 0,
    "reasoning_field": "reasoning_content",
    "tool_calls": False,
    "tokens_per_chunk": 1,
    "burst": False,
    "content_length": False,
    "reply": "sse",
    "status": None,
    "drop_after": None,
    "close": False,
    "close_silently": False,
    "framing": "chunked",
    "cut_after": None,
    "usage_tokens": None,
    "endless": None,
    "hang": False,
    "metrics": "prom",
    "strict": False,
}
_INT = {"tokens", "eos_after", "split_events", "reasoning_tokens", "tokens_per_chunk", "status", "drop_after",
        "cut_after", "usage_tokens"}
_FLOAT = {"ttft_ms", "token_ms", "split_pause_ms"}
_BOOL = {"ignore_max_tokens", "role_chunk", "empty_chunks", "burst", "content_length", "close",
         "close_silently", "tool_calls", "hang", "strict"}

TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0,
                7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)
ITL_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5,
               10.0, 20.0, 40.0, 80.0)
E2E_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0,
               120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0)


def _convert(key: str, value: Any) -> Any:
    if value is None:
        return None
    if key in _BOOL:
        if isinstance(value, str):
            return value.strip().lower() in ("1", "true", "yes", "on")
        return bool(value)
    if key in _INT:
        return int(value)
    if key in _FLOAT:
        return float(value)
    if key == "ttft_schedule":
        if isinstance(value, str):
            return [float(x) for x in value.split(",") if x.strip()]
        return [float(x) for x in value]
    if key == "ttft_range":
        if isinstance(value, str):
            lo, hi = value.split(":")
            return (float(lo), float(hi))
        return (float(value[0]), float(value[1]))
    return value


class Histogram:
    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.counts = [0] * len(buckets)
        self.sum = 0.0
        self.count = 0

    def observe(self, v: float) -> None:
        self.sum += v
        self.count += 1
        for i, b in enumerate(self.buckets):
            if v <= b:
                self.counts[i] += 1

    def render(self, name: str, labels: str, help_: str) -> list[str]:
        out = [f"# HELP {name} {help_}", f"# TYPE {name} histogram"]
        for b, c in zip(self.buckets, self.counts):
            out.append(f'{name}_bucket{{{labels},le="{b}"}} {float(c)}')
        out.append(f'{name}_bucket{{{labels},le="+Inf"}} {float(self.count)}')
        out.append(f"{name}_count{{{labels}}} {float(self.count)}")
        out.append(f"{name}_sum{{{labels}}} {self.sum!r}")
        return out


class StallSelector(selectors.EpollSelector):
    """An epoll selector that measures this thread's run-queue wait across each ``select``
    (from /proc/thread-self/schedstat): how long the server, once woken, waited for a CPU.
    It goes into the ground truth, so a test can tell a starved server from a bad client."""

    def __init__(self) -> None:
        super().__init__()
        self.stall_ns = 0
        try:
            self._fd: int | None = os.open("/proc/thread-self/schedstat", os.O_RDONLY)
            self._read()
        except (OSError, ValueError, IndexError):
            self._fd = None

    def _read(self) -> int:
        return int(os.pread(self._fd, 128, 0).split()[1])  # type: ignore[arg-type]

    def select(self, timeout: float | None = None):  # type: ignore[override]
        if self._fd is None:
            return super().select(timeout)
        a = self._read()
        ev = super().select(timeout)
        self.stall_ns = self._read() - a
        return ev


class State:
    selector: StallSelector | None = None
    keep_alive_timeout_s: float | None = None
    healthy_at_ns: int = 0  # /health answers 503 before this perf_counter_ns() time

    def __init__(self, opts: dict[str, Any], api_key: str | None, model: str, max_running: int | None,
                 seed: int) -> None:
        self.opts = opts
        self.api_key = api_key
        self.model = model
        self.rng = random.Random(seed)
        self.truth: dict[str, dict[str, Any]] = {}
        self.n_req = 0
        self.n_sched = 0
        self.conns_opened = 0
        self.conns_open = 0
        self.running = 0
        self.waiting = 0
        self.sem = asyncio.Semaphore(max_running) if max_running else None
        self.capacity: int | None = None  # --capacity K: K stream slots, a FIFO queue for the rest
        self.cap_free = 0
        self.cap_queue: collections.deque[asyncio.Future[None]] = collections.deque()
        self.h_ttft = Histogram(TTFT_BUCKETS)
        self.h_itl = Histogram(ITL_BUCKETS)
        self.h_e2e = Histogram(E2E_BUCKETS)
        self.prompt_tokens = 0
        self.gen_tokens = 0
        self.success: dict[str, int] = {}
        # what it says it can hold (--kv-cache-tokens, --preempt-above): None = not exposed
        self.kv_cache_tokens: int | None = None
        self.block_size = 16
        self.max_model_len = 2048
        self.kv_cache_bytes: int | None = None
        self.preempt_above: int | None = None
        self.preemptions = 0
        self.kv_live: dict[int, list[int]] = {}  # per running stream (by id): [tokens it holds]
        self.defects: frozenset[str] = frozenset()  # --defect: each breaks one rule (implies strict)
        self.live: list[list[Choice]] = []  # strict streams being served, oldest first (mix_streams)

    @property
    def kv_metrics(self) -> bool:
        return self.kv_cache_tokens is not None or self.preempt_above is not None

    def kv_usage(self) -> float:
        """Fraction of the KV cache the running streams hold (vLLM's ``kv_cache_usage_perc``)."""
        if not self.kv_cache_tokens:
            return 0.0
        return min(1.0, sum(x[0] for x in self.kv_live.values()) / self.kv_cache_tokens)

    def _kv_lines(self, lab: str) -> list[str]:
        out = []
        if self.kv_cache_tokens is not None:
            n, b = self.kv_cache_tokens, self.block_size
            info = {"block_size": str(b), "cache_dtype": "auto", "enable_prefix_caching": "False",
                    "engine": "0", "gpu_memory_utilization": "0.9",
                    "kv_cache_max_concurrency": repr(n / self.max_model_len),
                    "kv_cache_memory_bytes": str(self.kv_cache_bytes) if self.kv_cache_bytes is not None else "None",
                    "kv_cache_size_tokens": str(n), "num_cpu_blocks": "None", "num_gpu_blocks": str(n // b)}
            labels = ",".join(f'{k}="{v}"' for k, v in info.items())
            out += ["# HELP vllm:cache_config_info Information of the LLMEngine CacheConfig",
                    "# TYPE vllm:cache_config_info gauge",
                    f"vllm:cache_config_info{{{labels}}} 1.0",
                    "# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.",
                    "# TYPE vllm:kv_cache_usage_perc gauge",
                    f"vllm:kv_cache_usage_perc{{{lab}}} {self.kv_usage()!r}"]
        out += ["# HELP vllm:num_preemptions_total Cumulative number of preemption from the engine.",
                "# TYPE vllm:num_preemptions_total counter",
                f"vllm:num_preemptions_total{{{lab}}} {float(self.preemptions)}"]
        return out

    def metrics(self) -> str:
        lab = f'engine="0",model_name="{self.model}"'
        out = [
            "# HELP vllm:num_requests_running Number of requests in model execution batches.",
            "# TYPE vllm:num_requests_running gauge",
            f"vllm:num_requests_running{{{lab}}} {float(self.running)}",
        ]
        if "no_queue_gauge" not in self.defects:
            out += ["# HELP vllm:num_requests_waiting Number of requests waiting to be processed.",
                    "# TYPE vllm:num_requests_waiting gauge",
                    f"vllm:num_requests_waiting{{{lab}}} {float(self.waiting)}"]
        out += [
            "# HELP vllm:prompt_tokens_total Number of prefill tokens processed.",
            "# TYPE vllm:prompt_tokens_total counter",
            f"vllm:prompt_tokens_total{{{lab}}} {float(self.prompt_tokens)}",
            "# HELP vllm:generation_tokens_total Number of generation tokens processed.",
            "# TYPE vllm:generation_tokens_total counter",
            f"vllm:generation_tokens_total{{{lab}}} {float(self.gen_tokens)}",
            "# HELP vllm:request_success_total Count of successfully processed requests.",
            "# TYPE vllm:request_success_total counter",
        ]
        for reason in ("stop", "length", "abort"):
            out.append(f'vllm:request_success_total{{{lab},finished_reason="{reason}"}} '
                       f"{float(self.success.get(reason, 0))}")
        out += self.h_ttft.render("vllm:time_to_first_token_seconds", lab,
                                  "Histogram of time to first token in seconds.")
        out += self.h_itl.render("vllm:inter_token_latency_seconds", lab,
                                 "Histogram of inter-token latency in seconds.")
        out += self.h_e2e.render("vllm:e2e_request_latency_seconds", lab,
                                 "Histogram of e2e request latency in seconds.")
        if self.kv_metrics:
            out += self._kv_lines(lab)
        return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------
# strict mode: a conformant OpenAI API (validation, deterministic text, stop, n, logprobs),
# and the defects that each break one rule of it

DEFECTS: dict[str, str] = {
    "no_done": "streams end without data: [DONE]",
    "wrong_usage": "usage.completion_tokens is one more than the tokens sent",
    "finish_always_stop": 'finish_reason is "stop" even when max_tokens was hit',
    "unknown_field_500": "a body with a top-level field the fake does not know gets HTTP 500",
    "ignore_max_tokens": "generates max_tokens + 3 tokens",
    "mix_streams": "overlapping streams carry the other stream's tokens",
    "hang_on_bad_body": "a body that is not JSON, or a chat body without messages, is never answered",
    "role_chunk_content": 'the role-only opening chunk carries the extra content "Hi"',
    "mixed_ids": "every chunk of a stream has a different id",
    "bad_sse_framing": 'SSE events end with a single "\\n" instead of a blank line',
    "errors_500": "validation errors are answered with status 500",
    "error_body_plain": 'validation errors keep their status but the body is text/plain "bad request"',
    "ignore_stop": "stop strings are ignored",
    "ignore_n": "n > 1 returns a single choice",
    "ignore_seed": "greedy and seeded answers are random",
    "no_logprobs": 'logprobs asked for are not returned ("logprobs": null)',
    "models_bad_shape": 'GET /v1/models answers a bare JSON list ["model"]',
    "no_queue_gauge": "/metrics lacks vllm:num_requests_waiting",
    "any_key": "with --api-key, any bearer token (or none) is accepted",
}

_COMMON_FIELDS = frozenset({
    "model", "max_tokens", "n", "temperature", "top_p", "stream", "stream_options", "stop", "seed", "logprobs",
    "frequency_penalty", "presence_penalty", "logit_bias", "user",
    # vLLM's extensions, and the fake's own
    "ignore_eos", "return_tokens_as_token_ids", "return_token_ids", "top_k", "min_p", "repetition_penalty", "min_tokens",
    "skip_special_tokens", "fake"})
CHAT_FIELDS = _COMMON_FIELDS | {
    "messages", "max_completion_tokens", "top_logprobs", "response_format", "tools", "tool_choice",
    "parallel_tool_calls", "functions", "function_call", "metadata", "store", "service_tier", "reasoning_effort",
    "modalities", "prediction", "audio", "web_search_options"}
COMPLETION_FIELDS = _COMMON_FIELDS | {"prompt", "best_of", "echo", "suffix"}


def _make_vocab() -> tuple[str, ...]:
    syl = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]  # 70 syllables
    return tuple(syl[i % 70] + syl[(i // 70 * 23 + i * 7) % 70] for i in range(211))


VOCAB = _make_vocab()  # 211 (a prime) distinct two-syllable words; a token is " " + word


def _hash(*parts: Any) -> int:
    return int.from_bytes(hashlib.blake2b(repr(parts).encode(), digest_size=8).digest(), "big")


def token_ranking(key: str, pos: int) -> tuple[int, int, float]:
    """The model's distribution at position ``pos`` after prompt ``key``: every vocabulary id
    has a rank, id = (first + rank * step) % len(VOCAB); rank 0 has probability p0, rank r ≥ 1
    (1 - p0) / 2**r. Returns (first, step, p0)."""
    v = len(VOCAB)
    h = _hash(key, pos)
    return h % v, 1 + (h >> 16) % (v - 1), 0.6 + ((h >> 40) % 1000) / 1000 * 0.3


def logprob_of(key: str, pos: int, tid: int) -> float:
    """The logprob of token ``tid`` at ``pos`` (≤ 0; the greedy token's is the highest)."""
    first, step, p0 = token_ranking(key, pos)
    rank = (tid - first) * pow(step, -1, len(VOCAB)) % len(VOCAB)
    return math.log(p0) if rank == 0 else math.log(1 - p0) - rank * math.log(2)


def top_logprobs(key: str, pos: int, k: int) -> list[tuple[int, float]]:
    """The ``k`` most likely (id, logprob) at ``pos``, best first."""
    first, step, p0 = token_ranking(key, pos)
    out = []
    for r in range(k):
        out.append(((first + r * step) % len(VOCAB), math.log(p0) if r == 0 else math.log(1 - p0) - r * math.log(2)))
    return out


def cut_at_stop(texts: list[str], stops: list[str]) -> tuple[list[str], bool]:
    """The token texts kept when generation stops before the first stop string: after each
    token the text so far is searched; at the first hit the text is cut at the earliest stop
    string's start. The tokens that have text before the cut are kept (the last one may be
    cut short); returns (kept texts, whether a stop string was hit)."""
    stops = [s for s in stops if s]
    text = ""
    for i, t in enumerate(texts):
        text += t
        hits = [text.find(s) for s in stops if s in text]
        if hits:
            pos, start, kept = min(hits), 0, []
            for u in texts[:i + 1]:
                if start >= pos:
                    break
                kept.append(u[:pos - start])
                start += len(u)
            return kept, True
    return list(texts), False


class ApiError(Exception):
    """A request the strict server rejects: an OpenAI error body with this status."""

    def __init__(self, status: int, message: str, param: str | None = None, hang: bool = False) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.hang = status, message, param, hang

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": "NotFoundError" if self.status == 404 else
                          "BadRequestError", "param": self.param, "code": self.status}}


@dataclass
class ApiRequest:
    """A validated completion request (strict mode)."""

    model: str
    prompts: list[str]       # one generation key per prompt (chat: the messages)
    prompt_tokens: list[int]  # per prompt, as the fake counts
    max_tokens: int | None
    n: int = 1
    temperature: float | None = None
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    stream: bool = False
    include_usage: bool = False
    logprobs: int | None = None  # top-k asked for (chat: top_logprobs, 0 without); None: not asked
    as_ids: bool = False
    ignore_eos: bool = False


@dataclass
class Choice:
    """One generated choice (strict mode): the emitted tokens and why it ended."""

    index: int
    key: str                 # the prompt's generation key (for the logprobs)
    ids: list[int]
    texts: list[str]         # text per token; the last may be cut short by a stop string
    finish: str

    @property
    def text(self) -> str:
        return "".join(self.texts)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return " ".join(p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))


def _short(v: Any) -> str:
    try:
        return json.dumps(v)[:80]
    except (ValueError, TypeError, RecursionError):
        return type(v).__name__


def validate_request(req: Any, chat: bool, model: str, max_model_len: int) -> ApiRequest:
    """Check a parsed body like a conformant server (vLLM's rules); raises :class:`ApiError`."""
    if not isinstance(req, dict):
        raise ApiError(400, "the request body must be a JSON object")
    if chat:
        msgs = req.get("messages")
        if msgs is None:
            raise ApiError(400, "'messages' is a required property", "messages", hang=True)
        if not isinstance(msgs, list) or not msgs:
            raise ApiError(400, "'messages' must be a non-empty list", "messages")
        for i, m in enumerate(msgs):
            if not isinstance(m, dict) or not isinstance(m.get("role"), str):
                raise ApiError(400, f"messages[{i}] must be an object with a string 'role'", "messages")
            c = m.get("content")
            if not isinstance(c, (str, list)):
                raise ApiError(400, f"messages[{i}].content must be a string or a list of parts", "messages")
        texts = [_content_text(m["content"]) for m in msgs]
        prompts = [json.dumps([[m["role"], t] for m, t in zip(msgs, texts)])]
        prompt_tokens = [sum(len(t.split()) + 4 for t in texts)]
    else:
        p = req.get("prompt")
        if p is None:
            raise ApiError(400, "'prompt' is a required property", "prompt")
        if isinstance(p, str):
            plist: list[str] = [p]
        elif isinstance(p, list) and p and all(_is_int(x) for x in p):
            plist = [" ".join(map(str, p))]  # token ids: one token each
        elif isinstance(p, list) and p and all(isinstance(x, str) for x in p):
            plist = list(p)
        else:
            raise ApiError(400, "'prompt' must be a string, a list of strings or a list of token ids", "prompt")
        prompts = plist
        prompt_tokens = [len(x.split()) for x in plist]
    if "model" in req and req["model"] is not None:
        if not isinstance(req["model"], str):
            raise ApiError(400, "'model' must be a string", "model")
        if req["model"] != model:
            raise ApiError(404, f"The model `{req['model']}` does not exist.", "model")

    def opt(name: str, ok: Any, what: str) -> Any:
        v = req.get(name)
        if v is not None and not ok(v):
            raise ApiError(400, f"'{name}' must be {what}; got {_short(v)}", name)
        return v

    mt_name = "max_completion_tokens" if chat and req.get("max_completion_tokens") is not None else "max_tokens"
    max_tokens = opt(mt_name, lambda v: _is_int(v) and v >= 1, "an integer >= 1")
    n = opt("n", lambda v: _is_int(v) and 1 <= v <= 16, "an integer from 1 to 16")
    temperature = opt("temperature", lambda v: _is_num(v) and 0 <= v <= 2, "a number from 0 to 2")
    opt("top_p", lambda v: _is_num(v) and 0 < v <= 1, "a number in (0, 1]")
    stream = opt("stream", lambda v: isinstance(v, bool), "a boolean")
    stop = opt("stop", lambda v: isinstance(v, str) or (isinstance(v, list) and len(v) <= 4 and all(
        isinstance(s, str) for s in v)), "a string or a list of at most 4 strings")
    seed = opt("seed", _is_int, "an integer")
    so = opt("stream_options", lambda v: isinstance(v, dict), "an object")
    if so is not None and not stream:
        raise ApiError(400, "'stream_options' is only allowed when 'stream' is true", "stream_options")
    logprobs: int | None = None
    if chat:
        lp = opt("logprobs", lambda v: isinstance(v, bool), "a boolean")
        top = opt("top_logprobs", lambda v: _is_int(v) and 0 <= v <= 20, "an integer from 0 to 20")
        if top is not None and not lp:
            raise ApiError(400, "'top_logprobs' requires 'logprobs' to be true", "top_logprobs")
        logprobs = (top or 0) if lp else None
    else:
        logprobs = opt("logprobs", lambda v: _is_int(v) and 0 <= v <= 5, "an integer from 0 to 5")
    for ptoks in prompt_tokens:
        what = "messages" if chat else "prompt"
        if ptoks > max_model_len:
            raise ApiError(400, f"This model's maximum context length is {max_model_len} tokens. However, your "
                                f"request has {ptoks} input tokens. Please reduce the length of the {what}.", what)
        if max_tokens is not None and ptoks + max_tokens > max_model_len:
            raise ApiError(400, f"This model's maximum context length is {max_model_len} tokens. However, you "
                                f"requested {ptoks + max_tokens} tokens ({ptoks} in the {what}, {max_tokens} in "
                                f"the completion). Please reduce the length of the {what} or completion.", mt_name)
    return ApiRequest(model=model, prompts=prompts, prompt_tokens=prompt_tokens, max_tokens=max_tokens,
                      n=n or 1, temperature=temperature, seed=seed,
                      stop=[stop] if isinstance(stop, str) else list(stop or []), stream=bool(stream),
                      include_usage=bool(so and so.get("include_usage")), logprobs=logprobs,
                      as_ids=req.get("return_tokens_as_token_ids") is True, ignore_eos=req.get("ignore_eos") is True)


def generate(r: ApiRequest, tokens: int, eos_after: int | None, max_model_len: int, rng: random.Random,
             defects: frozenset[str] = frozenset()) -> list[Choice]:
    """The choices of a validated request (``n`` per prompt, index = prompt * n + choice).

    Tokens: greedy (temperature 0) from (prompt, position), every choice alike; seeded from
    (prompt, seed, choice, position); otherwise from ``rng``. Length: ``max_tokens``
    (finish "length"), else ``tokens`` then a natural end (finish "stop"; at most what the
    context leaves), ``eos_after`` stops earlier; stop strings cut it (finish "stop")."""
    n = 1 if "ignore_n" in defects else r.n
    greedy = r.temperature == 0 and "ignore_seed" not in defects
    seeded = r.seed is not None and "ignore_seed" not in defects
    out = []
    for j, (key, ptoks) in enumerate(zip(r.prompts, r.prompt_tokens)):
        for c in range(n):
            if r.max_tokens is not None:
                count, finish = r.max_tokens + (3 if "ignore_max_tokens" in defects else 0), "length"
            elif r.ignore_eos:
                count, finish = max_model_len - ptoks, "length"
            else:
                count = min(tokens, max_model_len - ptoks)
                finish = "stop" if count == tokens else "length"
            if eos_after is not None and not r.ignore_eos and eos_after < count:
                count, finish = eos_after, "stop"
            if greedy:
                ids = [token_ranking(key, p)[0] for p in range(count)]
            elif seeded:
                ids = [_hash(key, r.seed, c, p) % len(VOCAB) for p in range(count)]
            else:
                ids = [rng.randrange(len(VOCAB)) for _ in range(count)]
            texts = [" " + VOCAB[i] for i in ids]
            if r.stop and "ignore_stop" not in defects:
                texts, hit = cut_at_stop(texts, r.stop)
                ids = ids[:len(texts)]
                if hit:
                    finish = "stop"
            if "finish_always_stop" in defects:
                finish = "stop"
            out.append(Choice(j * n + c, key, ids, texts, finish))
    return out


def _token_str(tid: int, as_ids: bool) -> str:
    return f"token_id:{tid}" if as_ids else " " + VOCAB[tid]


def chat_logprobs(ch: Choice, a: int, b: int, k: int, as_ids: bool) -> dict[str, Any]:
    """Chat ``logprobs`` for tokens a..b of a choice (one ``content`` entry per token)."""
    content = []
    for p in range(a, b):
        t = _token_str(ch.ids[p], as_ids)
        tops = []
        for tid, lp in top_logprobs(ch.key, p, k):
            s = _token_str(tid, as_ids)
            tops.append({"token": s, "logprob": lp, "bytes": list(s.encode())})
        content.append({"token": t, "logprob": logprob_of(ch.key, p, ch.ids[p]), "bytes": list(t.encode()),
                        "top_logprobs": tops})
    return {"content": content}


def completion_logprobs(ch: Choice, a: int, b: int, k: int, as_ids: bool) -> dict[str, Any]:
    """Completions ``logprobs`` for tokens a..b (``text_offset`` from the completion's start;
    ``top_logprobs`` holds the top k and the chosen token, as vLLM's)."""
    off = sum(len(t) for t in ch.texts[:a])
    out: dict[str, Any] = {"tokens": [], "token_logprobs": [], "top_logprobs": [], "text_offset": []}
    for p in range(a, b):
        t = _token_str(ch.ids[p], as_ids)
        lp = logprob_of(ch.key, p, ch.ids[p])
        tops = {_token_str(tid, as_ids): v for tid, v in top_logprobs(ch.key, p, k)}
        tops.setdefault(t, lp)
        out["tokens"].append(t)
        out["token_logprobs"].append(lp)
        out["top_logprobs"].append(tops)
        out["text_offset"].append(off)
        off += len(ch.texts[p])
    return out


_NOT_JSON = object()  # a request body that did not parse


_CL_RE = re.compile(rb"(?im)^content-length[ \t]*:[ \t]*(\d+)")


class HTTPProtocol(asyncio.Protocol):
    def __init__(self, state: State) -> None:
        self.state = state
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.reads = 0
        self.busy = False
        self.cid = 0
        self.closed = False
        self.recv_stall_ns = 0
        self.idle_timer: asyncio.TimerHandle | None = None

    # asyncio callbacks -----------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        st = self.state
        st.conns_opened += 1
        st.conns_open += 1
        self.cid = st.conns_opened
        self._arm_idle_timer()

    def _arm_idle_timer(self) -> None:
        """Close a connection idle for --keep-alive-timeout-ms, as uvicorn does (5 s in vLLM)."""
        t = self.state.keep_alive_timeout_s
        if t is not None:
            self.idle_timer = asyncio.get_running_loop().call_later(t, self._idle_close)

    def _idle_close(self) -> None:
        if not self.busy and not self.closed:
            self.transport.close()  # type: ignore[union-attr]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.idle_timer is not None:
            self.idle_timer.cancel()
        self.state.conns_open -= 1

    def data_received(self, data: bytes) -> None:
        t = perf_counter_ns()  # stamp first: this is when the bytes left the kernel
        self.buf += data
        self.reads += 1
        sel = self.state.selector
        self.recv_stall_ns = sel.stall_ns if sel is not None else 0
        if not self.busy:
            self._try_request(t)

    # request framing ------------------------------------------------------------
    def _try_request(self, t: int) -> None:
        buf = self.buf
        i = buf.find(b"\r\n\r\n")
        if i < 0:
            return
        m = _CL_RE.search(buf, 0, i)
        cl = int(m.group(1)) if m else 0
        end = i + 4 + cl
        if len(buf) < end:
            return
        head, body = buf[:i], buf[i + 4:end]
        self.buf = buf[end:]
        reads, self.reads = self.reads, 0
        self.busy = True
        if self.idle_timer is not None:
            self.idle_timer.cancel()
            self.idle_timer = None
        asyncio.get_running_loop().create_task(self._handle(head, body, t, reads))

    async def _handle(self, head: bytes, body: bytes, t_recv: int, reads: int) -> None:
        close = False
        try:
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            headers: dict[str, str] = {}
            for line in lines[1:]:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
            close = headers.get("connection", "").lower() == "close"
            close = await self._route(method, target, headers, body, t_recv, reads) or close
        except Exception as e:  # a bug here must not hang the client
            self._send_json(500, {"error": {"message": f"fake server error: {e!r}", "type": "server_error"}})
        if self.closed:
            return
        if close:
            self.transport.close()  # type: ignore[union-attr]
            return
        self.busy = False
        self._arm_idle_timer()
        if self.buf:
            self._try_request(perf_counter_ns())

    # responses -------------------------------------------------------------------
    def _write(self, data: bytes) -> None:
        if not self.closed:
            self.transport.write(data)  # type: ignore[union-attr]

    def _send(self, status: int, ctype: str, body: bytes, extra: str = "") -> None:
        reason = {200: "OK", 401: "Unauthorized", 404: "Not Found", 400: "Bad Request",
                  429: "Too Many Requests", 500: "Internal Server Error", 503: "Service Unavailable"
                  }.get(status, "Status")
        self._write(
            f"HTTP/1.1 {status} {reason}\r\ncontent-type: {ctype}\r\ncontent-length: {len(body)}\r\n"
            f"server: fake-openai\r\ndate: {email.utils.formatdate(usegmt=True)}\r\n{extra}\r\n".encode() + body)

    def _send_json(self, status: int, obj: Any) -> None:
        self._send(status, "application/json", json.dumps(obj).encode())

    async def _route(self, method: str, target: str, headers: dict[str, str], body: bytes,
                     t_recv: int, reads: int) -> bool:
        st = self.state
        path, _, query = target.partition("?")
        if path == "/health":
            if st.healthy_at_ns and perf_counter_ns() < st.healthy_at_ns:
                self._send_json(503, {"detail": "starting"})
            else:
                self._send(200, "text/plain", b"")
        elif path == "/metrics":
            mode = st.opts.get("metrics") or "prom"
            if mode == "none":
                self._send_json(404, {"detail": "Not Found"})
            elif mode == "html":
                self._send(200, "text/html; charset=utf-8", b"<!DOCTYPE html><html><head><title>Login</title>"
                                                             b"</head><body>Please sign in</body></html>")
            else:
                text = st.metrics()
                if mode in ("inf", "nan"):  # a broken exporter: the TTFT histogram's sum is not a number
                    text = re.sub(r'(?m)^(vllm:time_to_first_token_seconds_sum\{[^}]*\}) .*$',
                                  lambda m: m.group(1) + (" +Inf" if mode == "inf" else " NaN"), text)
                self._send(200, "text/plain; version=0.0.4; charset=utf-8", text.encode())
        elif path == "/_truth":
            self._send_json(200, st.truth)
        elif path == "/_stats":
            self._send_json(200, {"connections_opened": st.conns_opened, "connections_open": st.conns_open,
                                  "requests": st.n_req, "pid": os.getpid()})
        elif path == "/_reset":
            st.truth.clear()
            self._send_json(200, {"ok": True})
        elif path.startswith("/v1/"):
            if (st.api_key is not None and headers.get("authorization") != f"Bearer {st.api_key}"
                    and "any_key" not in st.defects):
                given = headers.get("authorization", "").removeprefix("Bearer ").strip()
                self._send_json(401, {"error": {
                    "message": f"Incorrect API key provided: {given or '(none)'}.",
                    "type": "invalid_request_error", "code": "invalid_api_key"}})
                return False
            if path == "/v1/models" and method == "GET" and "models_bad_shape" in st.defects:
                self._send_json(200, [st.model])
            elif path == "/v1/models" and method == "GET":
                entry = {"id": st.model, "object": "model", "created": 0, "owned_by": "fake"}
                if st.opts.get("strict") or st.defects:  # like vLLM's: the context length
                    entry["max_model_len"] = st.max_model_len
                self._send_json(200, {"object": "list", "data": [entry]})
            elif path in ("/v1/chat/completions", "/v1/completions") and method == "POST":
                try:
                    req = json.loads(body or b"{}")
                except (ValueError, RecursionError):  # nested too deep for the parser counts as not JSON
                    req = _NOT_JSON
                return await self._completion(path, headers, req, t_recv, reads)
            else:
                self._send_json(404, {"error": {"message": f"no route {method} {path}", "type": "NotFound"}})
        else:
            self._send_json(404, {"detail": "Not Found"})
        return False

    def _options(self, headers: dict[str, str], req: dict[str, Any]) -> dict[str, Any]:
        o = dict(self.state.opts)
        fake = req.get("fake") if isinstance(req, dict) else None
        if isinstance(fake, dict):
            for k, v in fake.items():
                k = k.replace("-", "_")
                if k in DEFAULTS:
                    o[k] = _convert(k, v)
        for k, v in headers.items():
            if k.startswith("x-fake-"):
                key = k[7:].replace("-", "_")
                if key in DEFAULTS:
                    o[key] = _convert(key, v)
        return o

    def _pick_ttft(self, o: dict[str, Any]) -> float:
        st = self.state
        if o["ttft_schedule"]:
            sched = o["ttft_schedule"]
            v = sched[st.n_sched % len(sched)]
            st.n_sched += 1
            return v
        if o["ttft_range"]:
            lo, hi = o["ttft_range"]
            return st.rng.uniform(lo, hi)
        return o["ttft_ms"]

    async def _completion(self, path: str, headers: dict[str, str], req: dict[str, Any],
                          t_recv: int, reads: int) -> bool:
        st = self.state
        o = self._options(headers, req)
        st.n_req += 1
        chat = path.endswith("chat/completions")
        api: ApiRequest | None = None
        if o["strict"] or st.defects:
            try:
                if req is _NOT_JSON:
                    raise ApiError(400, "the request body is not valid JSON (or is nested too deep)", hang=True)
                if isinstance(req, dict) and "unknown_field_500" in st.defects:
                    unknown = sorted(set(req) - (CHAT_FIELDS if chat else COMPLETION_FIELDS))
                    if unknown:
                        self._send_json(500, {"error": {"message": f"Internal Server Error: unexpected field "
                                                                   f"{unknown[0]!r}", "type": "InternalServerError",
                                                        "param": None, "code": 500}})
                        return False
                api = validate_request(req, chat, st.model, st.max_model_len)
            except ApiError as e:
                return await self._api_error(e)
        elif req is _NOT_JSON:
            self._send_json(400, {"error": {"message": "body is not JSON", "type": "BadRequestError"}})
            return False
        if o["status"]:
            # echoes the bearer token it got, as some real servers do: clients must scrub it
            given = headers.get("authorization", "").removeprefix("Bearer ").strip()
            self._send_json(o["status"], {"error": {
                "message": f"fake failure with status {o['status']}" + (f" for key {given}" if given else ""),
                "type": "server_error", "code": o["status"]}})
            return False
        reply = o["reply"]
        if reply == "html":
            self._send(200, "text/html; charset=utf-8",
                       b"<!DOCTYPE html><html><head><title>Welcome to nginx!</title></head>"
                       b"<body><h1>Welcome to nginx!</h1></body></html>")
            return False
        if reply == "json":
            self._send_json(200, {"status": "ok", "result": {"answer": "hello"}})
            return False
        if api is not None:
            return await self._strict(api, o, chat, t_recv, reads)
        model = req.get("model") or st.model
        if "messages" in req:
            prompt = " ".join(str(m.get("content", "")) for m in req["messages"] if isinstance(m, dict))
        else:
            prompt = str(req.get("prompt", ""))
        prompt_tokens = max(1, len(prompt.split()))
        max_tokens = req.get("max_tokens") or req.get("max_completion_tokens")
        n = o["tokens"] if (o["ignore_max_tokens"] or not max_tokens) else int(max_tokens)
        finish = "length"
        if o["eos_after"] is not None and o["eos_after"] < n:
            n = o["eos_after"]
            finish = "stop"
        ttft_ms = self._pick_ttft(o)
        token_ms = o["token_ms"]
        created = int(time.time())
        rid = ("chatcmpl-" if chat else "cmpl-") + f"fake{st.n_req:06d}{st.rng.getrandbits(32):08x}"
        truth = self._new_truth(rid, o, t_recv, reads, ttft_ms, token_ms)

        if reply == "nonstream" or not req.get("stream"):
            await asyncio.sleep(max(0.0, ttft_ms / 1000))
            text = " ".join(f"tok{i}" for i in range(n))
            self._send_json(200, {"id": rid, "object": "chat.completion" if chat else "text_completion",
                                  "created": created, "model": model,
                                  "choices": [{"index": 0, "finish_reason": finish,
                                               **({"message": {"role": "assistant", "content": text}}
                                                  if chat else {"text": text})}],
                                  "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": n,
                                            "total_tokens": prompt_tokens + n}})
            return False

        so = req.get("stream_options") or {}
        want_usage = o["usage"] == "always" or (o["usage"] == "auto" and bool(so.get("include_usage")))
        obj_name = "chat.completion.chunk" if chat else "text_completion"
        head_tmpl = '{"id":"%s","object":"%s","created":%d,"model":%s,"choices":[' % (
            rid, obj_name, created, json.dumps(model))

        def chunk(choice: str) -> bytes:
            return ("data: " + head_tmpl + choice + "]}\n\n").encode()

        # the events: (is_token, n_tokens, sse bytes)
        events: list[tuple[bool, int, bytes]] = []
        if reply == "sse_other":
            events = [(True, 1, b'data: {"message":"hello","done":false}\n\n')]
        else:
            if chat and o["role_chunk"]:
                events.append((False, 0, chunk('{"index":0,"delta":{"role":"assistant","content":""},'
                                               '"logprobs":null,"finish_reason":null}')))
            k = max(1, o["tokens_per_chunk"])
            i = 0
            while i < n:
                m = min(k, n - i)
                text = "".join(f" tok{j}" for j in range(i, i + m))
                last = i + m >= n
                fr = json.dumps(finish) if last else "null"
                if chat and i >= o["reasoning_tokens"] and o["tool_calls"]:
                    fn = ('"name":"get_weather","arguments":%s' % json.dumps(text) if i == o["reasoning_tokens"]
                          else '"arguments":%s' % json.dumps(text))
                    ch = ('{"index":0,"delta":{"tool_calls":[{"index":0,%s"function":{%s}}]},'
                          '"logprobs":null,"finish_reason":%s}') % (
                        '"id":"call_0","type":"function",' if i == o["reasoning_tokens"] else "", fn,
                        '"tool_calls"' if last else "null")
                elif chat:
                    field = o["reasoning_field"] if i < o["reasoning_tokens"] else "content"
                    ch = '{"index":0,"delta":{"%s":%s},"logprobs":null,"finish_reason":%s}' % (
                        field, json.dumps(text), fr)
                else:
                    ch = '{"index":0,"text":%s,"logprobs":null,"finish_reason":%s}' % (json.dumps(text), fr)
                events.append((True, m, chunk(ch)))
                if o["empty_chunks"] and not last:
                    events.append((False, 0, chunk('{"index":0,"delta":{"content":""},"logprobs":null,'
                                                   '"finish_reason":null}' if chat else
                                                   '{"index":0,"text":"","logprobs":null,"finish_reason":null}')))
                i += m
            if want_usage:
                nu = n if o["usage_tokens"] is None else o["usage_tokens"]
                events.append((False, 0, ("data: " + head_tmpl + '],"usage":{"prompt_tokens":%d,'
                                          '"total_tokens":%d,"completion_tokens":%d}}\n\n'
                                          % (prompt_tokens, prompt_tokens + nu, nu)).encode()))
        done = b"data: [DONE]\n\n"
        return await self._serve(o, events, done, truth, t_recv, ttft_ms, token_ms, finish, prompt_tokens,
                                 head_tmpl, chat)

    def _new_truth(self, rid: str, o: dict[str, Any], t_recv: int, reads: int, ttft_ms: float,
                   token_ms: float) -> dict[str, Any]:
        truth: dict[str, Any] = {"recv_ns": t_recv, "first_token_ns": None, "last_token_ns": None,
                                 "end_ns": None, "ttft_ms": None, "injected_ttft_ms": ttft_ms,
                                 "injected_token_ms": token_ms, "conn_id": self.cid,
                                 "request_reads": reads, "tokens": 0, "events": 0, "burst": o["burst"],
                                 # the server's run-queue wait in the wakes that read the request
                                 # and wrote the first token (a starved server, not the client)
                                 "recv_stall_ms": self.recv_stall_ns / 1e6, "write_stall_ms": None}
        self.state.truth[rid] = truth
        return truth

    async def _serve(self, o: dict[str, Any], events: list[tuple[bool, int, Any]], done: bytes,
                     truth: dict[str, Any], t_recv: int, ttft_ms: float, token_ms: float, finish: str,
                     prompt_tokens: int, head_tmpl: str, chat: bool) -> bool:
        """Serve a stream's events: through the --capacity queue or --max-running, or hang/endless."""
        st = self.state
        if st.capacity is not None:
            await self._capacity_slot()
            if self.closed:  # the client left while queued
                self._capacity_release()
                return True
            t_start = perf_counter_ns()
            truth["queue_ms"] = (t_start - t_recv) / 1e6
            try:
                st.running += 1
                return await self._stream(o, events, done, truth, t_recv, ttft_ms, token_ms, finish,
                                          prompt_tokens, t_start=t_start)
            finally:
                st.running -= 1
                self._capacity_release()
        if st.sem is not None:
            st.waiting += 1
            await st.sem.acquire()
            st.waiting -= 1
        st.running += 1
        try:
            if o["hang"]:  # read the request, never answer
                while not self.closed:
                    await asyncio.sleep(0.05)
                return True
            if o["endless"]:
                return await self._endless(o, head_tmpl, chat, ttft_ms, token_ms, t_recv)
            return await self._stream(o, events, done, truth, t_recv, ttft_ms, token_ms, finish, prompt_tokens)
        finally:
            st.running -= 1
            if st.sem is not None:
                st.sem.release()

    async def _api_error(self, e: ApiError) -> bool:
        """Answer a rejected request (strict), or break the rule as a defect says."""
        d = self.state.defects
        if e.hang and "hang_on_bad_body" in d:
            while not self.closed:
                await asyncio.sleep(0.05)
            return True
        status = 500 if "errors_500" in d else e.status
        if "error_body_plain" in d:
            self._send(status, "text/plain; charset=utf-8", b"bad request")
        else:
            self._send_json(status, e.body())
        return False

    async def _strict(self, r: ApiRequest, o: dict[str, Any], chat: bool, t_recv: int, reads: int) -> bool:
        """A validated request answered like a conformant server (module docstring, strict mode)."""
        st = self.state
        d = st.defects
        choices = generate(r, o["tokens"], o["eos_after"], st.max_model_len, st.rng, d)
        prompt_tokens = sum(r.prompt_tokens)
        sent = sum(len(c.ids) for c in choices)
        ct = sent + (1 if "wrong_usage" in d else 0) if o["usage_tokens"] is None else o["usage_tokens"]
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": ct, "total_tokens": prompt_tokens + ct}
        top_k = None if "no_logprobs" in d else r.logprobs
        lp_fn = chat_logprobs if chat else completion_logprobs
        ttft_ms = self._pick_ttft(o)
        token_ms = o["token_ms"]
        created = int(time.time())
        rid = ("chatcmpl-" if chat else "cmpl-") + f"fake{st.n_req:06d}{st.rng.getrandbits(32):08x}"
        truth = self._new_truth(rid, o, t_recv, reads, ttft_ms, token_ms)
        obj_name = "chat.completion" if chat else "text_completion"

        def logprobs(ch: Choice, a: int, b: int) -> dict[str, Any] | None:
            return None if top_k is None else lp_fn(ch, a, b, top_k, r.as_ids)

        if o["reply"] == "nonstream" or not r.stream:
            await asyncio.sleep(max(0.0, ttft_ms / 1000))
            out = [{"index": c.index, **({"message": {"role": "assistant", "content": c.text}} if chat else
                                        {"text": c.text}),
                    "logprobs": logprobs(c, 0, len(c.ids)), "finish_reason": c.finish} for c in choices]
            self._send_json(200, {"id": rid, "object": obj_name, "created": created, "model": r.model,
                                  "choices": out, "usage": usage})
            return False

        sep = "\n" if "bad_sse_framing" in d else "\n\n"
        n_chunk = [0]

        def chunk(chs: list[dict[str, Any]], use: dict[str, Any] | None = None) -> bytes:
            n_chunk[0] += 1
            obj: dict[str, Any] = {"id": rid + (f"-{n_chunk[0]}" if "mixed_ids" in d else ""),
                                   "object": obj_name + ("" if not chat else ".chunk"), "created": created,
                                   "model": r.model, "choices": chs}
            if use is not None:
                obj["usage"] = use
            return ("data: " + json.dumps(obj) + sep).encode()

        def token_choice(c: Choice, a: int, b: int, text: str) -> dict[str, Any]:
            fr = c.finish if b >= len(c.ids) else None
            body = {"delta": {"content": text}} if chat else {"text": text}
            return {"index": c.index, **body, "logprobs": logprobs(c, a, b), "finish_reason": fr}

        def mixed(c: Choice, a: int, b: int) -> bytes:
            # mix_streams: the tokens (text and logprobs) the other most recently started stream
            # writes at these positions, under this stream's index and finish
            others = [x for x in st.live if x is not choices]
            if others:
                oc = others[-1][c.index] if c.index < len(others[-1]) else others[-1][0]
                if len(oc.ids) >= b:
                    ch = token_choice(oc, a, b, "".join(oc.texts[a:b]))
                    ch.update(index=c.index, finish_reason=c.finish if b >= len(c.ids) else None)
                    return chunk([ch])
            return chunk([token_choice(c, a, b, "".join(c.texts[a:b]))])

        events: list[tuple[bool, int, Any]] = []
        if chat and o["role_chunk"]:
            for c in choices:
                events.append((False, 0, chunk([{"index": c.index, "delta": {
                    "role": "assistant", "content": "Hi" if "role_chunk_content" in d else ""},
                    "logprobs": None, "finish_reason": None}])))
        k = max(1, o["tokens_per_chunk"])
        groups = [[(a, min(a + k, len(c.ids))) for a in range(0, len(c.ids), k)] for c in choices]
        for rnd in range(max((len(g) for g in groups), default=0)):  # the choices round robin
            for c, g in zip(choices, groups):
                if rnd < len(g):
                    a, b = g[rnd]
                    if "mix_streams" in d:
                        events.append((True, b - a, lambda c=c, a=a, b=b: mixed(c, a, b)))
                    else:
                        events.append((True, b - a, chunk([token_choice(c, a, b, "".join(c.texts[a:b]))])))
        for c, g in zip(choices, groups):
            if not g:  # a stop string at once: no token, only the finish
                events.append((False, 0, chunk([token_choice(c, 0, 0, "")])))
        if o["usage"] == "always" or (o["usage"] == "auto" and r.include_usage):
            events.append((False, 0, chunk([], usage)))
        done = b"" if "no_done" in d else ("data: [DONE]" + sep).encode()
        head_tmpl = '{"id":"%s","object":"%s.chunk","created":%d,"model":%s,"choices":[' % (
            rid, obj_name, created, json.dumps(r.model))
        st.live.append(choices)
        try:
            return await self._serve(o, events, done, truth, t_recv, ttft_ms, token_ms,
                                     choices[0].finish if choices else "stop", prompt_tokens, head_tmpl, chat)
        finally:
            for i, x in enumerate(st.live):
                if x is choices:
                    del st.live[i]
                    break

    async def _capacity_slot(self) -> None:
        """Wait (FIFO) for one of the ``--capacity`` slots."""
        st = self.state
        if st.cap_free > 0 and not st.cap_queue:
            st.cap_free -= 1
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        st.cap_queue.append(fut)
        st.waiting += 1
        try:
            await fut  # the releaser hands its slot over: cap_free is not incremented for it
        except BaseException:
            if fut.done() and not fut.cancelled():
                self._capacity_release()  # the slot was handed over as we were cancelled
            elif fut in st.cap_queue:
                st.cap_queue.remove(fut)
            raise
        finally:
            st.waiting -= 1

    def _capacity_release(self) -> None:
        st = self.state
        while st.cap_queue:
            fut = st.cap_queue.popleft()
            if not fut.done():
                fut.set_result(None)
                return
        st.cap_free += 1

    async def _endless(self, o: dict[str, Any], head_tmpl: str, chat: bool, ttft_ms: float, token_ms: float,
                       t_recv: int) -> bool:
        """A stream that never ends: token events (or only ``: ping`` comments) until the client leaves."""
        self._write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
                    b"transfer-encoding: chunked\r\nserver: fake-openai\r\n\r\n")
        await self._sleep_until(t_recv + int(ttft_ms * 1e6))
        i = 0
        while not self.closed:
            if o["endless"] == "pings":
                payload = b": ping\n\n"
            else:
                ch = ('{"index":0,"delta":{"content":%s},"logprobs":null,"finish_reason":null}' if chat else
                      '{"index":0,"text":%s,"logprobs":null,"finish_reason":null}') % json.dumps(f" tok{i}")
                payload = ("data: " + head_tmpl + ch + "]}\n\n").encode()
            self._write(b"%x\r\n%s\r\n" % (len(payload), payload))
            i += 1
            await asyncio.sleep(max(0.001, token_ms / 1000))
        return True

    def _stall_ms(self) -> float | None:
        sel = self.state.selector
        return sel.stall_ns / 1e6 if sel is not None else None

    async def _sleep_until(self, deadline_ns: int) -> None:
        d = (deadline_ns - perf_counter_ns()) / 1e9
        if d > 0:
            await asyncio.sleep(d)

    async def _stream(self, o: dict[str, Any], events: list[tuple[bool, int, Any]], done: bytes,
                      truth: dict[str, Any], t_recv: int, ttft_ms: float, token_ms: float,
                      finish: str, prompt_tokens: int, t_start: int | None = None) -> bool:
        """One stream (already counted in ``running``); with --kv-cache-tokens / --preempt-above
        it holds its tokens in the KV cache while it runs and may count as a preemption."""
        st = self.state
        if not st.kv_metrics:
            return await self._stream_body(o, events, done, truth, t_recv, ttft_ms, token_ms, finish,
                                           prompt_tokens, t_start)
        if st.preempt_above is not None and st.running > st.preempt_above:
            st.preemptions += 1
            truth["preempted"] = True
        live = [prompt_tokens]
        st.kv_live[id(live)] = live
        try:
            return await self._stream_body(o, events, done, truth, t_recv, ttft_ms, token_ms, finish,
                                           prompt_tokens, t_start, live)
        finally:
            del st.kv_live[id(live)]

    async def _stream_body(self, o: dict[str, Any], events: list[tuple[bool, int, Any]], done: bytes,
                           truth: dict[str, Any], t_recv: int, ttft_ms: float, token_ms: float,
                           finish: str, prompt_tokens: int, t_start: int | None = None,
                           live: list[int] | None = None) -> bool:
        st = self.state
        close = o["close"]
        conn_hdr = "connection: close\r\n" if close else ""
        # the service clock: from the request's arrival, or (--capacity) from when it got a slot
        first_deadline = (t_recv if t_start is None else t_start) + int(ttft_ms * 1e6)
        step = int(token_ms * 1e6)
        token_writes: list[int] = []
        n_tokens = sum(e[1] for e in events if e[0])

        if o["burst"] or o["content_length"]:
            n_tok_events = sum(1 for e in events if e[0])
            body_parts = [p for p in [e[2]() if callable(e[2]) else e[2] for e in events] + [done] if p]
            await self._sleep_until(first_deadline + step * max(0, n_tok_events - 1))
            if o["content_length"]:
                body = b"".join(body_parts)
                data = (f"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
                        f"content-length: {len(body)}\r\nserver: fake-openai\r\n{conn_hdr}\r\n").encode() + body
            else:
                data = (f"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
                        f"transfer-encoding: chunked\r\nserver: fake-openai\r\n{conn_hdr}\r\n").encode()
                data += b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in body_parts) + b"0\r\n\r\n"
            t = perf_counter_ns()
            self._write(data)
            token_writes = [t] * n_tok_events
            if live is not None:
                live[0] += n_tokens
            truth["write_stall_ms"] = self._stall_ms()
            end = t
        else:
            until_close = o["framing"] == "close"
            if until_close:  # HTTP/1.1 without chunking or length: the body ends with the connection
                close = True
                self._write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
                            b"server: fake-openai\r\nconnection: close\r\n\r\n")
            else:
                self._write((f"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
                             f"transfer-encoding: chunked\r\nserver: fake-openai\r\n{conn_hdr}\r\n").encode())
            split = o["split_events"]
            pause = o["split_pause_ms"] / 1000
            k = 0
            for is_tok, n_ev, payload in events:
                if is_tok:
                    if o["drop_after"] is not None and k >= o["drop_after"]:
                        self.transport.abort()  # type: ignore[union-attr]
                        truth["dropped"] = True
                        return True
                    if o["cut_after"] is not None and k >= o["cut_after"]:
                        self.transport.close()  # type: ignore[union-attr]  # FIN after what was written
                        truth["cut"] = True
                        return True
                    await self._sleep_until(first_deadline + step * k)
                    k += 1
                if callable(payload):  # made when written (mix_streams)
                    payload = payload()
                frame = payload if until_close else b"%x\r\n%s\r\n" % (len(payload), payload)
                if split and split > 1 and len(frame) > split:
                    size = -(-len(frame) // split)
                    pieces = [frame[j:j + size] for j in range(0, len(frame), size)]
                    for p in pieces[:-1]:
                        self._write(p)
                        await asyncio.sleep(pause)
                    frame = pieces[-1]
                if is_tok:
                    token_writes.append(perf_counter_ns())
                    if len(token_writes) == 1:
                        truth["write_stall_ms"] = self._stall_ms()
                self._write(frame)
                if live is not None:
                    live[0] += n_ev
                if self.closed:
                    return True
            end = perf_counter_ns()
            if until_close:
                self._write(done)
            else:
                self._write((b"%x\r\n%s\r\n" % (len(done), done) if done else b"") + b"0\r\n\r\n")
        truth["end_ns"] = end
        if token_writes:
            first = token_writes[0]
            truth["first_token_ns"] = first
            truth["last_token_ns"] = token_writes[-1]
            truth["ttft_ms"] = (first - t_recv) / 1e6
            truth["token_ns"] = token_writes
            st.h_ttft.observe((first - t_recv) / 1e9)
            for a, b in zip(token_writes, token_writes[1:]):
                st.h_itl.observe((b - a) / 1e9)
        truth["tokens"] = n_tokens
        truth["events"] = len(token_writes)
        st.h_e2e.observe((end - t_recv) / 1e9)
        st.prompt_tokens += prompt_tokens
        st.gen_tokens += n_tokens
        st.success[finish] = st.success.get(finish, 0) + 1
        return close or o["close_silently"]


async def _watch_parent(ppid: int) -> None:
    while True:
        await asyncio.sleep(0.25)
        if os.getppid() != ppid:
            os._exit(0)


async def _main(args: argparse.Namespace, opts: dict[str, Any]) -> None:
    loop = asyncio.get_running_loop()
    state = State(opts, args.api_key, args.model, args.max_running, args.seed)
    if args.capacity is not None:
        state.capacity = state.cap_free = args.capacity
    state.kv_cache_tokens = args.kv_cache_tokens
    state.block_size = args.block_size
    state.max_model_len = args.max_model_len
    state.kv_cache_bytes = args.kv_cache_bytes
    state.preempt_above = args.preempt_above
    state.defects = frozenset(x for names in args.defect for x in names)
    if args.keep_alive_timeout_ms is not None:
        state.keep_alive_timeout_s = float(args.keep_alive_timeout_ms) / 1000
    sel = getattr(loop, "_selector", None)
    state.selector = sel if isinstance(sel, StallSelector) else None
    ssl_ctx = None
    if args.tls_cert:
        import ssl

        ssl_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ssl_ctx.load_cert_chain(args.tls_cert, args.tls_key)
    server = await loop.create_server(lambda: HTTPProtocol(state), args.host, args.port,
                                      reuse_address=True, backlog=1024, ssl=ssl_ctx)
    port = server.sockets[0].getsockname()[1]
    print(port, flush=True)
    if args.health_delay_s:
        state.healthy_at_ns = perf_counter_ns() + int(float(args.health_delay_s) * 1e9)
    if _startup_simulated(args):
        _say(f"INFO fake_openai: listening on http://{args.host}:{port}"
             + (f" (/health 503 for {args.health_delay_s} s)" if args.health_delay_s else ""))
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)
    if args.parent_pid:
        loop.create_task(_watch_parent(args.parent_pid))
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if args.max_lifetime_s:
        loop.call_later(float(args.max_lifetime_s), stop.set)
    async with server:
        await stop.wait()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pytest_inference.testing.fake_openai",
                                description="Fake OpenAI-compatible streaming server with injected delays "
                                            "and ground-truth timestamps (GET /_truth).")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 = any free port (printed on stdout)")
    p.add_argument("--model", default="fake-model")
    p.add_argument("--api-key", default=None, help="require this bearer token on /v1/* (401 otherwise)")
    p.add_argument("--keep-alive-timeout-ms", type=float, default=None,
                   help="close connections idle this long (uvicorn/vLLM: 5000)")
    p.add_argument("--max-running", type=int, default=None, help="requests served at once; others wait")
    p.add_argument("--capacity", type=int, default=None, metavar="K",
                   help="known capacity: K streams at once, the rest queue FIFO and their TTFT/token clock "
                        "starts when served (capacity K / (ttft_ms + (tokens-1) * token_ms) req/s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--defect", action="append", default=[], type=_defect_names, metavar="NAME[,NAME]",
                   help="break one rule of the OpenAI API (implies --strict; repeatable): " + ", ".join(DEFECTS))
    k = p.add_argument_group("what it says it can hold (vLLM's cache_config_info, KV usage, preemptions)")
    k.add_argument("--kv-cache-tokens", type=int, default=None, metavar="N",
                   help="expose vllm:cache_config_info (kv_cache_size_tokens N) and vllm:kv_cache_usage_perc "
                        "(tokens of the running streams / N) and vllm:num_preemptions_total on /metrics")
    k.add_argument("--block-size", type=int, default=16, help="block_size in cache_config_info (16)")
    k.add_argument("--max-model-len", type=int, default=2048,
                   help="the context length: kv_cache_max_concurrency = N / this, and (strict) longer "
                        "prompts + max_tokens are rejected (2048)")
    k.add_argument("--kv-cache-bytes", type=int, default=None, help="kv_cache_memory_bytes in cache_config_info")
    k.add_argument("--preempt-above", type=int, default=None, metavar="K",
                   help="count a preemption (vllm:num_preemptions_total) each time a stream starts while more "
                        "than K are running")
    p.add_argument("--tls-cert", default=None, help="serve https with this PEM certificate")
    p.add_argument("--tls-key", default=None, help="private key for --tls-cert")
    p.add_argument("--parent-pid", type=int, default=None, help="exit when this parent goes away")
    p.add_argument("--max-lifetime-s", type=float, default=None, help="exit by itself after this long")
    g = p.add_argument_group("startup simulation (before listening, in this order)")
    g.add_argument("--fork-children", type=int, default=0, metavar="N",
                   help="fork N children that only sleep (like vLLM's EngineCore/Worker); they survive the "
                        "server's own exit and die only with its process group (or after --children-max-s)")
    g.add_argument("--child-names", default=None,
                   help="comma-separated process names of the children, e.g. 'VLLM::EngineCore,VLLM::Worker'")
    g.add_argument("--worker-cpus", default=None,
                   help="CPU list a child named VLLM::Worker* binds itself to, as vLLM's CPU worker does ('0')")
    g.add_argument("--children-ignore-term", action="store_true", help="children ignore SIGTERM")
    g.add_argument("--children-max-s", type=float, default=300.0,
                   help="children exit by themselves after this long (a backstop; default 300)")
    g.add_argument("--startup-log", default=None, metavar="FILE",
                   help="replay these log lines on stderr; a line '<delay_s>\\t<text>' waits delay_s first "
                        "({pid} becomes the server's pid)")
    g.add_argument("--startup-line-s", type=float, default=0.0, help="delay before a line without a delay")
    g.add_argument("--startup-s", type=float, default=0.0, help="sleep this long before listening")
    g.add_argument("--die-during-start", action="store_true",
                   help="print an error line and exit with --die-exit-code instead of listening")
    g.add_argument("--die-exit-code", type=int, default=3)
    g.add_argument("--health-delay-s", type=float, default=0.0,
                   help="after listening, /health answers 503 for this long")
    for key, default in DEFAULTS.items():
        flag = "--" + key.replace("_", "-")
        if key in _BOOL:
            p.add_argument(flag, dest=key, default=default, action=argparse.BooleanOptionalAction)
        else:
            p.add_argument(flag, dest=key, default=default, metavar=key.upper())
    return p


def _defect_names(text: str) -> list[str]:
    names = [x.strip() for x in text.split(",") if x.strip()]
    bad = [x for x in names if x not in DEFECTS]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"unknown defect {', '.join(bad) or repr(text)}; "
                                         f"known: {', '.join(DEFECTS)}")
    return names


def _startup_simulated(args: argparse.Namespace) -> bool:
    return bool(args.fork_children or args.startup_log or args.startup_s or args.die_during_start
                or args.health_delay_s)


def _say(text: str) -> None:
    """One log line on stderr in one write (forked children write to the same pipe)."""
    try:
        os.write(2, (text + "\n").encode("utf-8", "replace"))
    except OSError:
        pass


def _set_comm(name: str) -> None:
    try:
        with open("/proc/self/comm", "w") as f:
            f.write(name[:15])
    except OSError:
        pass


def _child_main(name: str, ignore_term: bool, max_s: float, cpus: set[int] | None) -> None:
    if ignore_term:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _set_comm(name)
    if cpus:
        try:
            os.sched_setaffinity(0, cpus)
        except OSError:
            pass
    label = name.split("::")[-1] if "::" in name else name
    _say(f"({label} pid={os.getpid()}) INFO fake child {name!r} started")
    end = time.monotonic() + max_s
    while time.monotonic() < end:
        time.sleep(min(1.0, max(0.0, end - time.monotonic())))


def fork_children(n: int, names: list[str] | None = None, ignore_term: bool = False, max_s: float = 300.0,
                  worker_cpus: set[int] | None = None) -> list[int]:
    """Fork ``n`` children that sleep (call before any thread starts); returns their pids."""
    pids = []
    for i in range(n):
        name = names[i] if names and i < len(names) else f"fake-child-{i}"
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                _child_main(name, ignore_term, max_s, worker_cpus if name.startswith("VLLM::Worker") else None)
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        pids.append(pid)
    return pids


def simulate_startup(args: argparse.Namespace) -> None:
    """The startup part of a vLLM-like server, before it listens (see the module docstring)."""
    sys.stderr.flush()
    if args.fork_children:
        names = [x.strip() for x in args.child_names.split(",")] if args.child_names else None
        cpus = {int(x) for x in args.worker_cpus.split(",") if x.strip()} if args.worker_cpus else None
        pids = fork_children(args.fork_children, names, args.children_ignore_term, args.children_max_s, cpus)
        _say(f"INFO fake_openai: forked {len(pids)} children: {' '.join(map(str, pids))}")
    if args.startup_log:
        with open(args.startup_log, encoding="utf-8") as f:
            for raw in f:
                raw = raw.rstrip("\n")
                delay, text = args.startup_line_s, raw
                head, tab, rest = raw.partition("\t")
                if tab:
                    try:
                        delay, text = float(head), rest
                    except ValueError:
                        pass
                if delay > 0:
                    time.sleep(delay)
                _say(text.replace("{pid}", str(os.getpid())))
    if args.startup_s:
        time.sleep(args.startup_s)
    if args.die_during_start:
        _say("ERROR fake_openai: RuntimeError: Engine core initialization failed (simulated by "
             "--die-during-start)")
        sys.stdout.flush()
        os._exit(args.die_exit_code)


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.capacity is not None and args.capacity < 1:
        raise SystemExit(f"fake_openai: --capacity must be >= 1; got {args.capacity}")
    for flag, v, lo in (("--kv-cache-tokens", args.kv_cache_tokens, 1), ("--block-size", args.block_size, 1),
                        ("--max-model-len", args.max_model_len, 1), ("--kv-cache-bytes", args.kv_cache_bytes, 0),
                        ("--preempt-above", args.preempt_above, 0)):
        if v is not None and v < lo:
            raise SystemExit(f"fake_openai: {flag} must be >= {lo}; got {v}")
    opts = {k: _convert(k, getattr(args, k)) for k in DEFAULTS}
    if _startup_simulated(args):
        simulate_startup(args)
    try:
        with asyncio.Runner(loop_factory=lambda: asyncio.SelectorEventLoop(StallSelector())) as runner:
            runner.run(_main(args, opts))
    except KeyboardInterrupt:
        pass


def capacity_ttft_ms(rate_rps: float, n: int, k: int, ttft_ms: float, token_ms: float, tokens: int,
                     offsets_s: list[float] | None = None) -> list[float]:
    """The TTFT (ms, from each request's arrival) of ``n`` requests sent to a ``--capacity k``
    server at a constant ``rate_rps`` (or at ``offsets_s`` from the first, seconds), each
    streaming ``tokens`` tokens, on an ideal server (no overhead): the D/D/K FIFO recursion
    ``start_i = max(arrival_i, start_(i-k) + S)`` with ``S = ttft_ms + (tokens - 1) * token_ms``."""
    if rate_rps <= 0 and offsets_s is None:
        raise ValueError(f"rate_rps must be > 0; got {rate_rps!r}")
    s_ms = ttft_ms + max(0, tokens - 1) * token_ms
    arrivals = ([1000.0 * t for t in offsets_s] if offsets_s is not None
                else [1000.0 * i / rate_rps for i in range(n)])
    ends: list[float] = []  # each slot's release time; FIFO with equal service: i takes i-k's slot
    out = []
    for i, a in enumerate(arrivals):
        start = a if i < k else max(a, ends[i - k])
        ends.append(start + s_ms)
        out.append(start - a + ttft_ms)
    return out


def fake_headers(**opts: Any) -> dict[str, str]:
    """Per-request options as ``x-fake-*`` headers: ``fake_headers(ttft_ms=35, burst=True)``."""
    return {"x-fake-" + k.replace("_", "-"): (str(v).lower() if isinstance(v, bool) else
                                              ",".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v))
            for k, v in opts.items()}


# ---------------------------------------------------------------------------------
# the helper that starts it as a separate process


class FakeOpenAIServer:
    """Start the fake server in its own process; ``with FakeOpenAIServer(ttft_ms=30) as s:``.

    Keyword options become command-line flags (``ttft_ms=30`` → ``--ttft-ms 30``;
    booleans → ``--flag`` / ``--no-flag``; lists → comma-joined). ``base_url`` is the
    ``/v1`` URL, ``url`` the server root. The process is killed on ``stop()``/exit and
    exits by itself within 0.25 s if this process dies (it watches its parent pid; no
    PR_SET_PDEATHSIG, which would fire when the *thread* that started it ends).
    """

    def __init__(self, *args: str, start_timeout_s: float = 15.0, **opts: Any) -> None:
        self.args = list(args)
        for k, v in opts.items():
            flag = "--" + k.replace("_", "-")
            if isinstance(v, bool):
                self.args.append(flag if v else "--no-" + k.replace("_", "-"))
            elif v is None:
                continue
            elif isinstance(v, (list, tuple)) and k == "ttft_range":
                self.args += [flag, f"{v[0]}:{v[1]}"]
            elif isinstance(v, (list, tuple)):
                self.args += [flag, ",".join(str(x) for x in v)]
            else:
                self.args += [flag, str(v)]
        self.start_timeout_s = start_timeout_s
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self._log: Any = None

    @property
    def tls(self) -> bool:
        return "--tls-cert" in self.args

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    def start(self) -> "FakeOpenAIServer":
        self._log = tempfile.TemporaryFile()
        env = dict(os.environ)
        pkg_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env["PYTHONPATH"] = pkg_root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        cmd = [sys.executable, "-m", "pytest_inference.testing.fake_openai", "--port", "0",
               "--parent-pid", str(os.getpid()), *self.args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self._log, stdin=subprocess.DEVNULL,
                                     env=env)
        assert self.proc.stdout is not None
        deadline = time.monotonic() + self.start_timeout_s
        line = b""
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                break
            r, _, _ = select.select([self.proc.stdout], [], [], left)
            if r:
                b = os.read(self.proc.stdout.fileno(), 64)
                if not b:
                    break
                line += b
        try:
            self.port = int(line.strip().split()[0])
        except (ValueError, IndexError):
            err = self.stderr()
            self.stop()
            raise RuntimeError(f"fake OpenAI server did not start: {err.strip()[-2000:] or 'no output'}") from None
        return self

    def stderr(self) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read().decode("utf-8", "replace")

    def stop(self) -> None:
        from ..supervise import kill_and_reap

        if self.proc is not None:
            kill_and_reap(self.proc)
        self.proc = None

    def __enter__(self) -> "FakeOpenAIServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __del__(self) -> None:
        try:
            self.stop()
        except Exception:
            pass

    # inspection (plain http.client: outside any timed region, no proxies)
    def get_json(self, path: str) -> Any:
        return json.loads(self.get_text(path))

    def get_text(self, path: str) -> str:
        import http.client

        if self.tls:
            import ssl

            ctx = ssl._create_unverified_context()
            c: http.client.HTTPConnection = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=10,
                                                                        context=ctx)
        else:
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            c.request("GET", path)
            return c.getresponse().read().decode()
        finally:
            c.close()

    def truth(self) -> dict[str, dict[str, Any]]:
        """Ground truth per response id (see the module docstring)."""
        return self.get_json("/_truth")

    def stats(self) -> dict[str, Any]:
        return self.get_json("/_stats")

    def metrics(self) -> str:
        return self.get_text("/metrics")

    def reset(self) -> None:
        self.get_json("/_reset")


if __name__ == "__main__":
    main()
