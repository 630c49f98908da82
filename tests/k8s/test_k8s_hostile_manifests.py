"""B12: --manifests is hostile input. Schema-invalid objects, absurd nesting and YAML alias bombs
are one line each, in bounded time — before any check reads them (they crashed 14-15 tests, hit a
RecursionError, or ran for an hour). Needs only PyYAML (no cluster, no Kubernetes client)."""

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pytest_inference.k8s.checks import run_all
from pytest_inference.k8s.manifests import ManifestError, load_manifests
from pytest_inference.k8s.model import Settings

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "fixtures" / "k8s" / "reference"

BILLION_LAUGHS = "\n".join(
    ["kind: ConfigMap", "metadata: {name: lol}", "data:", "  a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    + [f"  {chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]" for i in range(8)]) + "\n"


def _reference_with(tmp_path, old: str, new: str, fname: str = "30-vllm.yaml") -> Path:
    folder = tmp_path / "m"
    shutil.copytree(REFERENCE, folder)
    text = (folder / fname).read_text()
    assert old in text, old
    (folder / fname).write_text(text.replace(old, new, 1))
    return folder


# (file, old text, new text, what the line must say)
SHAPES = [
    ("30-vllm.yaml", "spec:\n  replicas", "spec: true\nx:\n  replicas", "spec is a boolean, expected a mapping"),
    ("10-storage.yaml", "  labels:\n    pytest-inference/volume: models", "  labels: 1",
     "metadata.labels is a number, expected a mapping of strings"),
    ("10-storage.yaml", "namespace: vllm", "namespace: [x]", "metadata.namespace is a list, expected a string"),
    ("30-vllm.yaml", "claimName: models", "claimName: {a: 1}", "claimName is a mapping, expected a string"),
    ("10-storage.yaml", "accessModes: [ReadWriteMany]", "accessModes: ReadWriteMany",
     "spec.accessModes is a string, expected a list"),
    ("10-storage.yaml", "    - vers=4.1", "    - {vers: 4.1}", "spec.mountOptions[0] is a mapping, expected a string"),
    ("40-network-tuner.yaml", "tolerations:", "tolerations: 7\n      x:", "tolerations is a number, expected a list"),
]


@pytest.mark.parametrize(("fname", "old", "new", "says"), SHAPES, ids=[s[3].split(" is ")[0] for s in SHAPES])
def test_schema_invalid_object_is_one_line(tmp_path, fname, old, new, says):
    folder = _reference_with(tmp_path, old, new, fname)
    with pytest.raises(ManifestError) as e:
        load_manifests(folder)
    msg = str(e.value)
    assert says in msg and f"{fname} document" in msg and "\n" not in msg, msg


def test_every_check_survives_every_field_of_the_wrong_type():
    """Whatever field of a reference object gets the wrong type, the loader refuses it or every
    check still returns a result: a malformed object never reaches a check as a traceback."""
    import copy

    base = load_manifests(REFERENCE)
    bad_values = [True, 1, "x", "${x}", [1], {"a": 1}]
    tried = 0

    def paths(x, path=()):
        if isinstance(x, dict):
            for k, v in x.items():
                yield path + (k,)
                yield from paths(v, path + (k,))
        elif isinstance(x, list):
            for i, v in enumerate(x[:2]):
                yield path + (i,)
                yield from paths(v, path + (i,))

    from pytest_inference.k8s.shape import shape_errors

    for n, obj in enumerate(base.objects):
        for path in paths(obj):
            for bad in bad_values:
                mutated = copy.deepcopy(obj)
                cur = mutated
                for p in path[:-1]:
                    cur = cur[p]
                if type(cur[path[-1]]) is type(bad):
                    continue
                cur[path[-1]] = bad
                if path == ("kind",) or shape_errors(mutated):
                    continue  # the loader refuses it with one line
                obs = copy.copy(base)
                obs.objects = base.objects[:n] + [mutated] + base.objects[n + 1:]
                tried += 1
                try:
                    run_all(obs, Settings(model_load_s=220))
                except Exception as exc:  # noqa: BLE001 - the point of the test
                    pytest.fail(f"{obj['kind']} {'.'.join(map(str, path))} = {bad!r} passes the shape check but "
                                f"crashes a check: {type(exc).__name__}: {exc}")
    assert tried > 150  # mutations the loader lets through (219 at writing); every one judged


def test_deep_nesting_is_one_line_fast(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "deep.yaml").write_text("kind: ConfigMap\nmetadata: {name: deep}\ndata:\n  a: "
                                              + "[" * 20000 + "]" * 20000 + "\n")
    t0 = time.monotonic()
    with pytest.raises(ManifestError, match=r"deep\.yaml.*(nested too deep|deeper than 100 levels)"):
        load_manifests(tmp_path / "m")
    assert time.monotonic() - t0 < 30


def test_json_deep_nesting_within_the_parser_is_bounded_too(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "deep.json").write_text('{"kind": "ConfigMap", "metadata": {"name": "d"}, "data": '
                                              + '{"a": ' * 150 + "1" + "}" * 150 + "}")
    with pytest.raises(ManifestError, match=r"deeper than 100 levels"):
        load_manifests(tmp_path / "m")


def test_alias_bomb_is_one_line_fast(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "lol.yaml").write_text(BILLION_LAUGHS)
    t0 = time.monotonic()
    with pytest.raises(ManifestError, match=r"lol\.yaml document 1: expands to more than 1,000,000 nodes"):
        load_manifests(tmp_path / "m")
    assert time.monotonic() - t0 < 30


def test_a_self_referencing_alias_is_one_line(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "loop.yaml").write_text("kind: ConfigMap\nmetadata: {name: loop}\ndata: &d {self: *d}\n")
    with pytest.raises(ManifestError, match=r"loop\.yaml document 1: nested deeper than 100 levels"):
        load_manifests(tmp_path / "m")


def test_a_huge_file_is_refused_before_parsing(tmp_path):
    (tmp_path / "m").mkdir()
    with open(tmp_path / "m" / "big.yaml", "w") as f:
        f.write("kind: ConfigMap\nmetadata: {name: big}\ndata:\n  a: '")
        f.write("x" * (17 << 20))
        f.write("'\n")
    with pytest.raises(ManifestError, match=r"big\.yaml is 17\.0 MiB \(at most 16 MiB a file"):
        load_manifests(tmp_path / "m")


def test_reference_still_loads():
    assert len(load_manifests(REFERENCE).objects) == 11


@pytest.mark.parametrize("case", ["shape", "deep", "bomb"])
def test_the_suite_says_one_line_and_exits_as_a_usage_error(tmp_path, case):
    if case == "shape":
        folder = _reference_with(tmp_path, "spec:\n  replicas", "spec: true\nx:\n  replicas")
        says = "spec is a boolean, expected a mapping"
    else:
        folder = tmp_path / "m"
        folder.mkdir()
        text = (BILLION_LAUGHS if case == "bomb" else
                "kind: ConfigMap\nmetadata: {name: d}\ndata:\n  a: " + "[" * 20000 + "]" * 20000 + "\n")
        (folder / "x.yaml").write_text(text)
        says = "expands to more than" if case == "bomb" else "deep"
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "pytest", str(ROOT / "suites" / "k8s"), "-p", "no:cacheprovider",
                           "--rootdir", str(ROOT), "--manifests", str(folder), "--inference-report",
                           str(tmp_path / "report")], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR, out[-3000:]
    assert says in proc.stderr and "Traceback" not in out and "RecursionError" not in out
    assert time.monotonic() - t0 < 120
