"""Storage: "model weights stream from NFS at 800 MB/s or more", over nconnect=8, NFSv4.1.

The model path is --model-path (the mount that holds it), --nfs-url (a server read without a
mount), or the embedded local NFS lab. Each test states one claim; --target sets the bar.
"""

import pytest

from pytest_inference.storage.probe import version_number

pytestmark = pytest.mark.storage


def test_model_path_is_on_nfs(model_storage, claim):
    if not model_storage.is_nfs:
        pytest.fail(model_storage.not_nfs_reason(), pytrace=False)
    version = version_number(model_storage.version)
    if version is None:
        claim.inconclusive("storage.nfs_version", f"{model_storage.location}: the NFS version is not shown")
        return
    claim("storage.nfs_version", [version], details=model_storage.to_dict())


def test_nconnect(model_storage, claim):
    if model_storage.mode == "url":
        pytest.skip("URL mode (--nfs-url, or the local NFS lab) reads without a mount and nconnect is a kernel "
                    "mount option: give --model-path on an NFS mount to check it")
    if not model_storage.is_nfs:
        pytest.fail(model_storage.not_nfs_reason(), pytrace=False)
    claim("storage.nconnect", [model_storage.nconnect], details=model_storage.to_dict())


def test_weights_read_throughput(model_storage, storage_reads, claim):
    """All weight files, several readers in parallel, page cache excluded; bytes / seconds over all rounds."""
    total = sum(r.bytes for r in storage_reads) / sum(r.seconds for r in storage_reads) / 1e6
    claim("storage.nfs_read_MBps", [r.MBps for r in storage_reads], measured=total, stat="mean", unit="MB/s",
          details={"storage": model_storage.to_dict(), "rounds": [r.to_dict() for r in storage_reads],
                   "cache": storage_reads[0].method},
          parameters={"readers": storage_reads[0].readers, "rounds": len(storage_reads)})
