"""Shared model storage: download once to a ReadWriteMany NFS volume, mount it tuned."""

import pytest

pytestmark = pytest.mark.k8s


def test_model_pvc_rwx_and_bound(k8s_check):
    """K8S-STORAGE-001: the model PVC is ReadWriteMany and bound (static: binds to an RWX PV)."""
    k8s_check("K8S-STORAGE-001")


def test_nfs_mount_options(k8s_check):
    """K8S-STORAGE-002: the NFS PV mounts with nconnect >= the target's and vers >= 4.1."""
    k8s_check("K8S-STORAGE-002")


def test_download_job_completed(k8s_check):
    """K8S-STORAGE-003: a Job writes the model into the claim (live: and it completed)."""
    k8s_check("K8S-STORAGE-003")
