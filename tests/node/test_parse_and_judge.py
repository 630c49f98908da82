"""Node parsers and the MSS-race judge on recorded kernel output (CI has no kernel NFS client)."""

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_inference.node.judge import REMOUNT, SERVER_SIDE, mss_allowed, stale_connections
from pytest_inference.node.parse import (
    ParseError,
    TcpConnection,
    mount_for,
    parse_link_mtu,
    parse_mountinfo,
    parse_route_get,
    parse_ss,
    sysctl_max,
)

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def mounts():
    return parse_mountinfo((DATA / "mountinfo_nfs.txt").read_text())


def test_nfs4_with_nconnect(mounts):
    m = mount_for(mounts, "/mnt/models/llama/model-00001-of-00030.safetensors")
    assert (m.mount_point, m.fstype, m.is_nfs) == ("/mnt/models", "nfs4", True)
    assert m.nfs_options() == {"vers": "4.1", "rsize": 1048576, "wsize": 1048576, "proto": "tcp", "hard": True,
                               "addr": "10.0.0.5", "nconnect": 8, "nconnect_set": True}


def test_nconnect_absent_means_one_connection(mounts):
    m = mount_for(mounts, "/mnt/plain/x")
    assert m.nfs_version == "4.2"
    assert m.nconnect == 1 and m.nfs_options()["nconnect_set"] is False
    assert m.rsize == 524288


def test_nfs_v3_soft(mounts):
    m = mount_for(mounts, "/mnt/v3/weights.bin")
    assert (m.fstype, m.nfs_version, m.hard, m.nconnect, m.server_addr) == ("nfs", "3", False, 16, "10.0.0.7")


def test_a_mount_inside_the_nfs_mount_wins_and_is_not_nfs(mounts):
    m = mount_for(mounts, "/mnt/models/cache/f")
    assert (m.fstype, m.is_nfs, m.nfs_version) == ("tmpfs", False, None)


def test_non_nfs_path_is_reported_as_what_it_is(mounts):
    m = mount_for(mounts, "/home/user/model")
    assert (m.mount_point, m.fstype, m.is_nfs) == ("/", "ext4", False)
    assert m.describe() == "/ (ext4 from /dev/vda1)"


def test_escaped_mount_point_and_ipv6_server(mounts):
    m = mount_for(mounts, "/mnt/with space/a")
    assert m.mount_point == "/mnt/with space"
    assert m.server_addr == "fd00::5" and m.proto == "tcp6"


def test_prefix_is_a_path_component_not_a_string_prefix(mounts):
    assert mount_for(mounts, "/mnt/models2/x").mount_point == "/"


def test_malformed_mountinfo_is_one_line():
    with pytest.raises(ParseError, match="line 1"):
        parse_mountinfo("not a mountinfo line")


def test_ss_kernel_sockets_and_mss_not_confused_with_advmss():
    conns = parse_ss((DATA / "ss_nfs_stale.txt").read_text())
    assert [(c.peer, c.mss, c.pmtu, c.advmss, c.process) for c in conns] == [
        ("10.0.0.5:2049", 1448, 9000, 1448, None), ("10.0.0.5:2049", 8948, 9000, 8948, None)]
    assert conns[0].local_port == 816 and conns[0].peer_port == 2049


def test_ss_with_process_column():
    conns = parse_ss((DATA / "ss_nfs_recorded_lab.txt").read_text())
    assert [(c.mss, c.pmtu, c.process) for c in conns] == [(1448, 1500, "python3"), (8948, 9000, "python3")]


def test_ss_ipv6_and_mapped_addresses():
    text = ("0 0 [::ffff:10.0.0.9]:700 [::ffff:10.0.0.5]:2049\n\t cubic mss:1448 pmtu:9000 advmss:1448\n"
            "0 0 [fd00::9]:701 [fd00::5]:2049\n\t cubic mss:8928 pmtu:9000 advmss:8928\n")
    a, b = parse_ss(text)
    assert (a.peer_host, a.peer_port, b.peer_host) == ("10.0.0.5", 2049, "fd00::5")


def test_route_and_link_parsing():
    r = parse_route_get("10.0.0.5 via 10.0.0.1 dev eth1 src 10.0.0.9 uid 0 \\    cache mtu 1400")
    assert (r.dev, r.src, r.via, r.mtu) == ("eth1", "10.0.0.9", "10.0.0.1", 1400)
    assert parse_route_get("10.201.0.1 dev pv-n src 10.201.0.2 uid 0 \\    cache").mtu is None
    assert parse_link_mtu("7: pv-n@if8: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 9000 qdisc noqueue state UP") == 9000
    with pytest.raises(ParseError):
        parse_route_get("RTNETLINK answers: Network is unreachable")


def test_sysctl_max():
    assert sysctl_max("4096\t131072\t33554432\n") == 33554432
    assert sysctl_max("212992") == 212992
    with pytest.raises(ParseError):
        sysctl_max("")


def test_recorded_stale_mount_is_flagged_remount():
    conns = parse_ss((DATA / "ss_nfs_stale.txt").read_text())
    stale = stale_connections(conns, 9000)
    assert len(stale) == 1 and stale[0].connection.local_port == 816 and stale[0].reason == REMOUNT
    assert "mss 1448 on a path MTU of 9000 (allows 8960)" in stale[0].line()


def test_lab_recording_is_judged_against_the_interface_mtu_not_ss_pmtu():
    """The lab's stale socket still says pmtu:1500 (it had not sent since the change): the judge
    takes the route's current MTU, so the stale socket is caught anyway."""
    conns = parse_ss((DATA / "ss_nfs_recorded_lab.txt").read_text())
    assert [s.connection.local_port for s in stale_connections(conns, lambda c: 9000)] == [630]
    assert stale_connections(conns, 1500) == []


def test_small_mss_from_the_server_side_has_its_own_reason():
    conn = TcpConnection("10.0.0.9:800", "10.0.0.5:2049", mss=1448, pmtu=9000, advmss=8948)
    (s,) = stale_connections([conn], 9000)
    assert s.reason == SERVER_SIDE


def test_unknown_mtu_or_mss_is_not_judged():
    conns = [TcpConnection("a:1", "10.0.0.5:2049", mss=None), TcpConnection("a:2", "10.0.0.5:2049", mss=1448)]
    assert stale_connections(conns, lambda c: None) == []
    assert len(stale_connections(conns, 9000)) == 1


@given(mtu=st.integers(min_value=576, max_value=65536), options=st.integers(min_value=0, max_value=40),
       ipv6=st.booleans())
def test_a_connection_opened_at_the_current_mtu_is_never_stale(mtu, options, ipv6):
    """Whatever TCP options (0-40 bytes) a connection negotiated at the current MTU, it is fine."""
    mss = mss_allowed(mtu, ipv6) - options
    peer = "[fd00::5]:2049" if ipv6 else "10.0.0.5:2049"
    assert stale_connections([TcpConnection("x:1", peer, mss=mss, advmss=mss)], mtu) == []


@given(old=st.integers(min_value=576, max_value=8000), gap=st.integers(min_value=81, max_value=57000),
       options=st.integers(min_value=0, max_value=40))
def test_a_connection_from_a_smaller_mtu_is_stale(old, gap, options):
    """Opened at MTU ``old``, judged after the MTU rose by more than the options' 40 bytes + 40."""
    new = old + gap
    mss = mss_allowed(old) - options
    (s,) = stale_connections([TcpConnection("x:1", "10.0.0.5:2049", mss=mss, advmss=mss)], new)
    assert s.reason == REMOUNT and s.path_mtu == new
