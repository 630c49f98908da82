"""``pytest-inference k8s collect``: fetch the results of pytest-inference's plain Jobs and
DaemonSet (``k8s manifests --plain``) from their pods' logs, read-only.

    pytest-inference k8s collect --kubeconfig ~/.kube/config --namespace pytest-inference -o results/

Each pod runs ``pytest-inference in-pod --print-results``, which prints its results folder (JUnit,
``summary.json``, records) as a base64 tar.gz between two marker lines at the end of its log. This
verb lists the pods labelled ``app.kubernetes.io/part-of=pytest-inference`` (and ``--selector``),
reads each one's log, checks that the block is complete and decodes, unpacks it into
``DIR/<role>/<pod>/`` (``DIR/node/<node>/`` for the node DaemonSet) and prints one row per pod: pod,
node, role, phase, tests passed/failed (from ``junit.xml``), verdict totals (from ``summary.json``),
and what became of its results. A pod still running, one whose log has no block, a truncated block
(log rotation: the kubelet keeps ``containerLogMaxSize``, 10 MiB by default, per container file)
or a tarball with a member that would land outside its folder is a row saying so, never a crash.

Why pod logs and not a results ConfigMap: a ConfigMap would need each pod to *write* to the API —
a ServiceAccount token mounted in every test pod and a Role with ``create``/``update`` on
configmaps — while the logs need no rights in the pods at all (the generated manifests mount no
token) and only ``get``/``list`` pods and ``get`` pods/log for whoever collects. And a ConfigMap is
capped at 1 MiB (etcd's object limit), which a load shard's per-request records exceed; a log is
bounded only by the kubelet's rotation, which this verb detects (the end marker is missing).

Read-only: every request here is a GET (list pods/jobs/daemonsets, read a namespace, read a log).
Bad input is one line (exit status 2): a kubeconfig that does not load, an unknown context or
namespace, an unreachable API server. Exit status 0 when every pod's results were collected, 1 when
some were not (the table says why).
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import tarfile
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from .entrypoint import BEGIN, END  # the marker lines in-pod --print-results writes (contract C3)
from .manifests import PART_OF as PART_OF_LABELS, ROLE_LABEL  # the labels the generated objects carry (C4)

(PART_OF, PART_OF_VALUE), = PART_OF_LABELS.items()
#: a results tarball unpacks to at most this many bytes / members (a log is not trusted input)
MAX_UNPACKED_BYTES = 1 << 30
MAX_MEMBERS = 100_000

COLLECTED, RUNNING, NO_BLOCK, TRUNCATED, UNDECODABLE, UNSAFE, NO_LOG = (
    "collected", "still running", "no results block", "truncated results block", "results block does not decode",
    "unsafe tarball", "no log")


class CollectError(Exception):
    """The cluster cannot be read as asked; one line for the user."""


class BlockError(Exception):
    """A pod's results block is missing, cut short or not a tar.gz; ``status`` is the row's word."""

    def __init__(self, status: str, detail: str = "") -> None:
        super().__init__(detail or status)
        self.status, self.detail = status, detail


@dataclass
class Row:
    pod: str
    node: str
    role: str
    phase: str
    status: str = ""
    detail: str = ""
    passed: int | None = None
    failed: int | None = None
    verdicts: dict[str, int] = field(default_factory=dict)
    folder: str = ""

    def cells(self) -> tuple[str, ...]:
        tests = "-" if self.passed is None else f"{self.passed}/{self.failed}"
        verdicts = " ".join(f"{k} {v}" for k, v in sorted(self.verdicts.items())) or "-"
        what = self.status + (f": {self.detail}" if self.detail else "")
        return (self.pod, self.node or "-", self.role or "-", self.phase or "-", tests, verdicts, what)


HEADER = ("pod", "node", "role", "phase", "passed/failed", "verdicts", "results")


# --------------------------------------------------------------------------- pure parts


def extract_block(log: str) -> bytes:
    """The tarball the last results block of ``log`` carries (:class:`BlockError` when there is none,
    it is cut short, or it does not decode as base64 gzip)."""
    start = log.rfind(BEGIN)
    if start < 0:
        raise BlockError(NO_BLOCK)
    body_start = log.find("\n", start)
    end = log.find(END, start)
    if end < 0 or body_start < 0 or body_start > end:
        raise BlockError(TRUNCATED, "the end marker is missing (the pod was cut off, or the log rotated)")
    text = "".join(log[body_start:end].split())
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BlockError(UNDECODABLE, f"not base64 ({exc})") from None
    if not data.startswith(b"\x1f\x8b"):
        raise BlockError(UNDECODABLE, "not gzip data")
    return data


def safe_members(tar: tarfile.TarFile) -> list[tarfile.TarInfo]:
    """The members, when every one is a plain file or folder whose path stays inside the folder it
    is unpacked into (no absolute path, no '..', no link, device or fifo); else :class:`BlockError`."""
    from ..bundle.pack import member_problem

    members, total = [], 0
    for m in tar:
        if len(members) >= MAX_MEMBERS:
            raise BlockError(UNSAFE, f"more than {MAX_MEMBERS} members")
        problem = member_problem(m, "a results tarball")
        if problem:
            raise BlockError(UNSAFE, problem)
        total += m.size
        if total > MAX_UNPACKED_BYTES:
            raise BlockError(UNSAFE, f"unpacks to more than {MAX_UNPACKED_BYTES >> 20} MiB")
        members.append(m)
    return members


def unpack(data: bytes, dest: Path) -> list[str]:
    """Unpack a results tarball into ``dest`` after checking every member (nothing is written when
    one is unsafe); the names written."""
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            members = safe_members(tar)
            dest.mkdir(parents=True, exist_ok=True)
            tar.extractall(dest, members=members, filter="data")
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise BlockError(UNDECODABLE, f"not a tar.gz ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    return [m.name for m in members if m.isfile()]


def _find(folder: Path, name: str) -> Path | None:
    hits = sorted(folder.rglob(name), key=lambda p: (len(p.parts), str(p)))
    return hits[0] if hits else None


def junit_counts(path: Path) -> tuple[int, int] | None:
    """(passed, failed) from a JUnit XML file (errors count as failed, skipped as neither)."""
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError):
        return None
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    passed = failed = 0
    for s in suites:
        for case in s.iter("testcase"):
            kids = {c.tag for c in case}
            if kids & {"failure", "error"}:
                failed += 1
            elif "skipped" not in kids:
                passed += 1
    return passed, failed


def verdict_totals(path: Path) -> dict[str, int]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    out: dict[str, int] = {}
    for c in data.get("claims") or [] if isinstance(data, dict) else []:
        v = str((c or {}).get("verdict", "?"))
        out[v] = out.get(v, 0) + 1
    return out


def folder_for(pod: dict[str, Any]) -> tuple[str, str]:
    """(role, the pod's folder name): a node pod by its node, every other pod by its name."""
    md = pod.get("metadata") or {}
    role = (md.get("labels") or {}).get(ROLE_LABEL) or "unlabelled"
    node = (pod.get("spec") or {}).get("nodeName") or ""
    name = node if role == "node" and node else md.get("name", "?")
    return role, name


def _safe_part(text: str) -> str:
    """A label or name as one path component (they are DNS names; anything else is replaced)."""
    out = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in text).strip(".")
    return out or "_"


def collect_pod(pod: dict[str, Any], log: str | None, log_error: str, out_dir: Path) -> Row:
    """Judge one pod's log and unpack its results; a :class:`Row` either way."""
    md, st = pod.get("metadata") or {}, pod.get("status") or {}
    role, name = folder_for(pod)
    row = Row(pod=md.get("name", "?"), node=(pod.get("spec") or {}).get("nodeName") or "", role=role,
              phase=st.get("phase") or "")
    if log is None:
        row.status, row.detail = (RUNNING if row.phase in ("Pending", "Running") else NO_LOG), log_error
        return row
    try:
        data = extract_block(log)
        dest = out_dir / _safe_part(role) / _safe_part(name)
        unpack(data, dest)
    except BlockError as exc:
        status = exc.status
        if status == NO_BLOCK and row.phase in ("Pending", "Running"):
            status = RUNNING
        row.status, row.detail = status, exc.detail
        return row
    row.status, row.folder = COLLECTED, str(dest)
    junit = _find(dest, "junit.xml")
    counts = junit_counts(junit) if junit else None
    if counts:
        row.passed, row.failed = counts
    summary = _find(dest, "summary.json")
    row.verdicts = verdict_totals(summary) if summary else {}
    if not junit or not summary:
        row.detail = "no " + " and no ".join(n for n, p in (("junit.xml", junit), ("summary.json", summary)) if not p)
    return row


# --------------------------------------------------------------------------- the cluster


def selector(extra: str | None) -> str:
    base = f"{PART_OF}={PART_OF_VALUE}"
    return f"{base},{extra}" if extra else base


def collect(cluster: Any, namespace: str, out_dir: Path, *, extra_selector: str | None = None) -> list[Row]:
    """Read the pods' logs and unpack their results (only GET requests); :class:`CollectError` when the
    namespace or the pods cannot be read."""
    from kubernetes.client.rest import ApiException
    from urllib3.exceptions import HTTPError

    from ..k8s.observe import Reader, _one_line

    r = Reader(cluster)
    sel = selector(extra_selector)
    # does the namespace exist? (a list with a field selector: the same GET rights as a read)
    names, _ = r.list("Namespace", partial(r.core.list_namespace, field_selector=f"metadata.name={namespace}"))
    if names is not None and namespace not in {(n.get("metadata") or {}).get("name") for n in names}:
        raise CollectError(f"--namespace {namespace}: no such namespace in {cluster.describe()}")
    # (None: the credentials may not list namespaces; the pod list below then says what there is)
    pods, why = r.list("Pod", partial(r.core.list_namespaced_pod, label_selector=sel), namespace)
    if pods is None:
        raise CollectError(f"cannot list pods in namespace {namespace}: {why}")
    rows = []
    for pod in sorted(pods, key=lambda p: (folder_for(p)[0], (p.get("metadata") or {}).get("name", ""))):
        name = (pod.get("metadata") or {}).get("name", "")
        log, err = None, ""
        try:
            first = next(iter((pod.get("spec") or {}).get("containers") or []), {}).get("name")
            kw = {"container": first} if first else {}
            log = r.core.read_namespaced_pod_log(name, namespace, _request_timeout=(10, 300), **kw)
        except ApiException as exc:
            body = exc.body.decode(errors="replace") if isinstance(exc.body, bytes) else str(exc.body or "")
            try:
                err = json.loads(body).get("message") or f"{exc.status} {exc.reason}"
            except ValueError:
                err = f"{exc.status} {exc.reason}"
        except (HTTPError, OSError) as exc:
            err = _one_line(exc)
        rows.append(collect_pod(pod, log, err, out_dir))
    rows += _absent_workloads(r, namespace, sel, pods)
    return rows


def _absent_workloads(r: Any, namespace: str, sel: str, pods: list[dict[str, Any]]) -> list[Row]:
    """A row for each of our Jobs/DaemonSets that has no pod (not started yet, or its pods are gone)."""
    owners = {(o.get("kind"), o.get("name")) for p in pods for o in (p.get("metadata") or {}).get("ownerReferences") or []}
    rows = []
    for kind, fn in (("Job", r.batch.list_namespaced_job), ("DaemonSet", r.apps.list_namespaced_daemon_set)):
        objs, _ = r.list(kind, partial(fn, label_selector=sel), namespace)
        for o in objs or []:
            md = o.get("metadata") or {}
            if (kind, md.get("name")) in owners:
                continue
            labels = (((o.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels") or {}
            rows.append(Row(pod=f"({kind} {md.get('name')})", node="", role=labels.get(ROLE_LABEL, ""), phase="",
                            status="no pod", detail="none scheduled yet, or its pods were deleted"))
    return rows


# --------------------------------------------------------------------------- the verb


def register(k8s_sub) -> None:
    """Add ``collect`` to the ``k8s`` verb's sub-verbs."""
    from ..cli import verb_parser

    p = verb_parser(k8s_sub, "collect", parent="k8s", help="fetch the plain Jobs'/DaemonSet's results from their pods' logs "
                  "(read-only)", description=(
                      "Fetch the results of pytest-inference's plain Jobs and DaemonSet (k8s manifests --plain) from "
                      "their pods' logs: each pod prints its results folder as a base64 tar.gz block (in-pod "
                      "--print-results). Unpacks each into DIR/<role>/<pod>/ (DIR/node/<node>/ for the node "
                      "DaemonSet) and prints one row per pod. Read-only: only get/list requests and pod logs, and "
                      "the pods need no API rights (why logs and not a results ConfigMap: no write rights in the "
                      "pods, and no 1 MiB cap). Exit 0: every pod's results collected; 1: some not (the table says "
                      "why); 2: bad input."))
    p.add_argument("--kubeconfig", metavar="FILE", help="kubeconfig (default $KUBECONFIG, else ~/.kube/config)")
    p.add_argument("--context", metavar="NAME", help="kubeconfig context (default: its current-context)")
    p.add_argument("--namespace", metavar="NS", help="namespace of the Jobs/DaemonSet (default: the context's, "
                   "else 'default')")
    p.add_argument("--selector", metavar="LABELS", help=f"more labels the pods must carry (besides {PART_OF}="
                   f"{PART_OF_VALUE}), e.g. {ROLE_LABEL}=load-shard")
    p.add_argument("-o", "--out", required=True, metavar="DIR", help="folder to unpack into: DIR/<role>/<pod or node>/")
    p.add_argument("--json", action="store_true", help="print the rows as JSON instead of the table")
    p.set_defaults(func=_collect)


def _collect(args: Any) -> int:
    from ..cli import fail
    from ..k8s.model import SelectorError, parse_selector
    from ..k8s.observe import K8sError, connect

    verb = "k8s collect"
    if args.selector:
        try:
            parse_selector(args.selector)
        except SelectorError as exc:
            return fail(verb, f"--selector {args.selector}: {exc}")
    out = Path(args.out).expanduser()
    if out.exists() and not out.is_dir():
        return fail(verb, f"-o {args.out}: exists and is not a folder")
    try:
        cluster = connect(args.kubeconfig, args.context, namespace=args.namespace)
    except K8sError as exc:
        return fail(verb, str(exc))
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return fail(verb, f"-o {args.out}: cannot create it ({exc.strerror})")
    try:
        rows = collect(cluster, cluster.namespace, out, extra_selector=args.selector)
    except (CollectError, K8sError) as exc:
        return fail(verb, str(exc))
    from ..report.terminal import aligned
    from ..supervise import write_text_atomic

    write_text_atomic(out / "collect.json", json.dumps([asdict(r) for r in rows], indent=2) + "\n")
    if args.json:
        print(json.dumps([asdict(r) for r in rows], indent=2))
    elif not rows:
        print(f"no pods labelled {selector(args.selector)} in namespace {cluster.namespace}")
    else:
        print("\n".join(aligned(HEADER, [r.cells() for r in rows])))
        done = sum(r.status == COLLECTED for r in rows)
        print(f"\n{done} of {len(rows)} collected into {out}")
    return 0 if rows and all(r.status == COLLECTED for r in rows) else 1
