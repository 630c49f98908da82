"""report/records.py: per-request JSONL records in the report folder — atomic, plain JSON, no
credentials — and a real open-loop run's records against the fake server's own ground truth."""

from __future__ import annotations

import base64
import dataclasses
import json
import os

import pytest

from pytest_inference import stats
from pytest_inference.engine import RequestSpec, StreamClient, arrivals
from pytest_inference.engine.openloop import OpenLoopRequestResult
from pytest_inference.report.load import load_figures, load_point
from pytest_inference.report.records import MASK, clean_record, read_records, record_path, write_records
from pytest_inference.testing.fake_openai import FakeOpenAIServer

KEY = "pi-test-key-7f3a9c21e5b04d68"


def _strict(text: str) -> list[dict]:
    """Parse as strict JSON (NaN/Infinity refused), one object a line."""
    def refuse(c):
        raise AssertionError(f"non-standard JSON constant {c}")
    return [json.loads(line, parse_constant=refuse) for line in text.splitlines()]


def test_write_and_read_back(tmp_path):
    records = [{"index": 0, "ttft_ms": 12.5, "ok": True, "itl_ms": [1.0, 2.0], "error": None, "text": "héllo"},
               {"index": 1, "ttft_ms": None, "ok": False, "error": "HTTP 503", "nested": {"a": [1, {"b": 2}]}}]
    path = write_records(tmp_path / "report", "load 8 rps", records)
    assert path == tmp_path / "report" / "records" / "load-8-rps.jsonl"  # the folders are made
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n") and len(text.splitlines()) == 2  # one object a line
    assert _strict(text) == records == read_records(path)
    assert "héllo" in text  # text as text, not \u escapes
    assert oct(path.stat().st_mode & 0o777) == oct(0o644)  # a report file, readable like summary.json
    # written again: replaced whole, and no temporary file is left behind
    write_records(tmp_path / "report", "load 8 rps", records[:1])
    assert read_records(path) == records[:1]
    assert sorted(p.name for p in path.parent.iterdir()) == ["load-8-rps.jsonl"]
    assert read_records(write_records(tmp_path, "empty", [])) == []


def test_non_finite_floats_are_null_and_dataclasses_are_their_fields(tmp_path):
    r = OpenLoopRequestResult(index=3, ok=True, ttft_ms=1.25, token_times_ms=[1.25, 2.5], scheduled_ns=10**12,
                              dispatch_lag_ms=0.04, worker=1)
    path = write_records(tmp_path, "run", [r, {"a": float("nan"), "b": [float("inf"), -float("inf"), 1.0]}])
    first, second = _strict(path.read_text())
    assert first == json.loads(json.dumps(dataclasses.asdict(r)))
    assert second == {"a": None, "b": [None, None, 1.0]}


@pytest.mark.parametrize("name, file", [
    ("../../etc/passwd", "etc-passwd.jsonl"),
    ("a/b\\c", "a-b-c.jsonl"),
    (".hidden", "hidden.jsonl"),
    ("run.jsonl", "run.jsonl"),
    ("load.8rps_x-1", "load.8rps_x-1.jsonl"),
])
def test_names_are_plain_file_names(tmp_path, name, file):
    path = write_records(tmp_path, name, [{"i": 1}])
    assert path == tmp_path / "records" / file and path.parent == tmp_path / "records"
    assert read_records(path) == [{"i": 1}]


@pytest.mark.parametrize("name", ["", "..", "/", "***", 7])
def test_a_name_with_nothing_usable_is_one_line(tmp_path, name):
    with pytest.raises(ValueError, match="records name") as err:
        record_path(tmp_path, name)
    assert "\n" not in str(err.value)


class _Thing:
    pass


@pytest.mark.parametrize("records, message", [
    ([{"a": _Thing()}], r"run record 0\.a: _Thing .* is not JSON data"),
    ([{"i": 1}, {"b": b"bytes"}], r"run record 1\.b: bytes b'bytes' is not JSON data"),
    ([{1: "x"}], "key 1 is not text"),
    (["a line"], "run record 0: a record is a dict"),
    ({"a": 1}, "an iterable of dicts, not dict"),
    (3, "an iterable of dicts, not int"),
])
def test_bad_records_are_one_line_and_leave_the_old_file(tmp_path, records, message):
    path = write_records(tmp_path, "run", [{"old": True}])
    with pytest.raises(ValueError, match=message) as err:
        write_records(tmp_path, "run", records)
    assert "\n" not in str(err.value)
    assert read_records(path) == [{"old": True}]  # nothing half-written
    assert sorted(p.name for p in path.parent.iterdir()) == ["run.jsonl"]


def test_a_cycle_is_an_error_not_a_hang(tmp_path):
    loop: dict = {}
    loop["self"] = loop
    with pytest.raises(ValueError, match="nested deeper than 32 levels"):
        write_records(tmp_path, "run", [loop])


def test_nothing_that_looks_like_a_credential_is_written(tmp_path):
    basic = base64.b64encode(f"user:{KEY}".encode()).decode()
    records = [{
        "headers": {"Authorization": f"Bearer {KEY}", "X-API-Key": KEY, "content-type": "application/json",
                    "Proxy-Authorization": f"Basic {basic}"},
        "api_key": KEY, "Cookie": "session=abc", "deep": [{"password": "hunter22", "access_token": "tok"}],
        "error": f"HTTP 401: Incorrect API key provided: {KEY}.",
        "echo": f"auth was Basic {basic} and bearer abcdefgh12345678",
        "openai": "sk-proj-AAAAbbbbCCCCdddd1234 leaked", "url": "http://user:pa@ss@127.0.0.1:8000/v1",
        "api_key_env": None, "output_tokens": 32, "token_times_ms": [1.0],
    }]
    path = write_records(tmp_path, "run", records, secrets=[KEY])
    data = path.read_bytes()
    for leak in (KEY.encode(), basic.encode(), b"hunter22", b"session=abc", b"abcdefgh12345678",
                 b"sk-proj-AAAAbbbbCCCCdddd1234", b"pa@ss"):
        assert leak not in data, leak
    [r] = read_records(path)
    assert r["headers"] == {"Authorization": MASK, "X-API-Key": MASK, "content-type": "application/json",
                            "Proxy-Authorization": MASK}
    assert r["api_key"] == MASK and r["Cookie"] == MASK and r["deep"] == [{"password": MASK, "access_token": MASK}]
    assert r["error"] == f"HTTP 401: Incorrect API key provided: {MASK}."
    assert r["echo"] == f"auth was Basic {MASK} and bearer {MASK}"
    assert r["openai"] == f"{MASK} leaked" and r["url"] == "http://***@127.0.0.1:8000/v1"
    # what is not a credential is kept as it was (a None key value is no secret; token counts stay)
    assert r["api_key_env"] is None and r["output_tokens"] == 32 and r["token_times_ms"] == [1.0]
    # the secret is masked in keys too, and clean_record gives the same as what was written
    assert clean_record({KEY: 1}, KEY) == {MASK: 1}
    assert clean_record(records[0], [KEY]) == r


def test_read_records_errors(tmp_path):
    with pytest.raises(ValueError, match="cannot read records"):
        read_records(tmp_path / "missing.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"a": 1}\n\n{"a": \n')
    with pytest.raises(ValueError, match=r"bad.jsonl:3: not JSON") as err:
        read_records(bad)
    assert "\n" not in str(err.value)
    bad.write_text('{"a": 1}\n[1, 2]\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2: a record is a JSON object, not list"):
        read_records(bad)
    bad.write_bytes(b"\xff\xfe")
    with pytest.raises(ValueError, match="cannot read records .UnicodeDecodeError"):
        read_records(bad)


def test_a_real_runs_records_and_figures_match_the_servers_truth(tmp_path):
    """An open-loop run against the fake server (API key required, some requests failing with the
    key echoed in the error): every request has its record, the records are the results, the
    key is nowhere in the file, and the load figures drawn from the run are the records' figures.
    Ground truth: the server's own stamps of each request it served."""
    n = 24
    offs = arrivals.constant(40, n=n)
    fail = {5, 17}
    specs = [RequestSpec(model="fake-model", max_tokens=4,
                         extra_body={"fake": {"status": 500}} if i in fail else None) for i in range(n)]
    with FakeOpenAIServer(ttft_ms=10, token_ms=1, api_key=KEY) as s, StreamClient(s.base_url, api_key=KEY) as c:
        run = c.run_open_loop(specs, offs, connections=8)
        truth = s.truth()
    path = write_records(tmp_path, "load-40rps", run.results, secrets=[KEY])
    assert KEY.encode() not in path.read_bytes()
    recs = read_records(path)
    assert [r["index"] for r in recs] == list(range(n))
    assert {r["index"] for r in recs if not r["ok"]} == fail and all(r["error"] for r in recs if not r["ok"])
    served = [r for r in recs if r["ok"]]
    assert len(served) == n - len(fail)
    for r in served:
        t = truth[r["response_id"]]
        # causality against the server's stamps: the client's TTFT from its send contains the server's
        assert r["ttft_ms"] - r["dispatch_lag_ms"] >= t["ttft_ms"] - 1e-6
        assert r["output_tokens"] == t["tokens"]
    # the figures of the run are the records' own figures
    point = load_point(run, "pass")
    assert point["ttft_p99_ms"] == stats.percentile([r["ttft_ms"] for r in served], 99)
    lags = [r["dispatch_lag_ms"] for r in recs if r["dispatch_lag_ms"] is not None]
    figs = load_figures([point], slo={"ttft_ms": 400}, lags_ms=lags, max_lag_ms=run.max_lag_ms)
    assert [f["kind"] for f in figs] == ["lines", "lines", "lines", "histogram"]
    assert figs[-1]["values"] == [round(x, 3) for x in lags] and len(lags) == n
    assert os.path.basename(path) == "load-40rps.jsonl"
