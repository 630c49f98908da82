"""Measurements published to the session: the model, readers after publishers, and the way they
travel to the controller (xdist) into summary.json, as claims do."""

import json

import pytest

from pytest_inference.session import Measurement

PUBLISHERS = '''
import pytest

@pytest.fixture(scope="session")
def counted(inference_session):
    inference_session.publish("demo.tokens", {"prompt_tokens": [3, 4]}, unit="tokens")
    yield 7
    inference_session.publish("demo.teardown", 1)  # after the last test: travels with its teardown report

@pytest.mark.parametrize("i", range(4))
def test_publish(i, counted, inference_session, claim):
    inference_session.publish("demo.each", i)
    claim("demo.value", [float(counted)])
'''

READER = '''
import pytest

@pytest.mark.inference_reads("demo.each")
def test_read(inference_session):
    seen = sorted(m.data for m in inference_session.measurements("demo.each"))
    assert seen == [0, 1, 2, 3]
    tokens = inference_session.measurements("demo.tokens")
    assert [(m.data, m.unit) for m in tokens] == [({"prompt_tokens": [3, 4]}, "tokens")]
    assert tokens[0].source.startswith("test_b_publish.py::test_publish[")
'''

LATE = '''
from pytest_inference.session import SESSION_KEY

def pytest_sessionfinish(session):
    # after the last report of a worker: travels in xdist's workeroutput
    session.config.stash[SESSION_KEY].publish("demo.late", 1, source="sessionfinish")
'''


def summary_of(pytester):
    data = json.loads((pytester.path / "report" / "summary.json").read_text())
    return data, data.get("measurements", [])


def test_measurement_is_a_named_json_value():
    m = Measurement("warm.tokens", {"requests": 2, "prompt_tokens": [1, 2]}, "tokens", "t.py::test", "main-1-1")
    assert Measurement.from_dict(json.loads(json.dumps(m.to_dict()))) == m
    assert Measurement("x", 1.5).to_dict() == {"name": "x", "data": 1.5, "unit": None, "source": None, "id": ""}
    with pytest.raises(ValueError, match="a measurement name is letters, digits"):
        Measurement("warm tokens", 1)
    with pytest.raises(ValueError, match="got ''"):
        Measurement("", 1)
    with pytest.raises(TypeError, match="measurement warm.x: data must be JSON"):
        Measurement("warm.x", object())
    with pytest.raises(TypeError, match="unit must be a string"):
        Measurement("warm.x", 1, unit=3)


def test_a_reader_runs_after_the_publishers_and_reads_them(pytester):
    # the reader's file sorts first: the inference_reads marker runs it after every other test
    pytester.makepyfile(test_a_read=READER, test_b_publish=PUBLISHERS)
    res = pytester.runpytest_subprocess("--inference-report", "report", "-p", "no:cacheprovider",
                                        "-p", "no:randomly", "-v")
    res.assert_outcomes(passed=5)
    res.stdout.fnmatch_lines(["*test_b_publish.py::test_publish?3? PASSED*", "*test_a_read.py::test_read PASSED*"])
    _, ms = summary_of(pytester)
    assert [m["name"] for m in ms] == ["demo.tokens"] + ["demo.each"] * 4 + ["demo.teardown"]
    assert all(m["id"].startswith("main-") for m in ms) and len({m["id"] for m in ms}) == len(ms)
    assert ms[-1]["source"] == "test_a_read.py::test_read"  # session teardown: in the last test


def test_without_the_marker_nothing_is_reordered(pytester):
    pytester.makepyfile(test_a_read=READER.replace('@pytest.mark.inference_reads("demo.each")\n', ""),
                        test_b_publish=PUBLISHERS)
    res = pytester.runpytest_subprocess("--inference-report", "report", "-p", "no:cacheprovider", "-p", "no:randomly")
    res.assert_outcomes(passed=4, failed=1)  # the reader ran first and saw nothing
    res.stdout.fnmatch_lines(["*assert [] == [0, 1, 2, 3]*"])


def test_the_controller_gets_every_workers_measurements(pytester):
    pytest.importorskip("xdist")
    pytester.makepyfile(test_b_publish=PUBLISHERS)
    pytester.makeconftest(LATE)
    res = pytester.runpytest_subprocess("--inference-report", "report", "-p", "no:cacheprovider", "-p", "no:randomly",
                                        "-n", "2", "--dist", "load")
    res.assert_outcomes(passed=4)
    summary, ms = summary_of(pytester)
    each = sorted(m["data"] for m in ms if m["name"] == "demo.each")
    assert each == [0, 1, 2, 3]  # every test's, whichever worker ran it
    # a session fixture per worker that ran a test, its teardown's measurement too
    ran = {m["id"].split("-")[0] for m in ms if m["name"] == "demo.tokens"}
    assert ran and ran <= {"gw0", "gw1"}
    assert ran == {m["id"].split("-")[0] for m in ms if m["name"] == "demo.teardown"}
    assert len([m for m in ms if m["name"] == "demo.tokens"]) == len(ran)
    # published after a worker's last report: through xdist's workeroutput; the controller's own too
    late = sorted(m["id"].split("-")[0] for m in ms if m["name"] == "demo.late")
    assert late == ["gw0", "gw1", "main"]
    assert all(m["source"] == "sessionfinish" for m in ms if m["name"] == "demo.late")
    assert len(summary["claims"]) == 4


CROSS_PUBLISH = '''
def test_publish(inference_session):
    inference_session.publish("cross.value", {"pid": __import__("os").getpid()})
'''

CROSS_READ = '''
import os
import time

def test_read(inference_session):
    deadline = time.monotonic() + 60
    while not inference_session.measurements("cross.value") and time.monotonic() < deadline:
        time.sleep(0.05)  # the other worker's test may not have run yet
    (m,) = inference_session.measurements("cross.value")
    assert m.data["pid"] != os.getpid() and m.source == "test_cross_publish.py::test_publish"
    import glob, tempfile
    assert glob.glob(os.path.join(tempfile.gettempdir(), "pytest-inference-measurements-*", m.id + ".json"))
'''


def test_a_worker_reads_another_workers_measurements(pytester, monkeypatch, tmp_path):
    pytest.importorskip("xdist")
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # where the controller makes the exchange folder
    pytester.makepyfile(test_cross_publish=CROSS_PUBLISH, test_cross_read=CROSS_READ)
    res = pytester.runpytest_subprocess("--inference-report", "report", "-p", "no:cacheprovider", "-p", "no:randomly",
                                        "-n", "2", "--dist", "loadfile", "-v", "--inference-allow-unmeasured")
    res.assert_outcomes(passed=2)
    workers = {line.split()[-1]: line.split()[0] for line in res.stdout.lines if line.startswith("[gw") and "PASSED" in line}
    assert workers["test_cross_publish.py::test_publish"] != workers["test_cross_read.py::test_read"]
    _, ms = summary_of(pytester)
    assert [m["name"] for m in ms] == ["cross.value"]  # carried once, although read on the other worker
    assert not list(tmp_path.glob("pytest-inference-measurements-*"))  # removed at the end
