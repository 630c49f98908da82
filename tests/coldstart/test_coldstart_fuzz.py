"""The vLLM log parser never raises, and what it returns is always sane."""

from __future__ import annotations

import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_inference.probes.coldstart import ColdStartRun, timeline_json
from pytest_inference.report.figures import timeline
from pytest_inference.vllm.startup_log import HIERARCHY, parse_log
from test_coldstart_vllm_log import PREFIXES, WORDINGS

KNOWN = [w[0] for w in WORDINGS] + [
    "Starting to load model openai/gpt-oss-120b...",
    "Warming up model for the compilation...",
    "Warming up done.",
    "[backbone] Starting torch.compile",
    "[backbone] saved AOT compiled function to /c/m",
    "[backbone] Directly load AOT compilation from path /c/m",
    "[backbone] Compiling model again due to a load failure from /c/m, reason: boom",
    "Cache the graph of compile range (1, 8192) for later use",
    "Starting vLLM server on http://127.0.0.1:8011",
    "Starting vLLM API server 0 on http://0.0.0.0:8000",
    "INFO:     Application startup complete.",
    "Loading model weights took 13.5083 GB",
    "Initializing a V1 LLM engine (v0.32.0) with config: model='m', enforce_eager=True, "
    "compilation_config={'mode': <CompilationMode.NONE: 0>}",
    "non-default args: {'model': 'x', 'enforce_eager': True, 'served_model_name': ['y']}",
    " ▄▄ ▄█ █     █     █ ▀▄▀ █  version 0.33.0",
    "Enforce eager set, disabling torch.compile",
]

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.sampled_from(["nan", "inf", "-inf", "1e400", "9" * 300, "1,2,3", ".", "-0", "0x10", "1_000"]),
)


@st.composite
def mangled_known(draw) -> str:
    """A known line: with a prefix, cut short, its numbers replaced, or repeated bits."""
    line = draw(st.sampled_from(KNOWN))
    line = draw(st.sampled_from(list(PREFIXES.values()))) + line
    how = draw(st.sampled_from(["as is", "truncate", "numbers", "insert", "double"]))
    if how == "truncate":
        line = line[: draw(st.integers(0, len(line)))]
    elif how == "numbers":
        out, i = [], 0
        for ch in line:
            if ch.isdigit():
                if i % 2 == 0:
                    out.append(str(draw(numbers)))
                i += 1
                continue
            out.append(ch)
        line = "".join(out)
    elif how == "insert":
        at = draw(st.integers(0, len(line)))
        line = line[:at] + draw(st.text(max_size=20)) + line[at:]
    elif how == "double":
        line = line + line
    return line


lines = st.one_of(st.text(max_size=300), mangled_known(), st.binary(max_size=200))
times = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**20, 10**20),
                  st.just("12.5"), st.booleans())


def _check(parsed) -> None:
    assert parsed.errors == 0, "a handler raised: a parser bug"
    names = {p.name for p in parsed.phases}
    for p in parsed.phases:
        assert p.name in HIERARCHY
        assert isinstance(p.duration_s, float | int) and math.isfinite(p.duration_s) and p.duration_s >= 0
        for t in (p.start_s, p.end_s):
            assert t is None or math.isfinite(t)
        if p.start_s is not None and p.end_s is not None:
            assert p.start_s <= p.end_s + 1e-9
        assert p.parent is None or (p.parent in HIERARCHY[p.name] and p.parent in names)
    covered = parsed.total_covered_s()
    assert math.isfinite(covered) and covered >= 0
    for k, v in parsed.facts.items():
        if isinstance(v, float):
            assert math.isfinite(v), k


@SETTINGS
@given(st.lists(st.tuples(times, lines), max_size=40))
def test_pairs_never_crash(pairs):
    _check(parse_log(pairs))


@SETTINGS
@given(st.lists(st.one_of(st.text(max_size=200), mangled_known()), max_size=40))
def test_whole_text_never_crashes(chunks):
    _check(parse_log("\n".join(chunks)))


@SETTINGS
@given(st.text(max_size=3000))
def test_arbitrary_unicode_text(text):
    _check(parse_log(text))


@SETTINGS
@given(st.lists(st.sampled_from(KNOWN), min_size=1, max_size=10), st.integers(1, 30),
       st.floats(0, 1e5, allow_nan=False))
def test_repeated_lines_stay_sane(block, repeats, t0):
    pairs = [(t0 + i * 0.5, line) for i, line in enumerate(block * repeats)]
    parsed = parse_log(pairs)
    _check(parsed)
    # the union of top-level phases never exceeds the time the lines span plus the stated lead-ins
    span_end = pairs[-1][0]
    assert parsed.total_covered_s() <= span_end + 1e-6


@SETTINGS
@given(st.lists(st.tuples(st.floats(0, 1e4, allow_nan=False), mangled_known()), max_size=30),
       st.floats(0, 1e4, allow_nan=False))
def test_run_json_and_rows_from_any_log(pairs, first_token):
    pairs.sort(key=lambda p: p[0])
    run = ColdStartRun.from_log(pairs, first_token_s=first_token)
    rows = run.timeline_rows()
    assert all(start <= end for _, start, end in rows)
    assert timeline(rows, "any log")["rows"] == [list(r) for r in rows]  # the suite's figure: never a FigureError
    timeline_json(run)  # allow_nan=False: raises on a NaN anywhere
