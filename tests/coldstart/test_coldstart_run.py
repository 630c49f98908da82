"""ColdStartRun, the timeline chart/JSON, floor math, and the weight-read bandwidth probe."""

from __future__ import annotations

import json
import os

import pytest

from pytest_inference.probes import coldstart
from pytest_inference.probes.coldstart import (
    MB,
    MiB,
    ColdStartRun,
    floor_ratio,
    floor_s,
    read_bandwidth,
    resident_fraction,
    spread_s,
    timeline_chart_png,
    timeline_json,
    weight_bytes,
    weight_files,
)
from pytest_inference.report.charts import PNG_SIGNATURE


@pytest.fixture
def mi300x_run(mi300x_log) -> ColdStartRun:
    pairs, m = mi300x_log
    return ColdStartRun.from_log(pairs, launched_at=1764327900.0, port_open_s=m["port_open_s"],
                                 health_s=m["health_s"], first_token_s=m["first_token_s"], cache_state="fresh",
                                 lock_wait_s=3.5)


# --------------------------------------------------------------------------- the run


def test_run_figures(mi300x_run):
    r = mi300x_run
    assert r.total_s == 61.02
    assert r.covered_s == pytest.approx(45.721745)
    assert r.uncovered_s == pytest.approx(61.02 - 45.721745)  # imports and process start-up, not in the log
    assert r.phase("graph_capture").duration_s == 11
    assert r.facts["log_clock"] == "harness" and r.facts["model"] == "openai/gpt-oss-120b"


def test_run_to_dict_is_json(mi300x_run):
    d = json.loads(json.dumps(mi300x_run.to_dict(), allow_nan=False))
    assert d["first_token_s"] == 61.02 and d["health_s"] == 60.46 and d["port_open_s"] == 60.41
    assert d["lock_wait_s"] == 3.5 and d["cache_state"] == "fresh"
    assert d["top_level"] == ["model_load", "engine_init", "api_server_start"]
    assert d["launched_at_iso"] == "2025-11-28T11:05:00Z"
    assert {p["name"] for p in d["phases"]} >= {"weights_load", "torch_compile", "graph_capture", "engine_init"}


def test_cache_state_is_checked():
    with pytest.raises(ValueError, match="cache_state"):
        ColdStartRun(cache_state="lukewarm")
    assert ColdStartRun(cache_state="warm").cache_state == "warm"


def test_timeline_rows(mi300x_run):
    rows = mi300x_run.timeline_rows()
    labels = [r[0] for r in rows]
    assert labels == [
        "model_load", "└ weights_load", "engine_init", "└ torch_compile", "└── dynamo_transform",
        "└── inductor_compile", "└ profiling", "└ kv_cache", "└ graph_capture", "api_server_start",
        "launch → port open", "launch → /health 200", "launch → first token"]
    assert rows[-1] == ("launch → first token", 0.0, 61.02)
    assert all(s <= e for _, s, e in rows)


def test_timeline_rows_skip_missing_milestones():
    run = ColdStartRun(health_s=12.0)
    assert run.timeline_rows() == [("launch → /health 200", 0.0, 12.0)]
    assert run.total_s is None and run.uncovered_s is None


def test_timeline_chart_and_json(mi300x_run):
    png = timeline_chart_png(mi300x_run)
    assert png is not None and png.startswith(PNG_SIGNATURE)
    assert timeline_chart_png(ColdStartRun()) is None
    doc = json.loads(timeline_json(mi300x_run))
    kinds = [(r["kind"], r["name"]) for r in doc["rows"]]
    assert ("milestone", "launch → first token") in kinds and ("phase", "graph_capture") in kinds
    assert next(r for r in doc["rows"] if r["name"] == "dynamo_transform")["depth"] == 2
    assert doc["run"]["first_token_s"] == 61.02


def test_real_cpu_recording_as_a_run(cpu_recording):
    rec = cpu_recording("fresh_compile")
    run = ColdStartRun.from_log(rec["lines"], port_open_s=rec["port_open_s"], health_s=rec["health_s"],
                                first_token_s=rec["first_token_s"])
    assert run.port_open_s <= run.health_s <= run.first_token_s
    # on this CPU box the log's phases explain under half of the cold start
    assert run.covered_s / run.total_s < 0.5
    assert timeline_chart_png(run).startswith(PNG_SIGNATURE)


# --------------------------------------------------------------------------- floor math


def test_floor():
    # 68 GB of weights at 2,800 MB/s: 24.3 s, the seed's weight phase
    assert floor_s(68e9, 2800) == pytest.approx(24.2857, rel=1e-4)
    assert floor_s(0, 100) == 0
    assert floor_s(140e9, 880) == pytest.approx(159.09, rel=1e-3)  # article B, tuned NFS
    with pytest.raises(ValueError):
        floor_s(1e9, 0)
    with pytest.raises(ValueError):
        floor_s(-1, 10)
    with pytest.raises(ValueError):
        floor_s(1e9, float("nan"))


def test_floor_ratio():
    assert floor_ratio(61.0, floor_s(68e9, 2800)) == pytest.approx(61 / 24.2857, rel=1e-4)
    assert floor_ratio(61.0, 0) is None and floor_ratio(None, 3) is None


def test_spread():
    runs = [ColdStartRun(first_token_s=x) for x in (60.8, 61.4, 61.0)]
    assert spread_s(runs) == pytest.approx(0.6)  # the seed's three restarts
    assert spread_s([60.8, None, 61.4, float("nan")]) == pytest.approx(0.6)
    assert spread_s([ColdStartRun(first_token_s=61.0)]) is None
    assert spread_s([]) is None


# --------------------------------------------------------------------------- the bandwidth probe


def _write(path, size: int) -> None:
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 4 * MiB)
            f.write(os.urandom(n))
            left -= n
        f.flush()
        os.fsync(f.fileno())


def _page_cache_droppable(path) -> bool:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    frac = resident_fraction(path)
    return frac is not None and frac < 0.05


def test_read_bandwidth_reads_every_byte(tmp_path):
    f = tmp_path / "model-00001-of-00001.safetensors"
    _write(f, 24 * MiB + 123)  # not a multiple of the block or of 4 KiB
    r = read_bandwidth([f], readers=4, block=1 * MiB)
    assert r.bytes == f.stat().st_size
    assert r.files == 1 and r.readers == 4 and r.block == MiB
    assert r.seconds > 0 and r.MBps == pytest.approx(r.bytes / r.seconds / MB)
    assert 1 < r.MBps < 1_000_000  # anything from a slow disk to a fast page cache, never nonsense
    assert r.fadvise is True and "POSIX_FADV_DONTNEED" in r.method
    assert ("O_DIRECT" in r.method) == r.o_direct


def test_read_bandwidth_buffered_path_drops_the_cache_first(tmp_path):
    f = tmp_path / "w.bin"
    _write(f, 8 * MiB)
    if not _page_cache_droppable(f):
        pytest.skip("this filesystem keeps pages on POSIX_FADV_DONTNEED (tmpfs?)")
    assert resident_fraction(f) < 0.05
    f.read_bytes()  # cached again
    assert resident_fraction(f) > 0.95
    r = read_bandwidth(f, o_direct=False)
    assert not r.o_direct and r.fadvise
    assert r.method.startswith("posix_fadvise(POSIX_FADV_DONTNEED) then buffered reads")
    assert r.cached_fraction is not None and r.cached_fraction < 0.05  # the clock started on a cold file
    assert r.bytes == 8 * MiB


def test_read_bandwidth_o_direct_bypasses_the_cache(tmp_path):
    f = tmp_path / "w.safetensors"
    _write(f, 8 * MiB)
    r = read_bandwidth(f)
    if not r.o_direct:
        pytest.skip(f"no O_DIRECT here: {r.method}")
    assert r.method.startswith("O_DIRECT")
    assert resident_fraction(f) < 0.05  # the read left nothing in the page cache


def test_read_bandwidth_falls_back_when_o_direct_fails(tmp_path, monkeypatch):
    f = tmp_path / "w.pt"
    _write(f, 2 * MiB)
    monkeypatch.setattr(coldstart, "_open_direct", lambda path, buf: (None, "O_DIRECT open failed: Invalid argument"))
    r = read_bandwidth(f)
    assert not r.o_direct and r.fadvise
    assert "O_DIRECT open failed" in r.method and "POSIX_FADV_DONTNEED" in r.method
    assert r.bytes == 2 * MiB


def test_read_bandwidth_keeping_the_cache_says_so(tmp_path):
    f = tmp_path / "w.gguf"
    _write(f, MiB)
    r = read_bandwidth(f, drop_cache=False)
    assert not r.fadvise and not r.o_direct and "page cache kept" in r.method


def test_weight_files_in_a_model_folder(tmp_path):
    (tmp_path / "sub").mkdir()
    for name, size in [("a.safetensors", 5000), ("sub/b.bin", 3000), ("c.pt", 10), ("d.gguf", 7), ("config.json", 99),
                       ("tokenizer.json", 99), ("e.safetensors.index.json", 50)]:
        _write(tmp_path / name, size)
    files = weight_files(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in files] == ["a.safetensors", "c.pt", "d.gguf", "sub/b.bin"]
    assert weight_bytes(tmp_path) == 5000 + 3000 + 10 + 7
    assert weight_files([tmp_path, tmp_path / "c.pt"]) == files  # each file once
    r = read_bandwidth(tmp_path, readers=8)  # more readers than pieces
    assert r.bytes == 8017 and r.files == 4


def test_read_bandwidth_errors(tmp_path):
    with pytest.raises(ValueError, match="no weight files"):
        read_bandwidth(tmp_path)
    with pytest.raises(FileNotFoundError):
        read_bandwidth(tmp_path / "missing.safetensors")


def test_read_bandwidth_empty_file(tmp_path):
    f = tmp_path / "empty.safetensors"
    f.write_bytes(b"")
    r = read_bandwidth(f)
    assert r.bytes == 0 and r.MBps == 0.0


def test_read_bandwidth_reader_failure_raises_not_hangs(tmp_path, monkeypatch):
    f = tmp_path / "w.safetensors"
    _write(f, 4 * MiB)

    def broken(*a, **k):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(coldstart, "_open_direct", lambda path, buf: (None, "test"))
    monkeypatch.setattr(coldstart.os, "preadv", broken)
    with pytest.raises(OSError, match="Input/output"):
        read_bandwidth(f, readers=3, block=MiB)
