"""Node metric -> probe field, written once (node/probes.NODE_SETTINGS): the probes fill it, the
node suite claims each metric from it (one parametrized test), and the k8s suite's K8S-NODE-001
judges the same metrics with the same readings."""

import json
from pathlib import Path

from pytest_inference.catalog import find
from pytest_inference.catalog.checks import check
from pytest_inference.node import Node, RecordedBackend
from pytest_inference.node.backends import record_key
from pytest_inference.node.probes import NODE_SETTINGS, NodeSnapshot

from .test_backends import _record_node
from .test_parse_and_judge import DATA

ROOT = Path(__file__).resolve().parents[2]
SNAPSHOT_FIELDS = set(NodeSnapshot.__dataclass_fields__)


def test_every_node_metric_has_a_field_a_catalog_entry_and_a_k8s_default():
    assert set(NODE_SETTINGS) == {"node.mtu", "node.rmem_max", "node.wmem_max", "node.tcp_rmem_max",
                                  "node.tcp_wmem_max", "node.stale_nfs_connections"}
    for metric, s in NODE_SETTINGS.items():
        assert s.metric == metric and s.field in SNAPSHOT_FIELDS and s.key == metric.split(".", 1)[1]
        assert find(metric) is not None, metric
    # K8S-NODE-001 judges exactly these, each with a default requirement when the target sets none
    assert set(check("K8S-NODE-001").inputs) == set(NODE_SETTINGS)
    # ... the same bars every shipped target sets (the catalog only stands in for a target without them)
    from pytest_inference.targets import load_target

    for name in ("cpu-local", "h100", "mi300x"):
        t = load_target(name)
        for metric, default in check("K8S-NODE-001").inputs.items():
            req = t.requirement(metric)
            assert req is not None and (req.op, req.threshold) == (default.op, default.threshold), (name, metric)


def test_readings_of_a_recorded_node(tmp_path):
    rec = _record_node(tmp_path / "n1", (DATA / "mountinfo_nfs.txt").read_text(),
                       (DATA / "ss_nfs_stale.txt").read_text(), mtu=9000, rmem=16777216, tcp_rmem=6291456)
    snap = Node(RecordedBackend(rec)).snapshot("10.0.0.5")
    got = {m: snap.reading(m) for m in NODE_SETTINGS}
    assert got == {"node.mtu": (9000, ""), "node.rmem_max": (16777216, ""), "node.wmem_max": (16777216, ""),
                   "node.tcp_rmem_max": (6291456, ""), "node.tcp_wmem_max": (6291456, ""),
                   "node.stale_nfs_connections": (1, "")}
    # every sysctl-backed setting reaches to_dict under its key
    d = snap.to_dict()
    assert all(d[s.key] == getattr(snap, s.field) for s in NODE_SETTINGS.values() if s.sysctl)


def test_a_reading_that_failed_says_why_and_no_connection_is_not_zero_stale(tmp_path):
    rec = _record_node(tmp_path / "n2", "", "", mtu=1500, rmem=212992, tcp_rmem=6291456)
    (rec / record_key(("ss", "-tinp", "state", "established", "( dport = :2049 )"))).unlink()
    (rec / "proc/sys/net/core/wmem_max").unlink(missing_ok=True)
    (rec / record_key(("cat", "/proc/sys/net/core/wmem_max"))).unlink(missing_ok=True)
    snap = Node(RecordedBackend(rec)).snapshot("10.0.0.5")
    value, why = snap.reading("node.stale_nfs_connections")
    assert value is None and "nothing recorded for ss" in why
    value, why = snap.reading("node.wmem_max")
    assert value is None and why == snap.errors["wmem_max"] and why
    snap = NodeSnapshot(node="n3", nfs_server=None)
    assert snap.reading("node.stale_nfs_connections") == (
        None, "no established NFS connection on n3 to judge (nothing mounted from the server?)")
    assert snap.reading("node.mtu") == (None, "MTU not probed")
    assert snap.reading("node.tcp_rmem_max") == (None, "max of net.ipv4.tcp_rmem not probed")


def _run_node_suite(pytester, rec, *args):
    report = pytester.path / "report"
    res = pytester.runpytest_subprocess(str(ROOT / "suites" / "node"), "-p", "no:cacheprovider", "--rootdir",
                                        str(ROOT), "--inference-report", str(report), "--node", f"recorded://{rec}",
                                        "--nfs-server", "10.0.0.5", *args, timeout=300)
    data = json.loads((report / "summary.json").read_text())
    return res, {c["metric"]: c for c in data["claims"]}


def test_node_suite_claims_every_setting_from_the_table(pytester, tmp_path):
    rec = _record_node(tmp_path / "n1", (DATA / "mountinfo_nfs.txt").read_text(),
                       (DATA / "ss_nfs_stale.txt").read_text(), mtu=9000, rmem=16777216, tcp_rmem=4194304)
    res, claims = _run_node_suite(pytester, rec, "--target", "h100")
    assert set(claims) == set(NODE_SETTINGS)
    verdicts = {m: c["verdict"] for m, c in claims.items()}
    assert verdicts == {"node.mtu": "pass", "node.rmem_max": "pass", "node.wmem_max": "pass",
                        "node.tcp_rmem_max": "fail", "node.tcp_wmem_max": "fail",
                        "node.stale_nfs_connections": "fail"}
    assert claims["node.mtu"]["unit"] == "B" and claims["node.tcp_rmem_max"]["measured"] == 4194304
    assert claims["node.tcp_rmem_max"]["details"]["source"] == "max of net.ipv4.tcp_rmem"
    stale = claims["node.stale_nfs_connections"]
    assert stale["measured"] == 1 and "remount" in stale["details"]["remediation"]
    res.assert_outcomes(passed=3, failed=3)


def test_node_suite_says_why_a_setting_was_not_read(pytester, tmp_path):
    """The probe's own error reaches the claim (before, the stale test looked the error up under the
    metric's name, never found it, and said "no established NFS connection")."""
    rec = _record_node(tmp_path / "n2", "", "", mtu=9000, rmem=16777216, tcp_rmem=16777216)
    (rec / record_key(("ss", "-tinp", "state", "established", "( dport = :2049 )"))).unlink()
    res, claims = _run_node_suite(pytester, rec, "--target", "h100")
    stale = claims["node.stale_nfs_connections"]
    assert stale["verdict"] == "inconclusive" and "nothing recorded for ss" in stale["reason"]
    assert all(c["verdict"] == "pass" for m, c in claims.items() if m != "node.stale_nfs_connections")
