"""One real lab (nfs-ganesha in a namespace, a node namespace, a veth pair) shared by the module:
its layout, exact bytes over NFS from the node, the tuned and untuned settings, switching in
place, and the in-process rules for a second lab. Skipped where the lab cannot run."""

from __future__ import annotations

import json
import os
import struct

import pytest
from netlab_helpers import (
    MiB,
    assert_server_tuned,
    assert_tuned,
    assert_untuned,
    link_mtu,
    link_rx_bytes,
    netns_names,
    node_read,
    offloads,
    require_lab,
    sha256_file,
)

from pytest_inference.netlab import LabError, NetLab

WEIGHTS_MIB, SHARDS = 32, 4


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    require_lab()
    extra = tmp_path_factory.mktemp("extra") / "config.json"
    extra.write_text(json.dumps({"model_type": "llama", "hidden_size": 64}))
    with NetLab(tuned=True, weights_mib=WEIGHTS_MIB, shards=SHARDS, extra_files={"tiny/config.json": extra}) as lab:
        yield lab


def test_layout_and_addresses(lab):
    assert lab.server_netns == f"pti-srv-{lab.token}" and lab.node_netns == f"pti-node-{lab.token}"
    assert {lab.server_netns, lab.node_netns} <= netns_names()
    assert len(lab.node_device) <= 15 and len(lab.server_device) <= 15
    assert lab.server_addr.startswith("10.") and lab.server_addr.endswith(".1")
    assert lab.node_addr == lab.server_addr[:-1] + "2"
    assert lab.netns_path == f"/run/netns/{lab.node_netns}" and os.path.exists(lab.netns_path)
    assert lab.node_prefix() == ["nsenter", f"--net=/run/netns/{lab.node_netns}"]
    assert lab.nfs_url() == f"nfs://{lab.server_addr}/export?version=4"
    assert lab.nfs_url("model/x.bin") == f"nfs://{lab.server_addr}/export/model/x.bin?version=4"
    assert lab.model_dir == "model"
    model = lab.export_dir / lab.model_dir
    shards = sorted(p.name for p in model.glob("*.safetensors"))
    assert shards == [f"model-{i:05d}-of-{SHARDS:05d}.safetensors" for i in range(1, SHARDS + 1)]
    assert lab.weight_files == [f"model/{s}" for s in shards]
    assert sum((model / s).stat().st_size for s in shards) == WEIGHTS_MIB * MiB
    for s in shards:  # valid safetensors: header length, JSON header, data to the end of the file
        data = (model / s).read_bytes()
        (hlen,) = struct.unpack("<Q", data[:8])
        header = json.loads(data[8:8 + hlen])
        (tensor,) = [v for k, v in header.items() if k != "__metadata__"]
        assert tensor["data_offsets"][1] == len(data) - 8 - hlen == tensor["shape"][0]
    index = json.loads((model / "model.safetensors.index.json").read_text())
    assert index["metadata"]["total_size"] == WEIGHTS_MIB * MiB and sorted(set(index["weight_map"].values())) == shards
    assert json.loads((model / "config.json").read_text())["model_type"] == "llama"
    assert json.loads((lab.export_dir / "tiny/config.json").read_text())["hidden_size"] == 64
    # the lab's addresses live only in its namespaces
    with open("/proc/net/fib_trie") as f:
        assert lab.server_addr not in f.read()


def test_node_reads_exact_bytes_over_the_veth(lab):
    rel = lab.weight_files[1]
    rx0 = link_rx_bytes(lab.node_netns, lab.node_device)
    got = node_read(lab, rel)
    rx = link_rx_bytes(lab.node_netns, lab.node_device) - rx0
    path = lab.export_dir / rel
    assert got["bytes"] == path.stat().st_size
    assert got["sha256"] == sha256_file(path)
    assert rx >= got["bytes"]  # the bytes really crossed the node's veth
    small = node_read(lab, "tiny/config.json")
    assert small["sha256"] == sha256_file(lab.export_dir / "tiny/config.json")


def test_tuned_settings(lab):
    assert_tuned(lab)
    assert_server_tuned(lab)
    for ns, dev in ((lab.node_netns, lab.node_device), (lab.server_netns, lab.server_device)):
        feats = offloads(ns, dev)
        assert feats["tcp-segmentation-offload"] == "off"
        assert feats["generic-segmentation-offload"] == "off"
        assert feats["generic-receive-offload"] == "off"


def test_untune_and_tune_in_place(lab):
    ganesha_pid = lab.ganesha.pid
    try:
        lab.untune()
        assert_untuned(lab)
        assert_server_tuned(lab)
        got = node_read(lab, lab.weight_files[0])
        assert got["sha256"] == sha256_file(lab.export_dir / lab.weight_files[0])
    finally:
        lab.tune()
    assert_tuned(lab)
    assert lab.ganesha.pid == ganesha_pid and lab.ganesha.poll() is None  # in place: same server
    assert node_read(lab, lab.weight_files[0])["bytes"] == (lab.export_dir / lab.weight_files[0]).stat().st_size


def test_set_mtu_both_ends(lab):
    try:
        lab.set_mtu(4000)
        assert link_mtu(lab.node_netns, lab.node_device) == 4000
        assert link_mtu(lab.server_netns, lab.server_device) == 4000
        assert lab.mtu == 4000
    finally:
        lab.tune()
    assert_tuned(lab)


def test_second_lab_in_process_shares_same_host_values(lab):
    """Two tuned labs want the same host values: they share the host settings; the first to stop
    does not restore them under the other."""
    with NetLab(tuned=True, weights_mib=1, shards=1) as other:
        assert other.server_netns != lab.server_netns and other.node_device != lab.node_device
        assert other.server_addr != lab.server_addr
        assert node_read(other, other.weight_files[0])["bytes"] == MiB
        with pytest.raises(LabError, match="another lab in this process holds the host network settings"):
            other.untune()  # would change the host values under `lab`
        assert other.tuned
    assert other.server_netns not in netns_names()
    assert_tuned(lab)  # still 16 MiB on the host


def test_second_lab_in_process_with_other_host_values_is_refused(lab):
    other = NetLab(tuned=False, weights_mib=1, shards=1)
    with pytest.raises(LabError, match="another lab in this process holds the host network settings; stop it first"):
        other.start()
    assert not [n for n in netns_names() if other.token in n]
    assert other.tmpdir is None
    other.stop()  # harmless
    assert_tuned(lab)
