"""A real network test lab: an NFS server and a "node" in two network namespaces joined by a veth pair.

The storage and node suites make claims such as "the node reads its weights from NFS at ≥ X MB/s",
"the node's NIC MTU is 9000", "the node's TCP buffers allow 16 MiB windows". Mocking those would
test nothing; this module builds the real thing on one Linux machine, as root::

    from pytest_inference.netlab import NetLab, LabUnavailable, LabError

    with NetLab(tuned=True, weights_mib=256, shards=4) as lab:
        subprocess.run(lab.node_prefix() + [sys.executable, "client.py", lab.nfs_url("model")])

* **server**: nfs-ganesha (userspace NFSv4, the kernel here has no NFS client *or* server we could
  use) in the namespace ``pti-srv-<token>``, exporting a private temporary directory that holds
  ``model/`` (``shards`` safetensors files totalling ``weights_mib`` MiB, ``config.json``,
  ``model.safetensors.index.json``) and any ``extra_files``. Its buffers are always tuned: the
  lab measures the *node*.
* **node**: the namespace ``pti-node-<token>``. Clients run there with host mounts and the node's
  network (``lab.node_prefix()`` = ``nsenter --net=/run/netns/pti-node-<token>``): a process
  started with ``ip netns exec`` gets a private mount namespace, ``nsenter --net`` does not.
* **tuned** node: MTU 9000 on both veth ends, ``tcp_rmem``/``tcp_wmem`` max 16 MiB in the node
  namespace, host-wide ``net.core.rmem_max``/``wmem_max`` 16 MiB. **untuned**: MTU 1500, the
  kernel's default ``tcp_rmem``/``tcp_wmem`` (a fresh namespace on this kernel gets a tcp_rmem
  max of 32 MiB, computed from memory; that would pass a "≥ 16 MiB" claim, so the lab writes the
  classic defaults ``4096 131072 6291456`` / ``4096 16384 4194304`` when the fresh max is ≥
  16 MiB), host ``rmem_max``/``wmem_max`` 212992. ``tune()``/``untune()`` switch in place, on
  purpose without reconnecting anything (the MSS of open TCP connections stays what it was:
  the "MSS-lock" effect the node suite looks for).
* ``offloads=False`` (default) turns TSO/GSO/GRO off on both veth ends: with offloads on, veth
  moves 64 KiB super-packets and the MTU makes no throughput difference.

**Host-wide settings.** ``net.core.rmem_max``/``wmem_max`` are read-only inside a namespace and
mirror the host, so a lab changes the host's and restores them at stop. Every process that does
(xdist workers, other users) takes the exclusive lock
``${PYTEST_INFERENCE_LOCK_DIR:-/tmp/pytest-inference-locks}/host-net-sysctl.lock`` (the
:class:`~pytest_inference.server.lock.DeviceLock` primitive) for the lab's lifetime; a waiter logs
who holds it and gives up after ``lock_timeout_s`` (600 s) with :class:`LabError`. Within one
process, several labs may be alive at once **only if they want the same host values** (e.g. two
tuned labs): they share the lock, the first to start records the original values and the last
to stop restores them. A lab wanting different values, or a ``tune()``/``untune()`` that would
change the shared values under another live lab, raises ``LabError("another lab in this process
holds the host network settings; stop it first ...")`` instead of deadlocking on its own lock.

**Nothing leaks.** ``stop()`` (idempotent, also run at exit) kills ganesha and every other
process left in the lab's namespaces, deletes the veth pair and both namespaces, removes the
temporary directory and restores the host values. A *guardian* process started with each lab
does the same when the owning process dies without ``stop()`` (SIGKILLed pytest, a killed xdist
worker): the supervisor's guardian (:mod:`pytest_inference.supervise`, ``--state``), which runs the
teardown command the state file names (``python -m pytest_inference.netlab _teardown STATE``). It inherits the host lock's
open file description, so after an owner's death no other lab can take the host settings before
the guardian has restored them. What to tear down is read from a state file
(``<lock dir>/netlab/<token>.json``) that the owner rewrites *before* creating each resource, so
a death at any point leaves nothing the guardian does not know of. ``python -m
pytest_inference.netlab down`` tears down labs whose owner and guardian are both gone (so
does every lab start, under the lock, before it records the host's original values: an orphan's
leaked 16 MiB is never taken for the machine's own setting).

The lab is product (the storage and node suites use it by default), split along its jobs:
:mod:`.netns` (namespaces and veth), :mod:`.ganesha` (the NFS server), :mod:`.host` (host settings:
lock, record, restore), :mod:`.model` (the safetensors files), :mod:`.registry` (state files,
orphans), :mod:`.teardown` (removing a lab from its state file), :mod:`.lab` (:class:`NetLab`) and
``python -m pytest_inference.netlab up|down`` (:mod:`.__main__`). Standard library only.

**libnfs client notes** (the Python binding, PyPI ``libnfs``): read in chunks of at most 1 MiB —
one ``read()`` of 2 MiB or more returns a short, corrupted buffer and breaks the session. The
binding crawls when used from several threads of one process: use one process per stream.
"""

from __future__ import annotations

from .common import (
    DEFAULT_TCP_RMEM,
    DEFAULT_TCP_WMEM,
    TUNED_CORE_MAX,
    TUNED_TCP_RMEM,
    TUNED_TCP_WMEM,
    UNTUNED_CORE_MAX,
    LabError,
    LabUnavailable,
)
from .lab import NetLab

__all__ = [
    "DEFAULT_TCP_RMEM",
    "DEFAULT_TCP_WMEM",
    "TUNED_CORE_MAX",
    "TUNED_TCP_RMEM",
    "TUNED_TCP_WMEM",
    "UNTUNED_CORE_MAX",
    "LabError",
    "LabUnavailable",
    "NetLab",
]
