"""bundle / verify: a report folder packed into one tar.gz, unpacked to the same bytes; tampering is one line."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from bundle_helpers import DATA, H200, claim, load_records, lognormal, rewrite_bundle, write_report

from pytest_inference import cli
from pytest_inference.bundle import BundleError
from pytest_inference.bundle.pack import MANIFEST, pack, verify
from pytest_inference.report import html


@pytest.fixture
def report(tmp_path) -> Path:
    root = tmp_path / "reports"
    ttft = lognormal(40, 120.0, 0.2, seed=1)
    write_report(root, [claim("warm.ttft_median_ms", ttft, op="<", threshold=200, unit="ms")],
                 records={"load-4rps": load_records(ttft)})
    shutil.copytree(DATA / "allure-results", root / "allure-results")
    (root / "junit.xml").write_text('<?xml version="1.0"?><testsuites><testsuite name="pytest" tests="1"/></testsuites>\n')
    (root / "conformance-report.yaml").write_text("checks: []\n")
    (root / "notes.txt").write_text("not part of a report\n")  # not one of the bundled files
    secret = tmp_path / "outside.jsonl"
    secret.write_text('{"api_key": "sk-not-for-the-bundle"}\n')
    (root / "records" / "linked.jsonl").symlink_to(secret)          # a symlink out of the folder
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "x-result.json").write_text("{}")
    (root / "allure-results" / "more").symlink_to(tmp_path / "elsewhere")  # a symlinked folder
    return root


def _cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_round_trip_same_bytes(report, tmp_path, capsys):
    out = tmp_path / "out" / "qual-h200.tar.gz"
    code, said, err = _cli(capsys, "bundle", str(report), "-o", str(out), "--no-allure-html")
    assert code == 0, err
    assert f"bundle written to {out}" in said and "left out records/linked.jsonl: a symlink (not followed)" in said

    b = verify(out)  # ok
    assert b.name == "qual-h200"
    with tarfile.open(out, "r:gz") as tar:
        names = tar.getnames()
        assert all(m.isfile() and m.uid == 0 and m.mode == 0o644 for m in tar.getmembers())
    assert names == sorted(names)  # deterministic member order
    assert all(n.startswith("qual-h200/") and not n.startswith("/") and ".." not in n for n in names)
    rel = {n.split("/", 1)[1] for n in names}
    assert rel == {"MANIFEST.sha256", "bundle.json", "summary.json", "environment.json", "summary.html",
                   "records/load-4rps.jsonl", "allure-results/5f0c3a52-1d7e-4b8e-9a61-0c2b7d4e9f10-result.json",
                   "junit.xml", "conformance-report.yaml"}

    dest = tmp_path / "unpacked"
    with tarfile.open(out, "r:gz") as tar:
        tar.extractall(dest, filter="data")
    top = dest / "qual-h200"
    for name in ("summary.json", "records/load-4rps.jsonl", "junit.xml", "conformance-report.yaml",
                 "allure-results/5f0c3a52-1d7e-4b8e-9a61-0c2b7d4e9f10-result.json"):
        assert (top / name).read_bytes() == (report / name).read_bytes(), name
    summary = json.loads((report / "summary.json").read_text())
    assert json.loads((top / "environment.json").read_text()) == summary["environment"]
    info = json.loads((top / "bundle.json").read_text())
    assert info["format"] == "pytest-inference bundle" and info["version"] == 1
    assert info["target"] == "h200" and info["hardware"] == H200 and info["source"] == "reports"
    assert info["allure_html"] == {"path": None, "reason": "not rendered: --no-allure-html"}
    assert {s["path"] for s in info["skipped"]} == {"records/linked.jsonl", "allure-results/more"}
    assert str(tmp_path) not in out.read_bytes().decode("latin-1")  # no absolute path travels
    assert b"sk-not-for-the-bundle" not in b"".join(b.files.values())
    if shutil.which("sha256sum"):  # the manifest is sha256sum's own format
        proc = subprocess.run(["sha256sum", "--check", "--strict", MANIFEST], cwd=top, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr

    code, said, err = _cli(capsys, "verify", str(out))
    assert code == 0 and "8 files match MANIFEST.sha256" in said and "hardware " + H200 in said


def test_same_input_same_bytes(report, tmp_path):
    a = pack(report, tmp_path / "a" / "b.tar.gz", allure_html=False, now=1764676800)
    b = pack(report, tmp_path / "b" / "b.tar.gz", allure_html=False, now=1764676800)
    assert a.path.read_bytes() == b.path.read_bytes()


@pytest.mark.parametrize("change, says", [
    (lambda m: m.__setitem__("q/records/load-4rps.jsonl", m["q/records/load-4rps.jsonl"].replace(b"1", b"2", 1)),
     r"^pytest-inference verify: bundle .*q2\.tar\.gz: records/load-4rps\.jsonl does not match its manifest "
     r"\(sha256 [0-9a-f]{12}…, manifest [0-9a-f]{12}…\)$"),
    (lambda m: m.pop("q/summary.html"),
     r"^pytest-inference verify: bundle .*: summary\.html is in its manifest but missing$"),
    (lambda m: m.__setitem__("q/records/extra.jsonl", b"{}\n"),
     r"^pytest-inference verify: bundle .*: records/extra\.jsonl is not in its manifest \(added after packing\)$"),
], ids=["edited-byte", "deleted", "added"])
def test_tampering_is_one_line(report, tmp_path, capsys, change, says):
    good = pack(report, tmp_path / "q.tar.gz", allure_html=False).path
    bad = tmp_path / "q2.tar.gz"
    rewrite_bundle(good, bad, change)
    code, out, err = _cli(capsys, "verify", str(bad))
    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1, err
    assert re.match(says, err.strip()), err
    # compare and the page check first, with the same words
    code, _, err2 = _cli(capsys, "compare", str(good), str(bad))
    assert code == 2 and err2.strip().split(": ", 1)[1] == err.strip().split(": ", 1)[1]
    code, _, err3 = _cli(capsys, "bundle", str(bad), "--page-only", "-o", str(tmp_path / "p.html"))
    assert code == 2 and err3.strip().split(": ", 1)[1] == err.strip().split(": ", 1)[1]
    assert not (tmp_path / "p.html").exists()


def test_unsafe_members_and_not_a_bundle(report, tmp_path):
    good = pack(report, tmp_path / "q.tar.gz", allure_html=False).path
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(good, "r:gz") as src, tarfile.open(evil, "w:gz") as dst:
        for m in src:
            dst.addfile(m, src.extractfile(m))
        link = tarfile.TarInfo("q/records/passwd.jsonl")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        dst.addfile(link)
    with pytest.raises(BundleError, match=r"member q/records/passwd\.jsonl is a link; a bundle holds plain files only"):
        verify(evil)
    rewrite_bundle(good, evil, lambda m: m.__setitem__("../escape.txt", b"x"))
    with pytest.raises(BundleError, match="unsafe path"):
        verify(evil)
    (tmp_path / "plain.tar.gz").write_text("not gzip")
    with pytest.raises(BundleError, match=r"not a gzip'd tar archive"):
        verify(tmp_path / "plain.tar.gz")
    rewrite_bundle(good, evil, lambda m: m.pop("q/MANIFEST.sha256"))
    with pytest.raises(BundleError, match=r"no MANIFEST\.sha256"):
        verify(evil)


def test_folder_without_summary_is_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code, out, err = _cli(capsys, "bundle", str(tmp_path / "empty"))
    assert code == 2 and out == "" and len(err.splitlines()) == 1
    assert "has no summary.json (not a pytest-inference report folder" in err
    (tmp_path / "empty" / "summary.json").write_text("{not json")
    code, _, err = _cli(capsys, "bundle", str(tmp_path / "empty"))
    assert code == 2 and len(err.splitlines()) == 1 and "is not JSON" in err
    code, _, err = _cli(capsys, "verify", str(tmp_path / "missing.tar.gz"))
    assert code == 2 and err.strip().endswith("missing.tar.gz: no such file")


def test_missing_environment_is_recorded_unknown(tmp_path):
    root = write_report(tmp_path / "r", [claim("warm.ttft_median_ms", [1.0, 2.0, 3.0])], hardware=None)
    b = verify(pack(root, tmp_path / "r.tar.gz", allure_html=False).path)
    env = json.loads(b.files["environment.json"])
    assert env["hardware"] == "unknown" and "no environment fingerprint" in env["unknown"]
    assert b.info["environment"] == "unknown" and b.info["hardware"] == "unknown"


def test_allure_html_missing_cli_is_a_reason_not_a_crash(report, tmp_path, monkeypatch):
    monkeypatch.setenv(html.ENV_VAR, str(tmp_path / "no-such-allure"))
    b = verify(pack(report, tmp_path / "q.tar.gz").path)
    reason = b.info["allure_html"]["reason"]
    assert b.info["allure_html"]["path"] is None and reason.startswith("not rendered: ")
    assert "is not an Allure 3 CLI" in reason and "allure-html/index.html" not in b.files


def test_allure_html_rendered_into_the_bundle(report, tmp_path):
    try:
        html.find_allure_cli()
    except html.ReportError as exc:
        pytest.skip(f"Allure 3 CLI not installed (`npm ci` at the repository root): {exc}")
    b = verify(pack(report, tmp_path / "q.tar.gz").path)
    assert b.info["allure_html"] == {"path": "allure-html/index.html", "reason": None}
    page = b.files["allure-html/index.html"].decode()
    assert "googletagmanager" not in page
    (tmp_path / "index.html").write_bytes(b.files["allure-html/index.html"])
    embedded = html.embedded_files(tmp_path / "index.html")
    assert any(b"warm.ttft_median_ms" in v for k, v in embedded.items() if k.startswith("data/test-results/"))


def test_report_dir_itself_may_not_smuggle_files_outside(tmp_path):
    """Only the report's own files are taken: summary.json as a symlink to elsewhere is refused."""
    real = write_report(tmp_path / "real", [claim("warm.ttft_median_ms", [1.0, 2.0])])
    root = tmp_path / "r"
    root.mkdir()
    os.symlink(real / "summary.json", root / "summary.json")
    with pytest.raises(BundleError, match="has no summary.json"):
        pack(root, tmp_path / "x.tar.gz")
