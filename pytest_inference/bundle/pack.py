"""Pack a report folder into one ``.tar.gz`` with a SHA-256 manifest, and check such a bundle.

A bundle is one gzip'd tar whose members all lie under one top folder (``<name>/``, the archive's
name without ``.tar.gz``), in sorted order, plain files only (no links, no devices), owner 0,
mode 0644, every time stamp the bundle's creation time::

    <name>/MANIFEST.sha256          `sha256sum` format: "<hex>  <path>" for every other member
    <name>/bundle.json              format, version, created, target, hardware, contents, skipped,
                                    and why the Allure HTML is missing when it is
    <name>/summary.json             the run's claims (with their samples), as written
    <name>/environment.json         summary["environment"] (the fingerprint); {"hardware": "unknown"} when absent
    <name>/summary.html             the one-page summary (:mod:`.page`)
    <name>/records/*.jsonl          per-request records
    <name>/allure-results/...       allure-pytest's results, as written
    <name>/allure-html/index.html   the rendered Allure 3 report (when the CLI is installed)
    <name>/junit*.xml, conformance-report.yaml     when the folder has them

Only those files are taken from the report folder; a symlink (file or folder) is not followed
but listed under ``skipped``, so nothing outside the folder gets in. The report is redacted by
the run that wrote it; the bundle adds nothing that was not in it except the page and the
manifest. After unpacking, ``cd <name> && sha256sum -c MANIFEST.sha256`` checks it too.

:func:`verify` recomputes every hash: a member that changed, is missing or is not in the manifest
is a :class:`~pytest_inference.bundle.BundleError` naming it. :func:`load_run` reads a bundle
(verified first), a report folder or a ``summary.json`` the same way for ``compare`` and the page.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import stat
import tarfile
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from ..report.summary import parse_summary
from ..supervise import write_bytes_atomic
from . import BundleError

FORMAT = "pytest-inference bundle"
VERSION = 1
MANIFEST = "MANIFEST.sha256"
INFO = "bundle.json"
SUMMARY = "summary.json"
ENVIRONMENT = "environment.json"
PAGE = "summary.html"
RECORDS = "records"
ALLURE_RESULTS = "allure-results"
ALLURE_HTML = "allure-html/index.html"
#: extra top-level files of a report folder that travel when present
EXTRA_FILES = re.compile(r"^(junit[\w.-]*\.xml|conformance-report\.yaml)$")
#: what a bundle missing the fingerprint says
UNKNOWN_ENVIRONMENT = {"hardware": "unknown",
                       "unknown": "summary.json carries no environment fingerprint (a run before fingerprints)"}

_MANIFEST_LINE = re.compile(r"^([0-9a-f]{64}) [ *](.+)$")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def manifest_text(files: dict[str, bytes]) -> str:
    """``sha256sum`` lines for ``files`` (relative path -> bytes), sorted by path."""
    return "".join(f"{sha256(files[p])}  {p}\n" for p in sorted(files))


# ------------------------------------------------------------------------------------------ reading a report folder
@dataclass
class Collected:
    """What :func:`collect` took from a report folder."""

    files: dict[str, bytes] = field(default_factory=dict)   # bundle path -> bytes
    skipped: list[dict[str, str]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)


def _read_plain(path: Path, rel: str, out: Collected) -> None:
    """Add ``path`` as ``rel`` if it is a plain file (not a symlink); else note why not."""
    try:
        st = os.lstat(path)
    except OSError as exc:
        out.skipped.append({"path": rel, "reason": f"cannot read ({exc.strerror or exc})"})
        return
    if stat.S_ISLNK(st.st_mode):
        out.skipped.append({"path": rel, "reason": "a symlink (not followed)"})
        return
    if not stat.S_ISREG(st.st_mode):
        out.skipped.append({"path": rel, "reason": "not a plain file"})
        return
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        with os.fdopen(fd, "rb") as f:
            out.files[rel] = f.read()
    except OSError as exc:
        out.skipped.append({"path": rel, "reason": f"cannot read ({exc.strerror or exc})"})


def _walk(root: Path, sub: str, out: Collected, suffix: str | None = None) -> None:
    """Every plain file under ``root/sub`` (symlinked folders not entered, but noted)."""
    top = root / sub
    if top.is_symlink():
        out.skipped.append({"path": sub, "reason": "a symlink (not followed)"})
        return
    if not top.is_dir():
        return
    for dirpath, dirnames, filenames in os.walk(top, followlinks=False):
        here = Path(dirpath)
        for d in sorted(dirnames):
            if (here / d).is_symlink():
                out.skipped.append({"path": (here / d).relative_to(root).as_posix(),
                                    "reason": "a symlink (not followed)"})
        for name in sorted(filenames):
            if suffix and not name.endswith(suffix):
                continue
            path = here / name
            _read_plain(path, path.relative_to(root).as_posix(), out)


def collect(report_dir: str | os.PathLike[str]) -> Collected:
    """The files of a report folder that go into a bundle (see the module docstring)."""
    given = str(report_dir)
    root = Path(report_dir)
    if not root.is_dir():
        raise BundleError(f"{given} is not a folder (give the report folder, e.g. reports/)")
    root = root.resolve()
    out = Collected()
    summary = root / SUMMARY
    if summary.is_symlink() or not summary.is_file():
        raise BundleError(f"{given} has no summary.json (not a pytest-inference report folder; "
                          "run pytest with --inference-report DIR)")
    _read_plain(summary, SUMMARY, out)
    if SUMMARY not in out.files:
        raise BundleError(f"{given}/summary.json cannot be read: {out.skipped[-1]['reason']}")
    out.summary = parse_summary(out.files[SUMMARY], f"{given}/summary.json")
    _walk(root, RECORDS, out, suffix=".jsonl")
    _walk(root, ALLURE_RESULTS, out)
    for entry in sorted(os.listdir(root)):
        if EXTRA_FILES.match(entry):
            _read_plain(root / entry, entry, out)
    return out


# ------------------------------------------------------------------------------------------ packing
@dataclass
class Packed:
    path: Path
    info: dict[str, Any]


def _allure_html(files: dict[str, bytes], enabled: bool) -> tuple[bytes | None, str | None]:
    """The rendered Allure report's bytes, or None and why not (never raises)."""
    if not enabled:
        return None, "not rendered: --no-allure-html"
    if not any(p.startswith(ALLURE_RESULTS + "/") and p.endswith("-result.json") for p in files):
        return None, "not rendered: the report folder has no allure-results/*-result.json"
    from ..report.html import ReportError, render_html

    with tempfile.TemporaryDirectory(prefix="pytest-inference-bundle-") as tmp:
        results = Path(tmp) / "results"
        for rel, data in files.items():  # render exactly the results that go into the bundle
            if rel.startswith(ALLURE_RESULTS + "/"):
                dest = results / rel[len(ALLURE_RESULTS) + 1:]
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(data)
        try:
            page = render_html(results, Path(tmp) / "html", report_name=None)
            return page.read_bytes(), None
        except ReportError as exc:
            return None, f"not rendered: {exc}"
        except OSError as exc:
            return None, f"not rendered: {exc.strerror or exc}"


def _stem(out: Path) -> str:
    name = out.name
    for ext in (".tar.gz", ".tgz"):
        if name.endswith(ext):
            return name[:-len(ext)] or "bundle"
    return name


def _hardware(environment: Any) -> str:
    hw = environment.get("hardware") if isinstance(environment, dict) else None
    return hw if isinstance(hw, str) and hw.strip() else "unknown"


def default_name(summary: dict[str, Any], when: float) -> str:
    target = summary.get("target", {}).get("name") if isinstance(summary.get("target"), dict) else None
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", str(target or "run")).strip("-.") or "run"
    return f"pytest-inference-{safe}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(when))}.tar.gz"


def _tar_bytes(stem: str, files: dict[str, bytes], mtime: int) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for rel in sorted(files):
            data = files[rel]
            ti = tarfile.TarInfo(f"{stem}/{rel}")
            ti.size, ti.mtime, ti.mode = len(data), mtime, 0o644
            ti.uid = ti.gid = 0
            ti.uname = ti.gname = ""
            tar.addfile(ti, io.BytesIO(data))
    gz = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=gz, mtime=mtime) as f:
        f.write(raw.getvalue())
    return gz.getvalue()


def pack(report_dir: str | os.PathLike[str], out: str | os.PathLike[str] | None = None, *,
         allure_html: bool = True, now: float | None = None) -> Packed:
    """Pack ``report_dir`` into ``out`` (default ``pytest-inference-<target>-<UTC time>.tar.gz`` in
    the current folder); returns the path and the bundle.json written into it."""
    from .. import __version__
    from .page import build_page

    created = time.time() if now is None else now
    got = collect(report_dir)
    summary = got.summary
    target = Path(out) if out is not None else Path(default_name(summary, created))
    if target.is_dir():
        target = target / default_name(summary, created)
    files = dict(got.files)
    environment = summary.get("environment")
    env_source = "summary.json" if isinstance(environment, dict) else "unknown"
    if not isinstance(environment, dict):
        environment = dict(UNKNOWN_ENVIRONMENT)
    files[ENVIRONMENT] = (json.dumps(environment, indent=2, sort_keys=True) + "\n").encode()
    html, why_not = _allure_html(files, allure_html)
    if html is not None:
        files[ALLURE_HTML] = html
    info: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(created)),
        "plugin_version": __version__,
        "source": Path(report_dir).resolve().name,  # the folder's name only: no absolute path travels
        "target": (summary.get("target") or {}).get("name") if isinstance(summary.get("target"), dict) else None,
        "hardware": _hardware(environment),
        "environment": env_source,
        "allure_html": {"path": ALLURE_HTML if html is not None else None, "reason": why_not},
        "skipped": got.skipped,
    }
    records = records_of(files, "report")
    page = build_page(summary, records=records, info={**info, "contents": _contents(files, with_page=True)})
    files[PAGE] = page.encode("utf-8")
    info["contents"] = _contents(files, with_page=True)
    files[INFO] = (json.dumps(info, indent=2) + "\n").encode()
    files[MANIFEST] = manifest_text(files).encode()
    target.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(target, _tar_bytes(_stem(target), files, int(created)), mode=0o644)
    return Packed(target, info)


def _contents(files: dict[str, bytes], with_page: bool) -> list[dict[str, Any]]:
    names = set(files) | ({PAGE} if with_page else set()) | {INFO, MANIFEST}
    return [{"path": p, "bytes": len(files[p]) if p in files else None} for p in sorted(names)]


# ------------------------------------------------------------------------------------------ checking
@dataclass
class Bundle:
    """A bundle whose every file matched its manifest."""

    path: str
    name: str                        # the top folder
    files: dict[str, bytes]          # relative path -> bytes (MANIFEST.sha256 included)
    info: dict[str, Any]


def member_problem(m: tarfile.TarInfo, holder: str = "a bundle") -> str | None:
    """Why a tar member must not be read or unpacked (a link, a device or fifo, a path that is absolute,
    climbs with ``..`` or hides a backslash), or None; ``holder`` names the archive in the line. The one
    check of every archive pytest-inference opens (bundles here, pods' results in ``k8s collect``)."""
    if m.issym() or m.islnk():
        return f"member {m.name} is a link; {holder} holds plain files only"
    if not (m.isfile() or m.isdir()):
        return f"member {m.name} is not a plain file"
    parts = PurePosixPath(m.name).parts
    if not parts or m.name.startswith("/") or ".." in parts or "\\" in m.name:
        return f"member {m.name!r} has an unsafe path (it escapes the folder it unpacks into)"
    return None


def verify(path: str | os.PathLike[str]) -> Bundle:
    """Read ``path`` and check every member against ``MANIFEST.sha256``. Raises
    :class:`BundleError` with one line naming the first member that changed, is missing or is
    extra (and how many more problems there are)."""
    where = f"bundle {path}"
    try:
        tar = tarfile.open(path, "r:gz")
    except FileNotFoundError:
        raise BundleError(f"{where}: no such file") from None
    except IsADirectoryError:
        raise BundleError(f"{where}: is a folder, not a .tar.gz bundle") from None
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise BundleError(f"{where}: not a gzip'd tar archive ({type(exc).__name__}: {exc})") from None
    files: dict[str, bytes] = {}
    tops: set[str] = set()
    try:
        with tar:
            for m in tar:
                problem = member_problem(m)
                if problem:
                    raise BundleError(f"{where}: {problem}")
                parts = PurePosixPath(m.name).parts
                tops.add(parts[0])
                if len(tops) > 1:
                    raise BundleError(f"{where}: members lie under more than one top folder ({', '.join(sorted(tops))})")
                if m.isdir():
                    continue
                if len(parts) < 2:
                    raise BundleError(f"{where}: member {m.name} is not under the bundle's top folder")
                rel = "/".join(parts[1:])
                if rel in files:
                    raise BundleError(f"{where}: member {rel} appears twice")
                f = tar.extractfile(m)
                files[rel] = f.read() if f is not None else b""
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise BundleError(f"{where}: the archive is damaged ({type(exc).__name__}: {exc})") from None
    if not tops:
        raise BundleError(f"{where}: the archive is empty")
    if MANIFEST not in files:
        raise BundleError(f"{where}: no {MANIFEST} (not a pytest-inference bundle, or it was removed)")
    listed: dict[str, str] = {}
    for no, line in enumerate(files[MANIFEST].decode("utf-8", "replace").splitlines(), 1):
        if not line.strip():
            continue
        m = _MANIFEST_LINE.match(line)
        if not m:
            raise BundleError(f"{where}: {MANIFEST} line {no} is not '<sha256>  <path>'")
        listed[m.group(2)] = m.group(1)
    problems = []
    for rel in sorted(listed):
        if rel not in files:
            problems.append(f"{rel} is in its manifest but missing")
        elif sha256(files[rel]) != listed[rel]:
            problems.append(f"{rel} does not match its manifest (sha256 {sha256(files[rel])[:12]}…, "
                            f"manifest {listed[rel][:12]}…)")
    for rel in sorted(set(files) - set(listed) - {MANIFEST}):
        problems.append(f"{rel} is not in its manifest (added after packing)")
    if problems:
        more = f" (and {len(problems) - 1} more problem{'s' if len(problems) > 2 else ''})" if len(problems) > 1 else ""
        raise BundleError(f"{where}: {problems[0]}{more}")
    if INFO not in files or SUMMARY not in files:
        raise BundleError(f"{where}: no {INFO if INFO not in files else SUMMARY} (not a pytest-inference bundle)")
    try:
        info = json.loads(files[INFO].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise BundleError(f"{where}: {INFO} is not JSON") from None
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise BundleError(f"{where}: {INFO} does not say format {FORMAT!r}")
    if not isinstance(info.get("version"), int) or info["version"] > VERSION:
        raise BundleError(f"{where}: bundle version {info.get('version')!r}; this pytest-inference reads up to {VERSION}")
    return Bundle(str(path), tops.pop(), files, info)


# ------------------------------------------------------------------------------------------ one run, any form
@dataclass
class Run:
    """One run's summary (and records), read from a bundle, a report folder or a summary.json."""

    label: str
    kind: str                                   # "bundle" | "report folder" | "summary.json"
    summary: dict[str, Any]
    records: dict[str, list[dict[str, Any]]]
    bundle: Bundle | None = None

    @property
    def environment(self) -> dict[str, Any] | None:
        env = self.summary.get("environment")
        if isinstance(env, dict):
            return env
        if self.bundle is not None and ENVIRONMENT in self.bundle.files:
            try:
                env = json.loads(self.bundle.files[ENVIRONMENT])
            except (UnicodeDecodeError, json.JSONDecodeError):
                return None
            return env if isinstance(env, dict) else None
        return None

    @property
    def hardware(self) -> str:
        return _hardware(self.environment)


def records_of(files: dict[str, bytes], where: str) -> dict[str, list[dict[str, Any]]]:
    """``{"load-x": [record, ...]}`` from the ``records/*.jsonl`` among ``files`` (an unreadable file
    is left out: records are context for the page, not what a verdict rests on)."""
    from ..supervise import json_object_lines

    out: dict[str, list[dict[str, Any]]] = {}
    for rel in sorted(files):
        if rel.startswith(RECORDS + "/") and rel.endswith(".jsonl") and rel.count("/") == 1:
            try:
                text = files[rel].decode("utf-8")
                out[rel[len(RECORDS) + 1:-len(".jsonl")]] = [o for _, o in json_object_lines(text.splitlines(),
                                                                                            f"{where}/{rel}")]
            except (UnicodeDecodeError, ValueError):
                continue
    return out


def load_run(path: str | os.PathLike[str]) -> Run:
    """A bundle (``.tar.gz``, verified first), a report folder, or a ``summary.json``."""
    p = Path(path)
    label = str(path)
    if p.is_dir():
        got = collect(p)
        return Run(label, "report folder", got.summary, records_of(got.files, label))
    if not p.exists():
        raise BundleError(f"{label}: no such file or folder")
    try:
        with open(p, "rb") as f:
            head = f.read(2)
    except OSError as exc:
        raise BundleError(f"{label}: cannot read ({exc.strerror or exc})") from None
    if head == b"\x1f\x8b":
        b = verify(p)
        summary = parse_summary(b.files[SUMMARY], f"{label}:{SUMMARY}")
        return Run(label, "bundle", summary, records_of(b.files, label), bundle=b)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise BundleError(f"{label}: cannot read ({exc.strerror or exc})") from None
    return Run(label, "summary.json", parse_summary(data, label), {})
