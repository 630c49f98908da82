"""Node backends: URL choice, kubectl argv, recordings, and a real network namespace."""

import os
import shutil
import subprocess

import pytest

from pytest_inference.node import KubectlBackend, LocalBackend, NetnsBackend, Node, NodeError, RecordedBackend
from pytest_inference.node.backends import backend_from_url, record_key

from .test_parse_and_judge import DATA


def test_backend_urls():
    assert isinstance(backend_from_url("local://"), LocalBackend)
    assert backend_from_url("netns://pti-node").prefix == ("nsenter", "--net=/run/netns/pti-node")
    k = backend_from_url("kubectl://kube-system/probe-abc?container=probe", kubeconfig="/k", context="c")
    assert isinstance(k, KubectlBackend)
    assert k.argv(["ss", "-tin"]) == ["kubectl", "--kubeconfig", "/k", "--context", "c", "exec", "-n", "kube-system",
                                      "probe-abc", "-c", "probe", "--", "nsenter", "-t", "1", "-m", "-n", "--",
                                      "ss", "-tin"]
    assert "nsenter" not in backend_from_url("kubectl://ns/pod?nsenter=0").argv(["true"])


@pytest.mark.parametrize("url", ["ssh://host", "kubectl://only-one", "netns://a/b", "bogus"])
def test_bad_node_url_is_one_line(url):
    with pytest.raises(NodeError) as e:
        backend_from_url(url)
    assert "\n" not in str(e.value) and url.split("/")[0] in str(e.value)


def test_failing_command_is_one_line():
    with pytest.raises(NodeError, match=r"local://: ls /nonexistent-path-xyz failed \(exit 2\)"):
        LocalBackend().run(["ls", "/nonexistent-path-xyz"])
    with pytest.raises(NodeError, match="command not found: no-such-tool-xyz"):
        LocalBackend().run(["no-such-tool-xyz"])


def test_kubectl_missing_or_unreachable_is_a_node_error():
    """kubectl against a cluster that is not there: one line, not a traceback."""
    if not shutil.which("kubectl"):
        pytest.skip("kubectl not installed")
    backend = KubectlBackend("p", "ns", kubeconfig="/nonexistent/kubeconfig")
    with pytest.raises(NodeError) as e:
        backend.run(["true"], timeout=20)
    assert str(e.value).startswith("kubectl://ns/p: true failed")


def _record_node(folder, mountinfo, ss_text, *, mtu, rmem, tcp_rmem):
    """A recording as RecordedBackend.record would leave it."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "proc/self").mkdir(parents=True)
    (folder / "proc/self/mountinfo").write_text(mountinfo)
    files = {
        ("ip", "-o", "route", "get", "10.0.0.5"): "10.0.0.5 dev eth1 src 10.0.0.9 uid 0 \\    cache",
        ("ip", "-o", "link", "show", "dev", "eth1"): f"3: eth1: <BROADCAST,UP> mtu {mtu} qdisc mq state UP",
        ("ss", "-tinp", "state", "established", "( dport = :2049 )"): ss_text,
        ("cat", "/proc/sys/net/core/rmem_max"): f"{rmem}\n",
        ("cat", "/proc/sys/net/core/wmem_max"): f"{rmem}\n",
        ("cat", "/proc/sys/net/ipv4/tcp_rmem"): f"4096\t87380\t{tcp_rmem}\n",
        ("cat", "/proc/sys/net/ipv4/tcp_wmem"): f"4096\t65536\t{tcp_rmem}\n",
    }
    for argv, out in files.items():
        (folder / record_key(argv)).write_text(out)
    return folder


def test_snapshot_of_a_recorded_tuned_node_with_a_stale_mount(tmp_path):
    rec = _record_node(tmp_path / "n1", (DATA / "mountinfo_nfs.txt").read_text(),
                       (DATA / "ss_nfs_stale.txt").read_text(), mtu=9000, rmem=16777216, tcp_rmem=16777216)
    node = Node(backend_from_url(f"recorded://{rec}"))
    snap = node.snapshot("10.0.0.5")
    assert (snap.device, snap.mtu, snap.rmem_max, snap.tcp_wmem_max, snap.errors) == ("eth1", 9000, 16777216,
                                                                                      16777216, {})
    assert len(snap.connections) == 2 and [s.connection.local_port for s in snap.stale] == [816]
    assert node.mount_for("/mnt/models/x").nconnect == 8


def test_snapshot_keeps_going_when_a_probe_fails(tmp_path):
    rec = _record_node(tmp_path / "n2", "", "", mtu=1500, rmem=212992, tcp_rmem=6291456)
    (rec / record_key(("ss", "-tinp", "state", "established", "( dport = :2049 )"))).unlink()
    snap = Node(RecordedBackend(rec)).snapshot("10.0.0.5")
    assert snap.mtu == 1500 and snap.rmem_max == 212992 and snap.tcp_rmem_max == 6291456
    assert "nothing recorded for ss" in snap.errors["stale_nfs_connections"]


def test_record_then_replay_this_host(tmp_path):
    argv = ["cat", "/proc/sys/net/core/rmem_max"]
    live = RecordedBackend.record(tmp_path, LocalBackend(), argv)
    assert Node(RecordedBackend(tmp_path)).sysctl("net.core.rmem_max") == live.strip()


@pytest.fixture
def netns():
    if os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("nsenter"):
        pytest.skip("needs root, ip and nsenter for a network namespace")
    name = f"pti-t-{os.getpid()}"
    if subprocess.run(["ip", "netns", "add", name], capture_output=True).returncode != 0:
        pytest.skip("cannot create a network namespace here")
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def test_netns_backend_sees_the_namespace_not_the_host(netns):
    """tcp_rmem is per namespace; rmem_max mirrors the host; the route to 127.0.0.1 is the ns's lo."""
    subprocess.run(["ip", "netns", "exec", netns, "sysctl", "-qw", "net.ipv4.tcp_rmem=4096 87380 7777777"], check=True)
    inside, host = Node(NetnsBackend(netns)), Node(LocalBackend())
    assert inside.sysctl_max("net.ipv4.tcp_rmem") == 7777777 != host.sysctl_max("net.ipv4.tcp_rmem")
    assert inside.sysctl_max("net.core.rmem_max") == host.sysctl_max("net.core.rmem_max")
    subprocess.run(["ip", "-n", netns, "link", "set", "lo", "mtu", "3000"], check=True)
    route, mtu = inside.path_mtu("127.0.0.1")
    assert (route.dev, mtu) == ("lo", 3000)
    with pytest.raises(NodeError, match=f"netns://{netns}: ip -o route get 10.9.9.9 failed"):
        inside.route_to("10.9.9.9")  # no route in an empty namespace: one line


@pytest.mark.parametrize(("url", "says"), [
    ("kubectl://[fe80::1/ns/pod", "not a valid node URL (Invalid IPv6 URL)"),
    ("ssh://root:s3cr3tpw@host", "a node URL carries no user or password"),
    ("netns://u:s3cr3tpw@lab", "a node URL carries no user or password"),
])
def test_bad_node_url_is_one_line_without_the_password(url, says):
    from pytest_inference.node.backends import NodeError, backend_from_url

    with pytest.raises(NodeError) as e:
        backend_from_url(url)
    assert says in str(e.value) and "s3cr3tpw" not in str(e.value) and "\n" not in str(e.value)
