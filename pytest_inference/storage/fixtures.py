"""Fixtures of the storage and node suites: the model's storage, its read throughput, the node.

Where the answers come from, in order:

- ``--nfs-url nfs://SERVER/EXPORT/PATH``: the server, read with the userspace client (URL mode);
- ``--model-path DIR``: the mount that holds DIR on this host (mount mode);
- neither: the embedded local NFS lab (:mod:`pytest_inference.testing.netlab`): a real
  nfs-ganesha server in a network namespace and a *node* namespace joined by a veth pair,
  tuned (MTU 9000, 16 MiB buffers) or untuned per ``--local-nfs``; the node holds one NFS
  connection open for the session, as a node with the model mounted does.

The node suite probes ``--node URL`` (local://, netns://NAME, kubectl://NS/POD,
recorded://DIR), else the lab's node namespace, else this host.
"""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any, Iterator

import pytest

from ..progress import TerminalProgress
from .probe import (
    ModelStorage,
    StorageError,
    drop_file_cache,
    inspect_path,
    inspect_url,
    measure,
    measure_url_version,
    read_mount,
    read_url,
)

DEFAULT_READERS = 4
DEFAULT_ROUNDS = 3


def _or_fail(fn, errors, prefix: str = ""):
    """``fn()``, or a one-line failure for ``errors`` — raised outside the ``except`` block, so
    the report shows the line once (not "During handling of the above exception…")."""
    try:
        return fn()
    except errors as exc:
        msg = f"{prefix}{exc}"
    pytest.fail(msg, pytrace=False)


def _opt(config: pytest.Config, name: str) -> Any:
    return config.getoption(name, default=None)


def uses_lab(config: pytest.Config) -> bool:
    """No storage or node given: the storage and node suites run against the embedded lab."""
    return not (_opt(config, "inference_nfs_url") or _opt(config, "inference_model_path")
                or _opt(config, "inference_node"))


class _Holder:
    """An NFS connection held open from the node's namespace (the node's "mount")."""

    def __init__(self, argv: list[str]) -> None:
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, start_new_session=True)
        line = self.proc.stdout.readline()
        if '"held"' not in line:
            self.close()
            raise StorageError(f"could not hold an NFS connection from the node: {line.strip() or 'no answer'}")

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()


def hold_connection(url: str, prefix: list[str]) -> _Holder:
    return _Holder([*prefix, sys.executable, "-m", "pytest_inference.storage.nfs_reader", url, "--hold"])


@pytest.fixture(scope="session")
def inference_netlab(request: pytest.FixtureRequest, inference_session) -> Iterator[Any]:
    """The embedded local NFS lab, started on first use (root, namespaces and nfs-ganesha needed)."""
    from ..testing.netlab import LabError, LabUnavailable, NetLab

    mode = _opt(request.config, "inference_local_nfs") or "tuned"
    try:
        NetLab.check_available()
    except LabUnavailable as exc:
        pytest.skip(f"no --nfs-url, --model-path or --node given and the local NFS lab cannot run here: {exc}")
    lab = NetLab(tuned=(mode == "tuned"), weights_mib=int(inference_session.target.setting("lab_weights_mib", 256)))
    progress = TerminalProgress(request.config, "local-nfs", unit="steps")
    progress(0, 1)
    _or_fail(lab.start, LabError, "the local NFS lab did not start: ")
    progress(1, 1)
    inference_session.add_metadata(local_nfs=f"{mode} lab, nfs-ganesha at {lab.server_addr}, node netns {lab.node_netns}")
    yield lab
    lab.stop()


@pytest.fixture(scope="session")
def model_storage(request: pytest.FixtureRequest) -> ModelStorage:
    """Which storage holds the model: mount and options (mount mode) or the server (URL mode)."""
    return _or_fail(lambda: _model_storage(request), StorageError)


def _model_storage(request: pytest.FixtureRequest) -> ModelStorage:
    config = request.config
    if _opt(config, "inference_nfs_url"):
        info = inspect_url(_opt(config, "inference_nfs_url"))
        return measure_url_version(info, _prefix_for_url(request))
    if _opt(config, "inference_model_path"):
        # the mount table of the node that holds the model (this host unless --node)
        return inspect_path(_opt(config, "inference_model_path"), request.getfixturevalue("inference_node"))
    if _opt(config, "inference_node"):
        pytest.fail("the storage suite needs --model-path DIR or --nfs-url nfs://SERVER/EXPORT/PATH "
                    "with --node", pytrace=False)
    lab = request.getfixturevalue("inference_netlab")
    info = inspect_url(lab.nfs_url(lab.model_dir))
    info.node = f"netns://{lab.node_netns}"
    return measure_url_version(info, list(lab.node_prefix()))


def _prefix_for_url(request: pytest.FixtureRequest) -> list[str]:
    """Run the userspace reader in the node's network: the lab's namespace or ``--node netns://NAME``."""
    from ..node.backends import NetnsBackend, NodeError, backend_from_url

    node_url = _opt(request.config, "inference_node")
    if node_url:
        backend = _or_fail(lambda: backend_from_url(node_url), NodeError)
        return list(backend.prefix) if isinstance(backend, NetnsBackend) else []
    if uses_lab(request.config):
        return list(request.getfixturevalue("inference_netlab").node_prefix())
    return []


@pytest.fixture(scope="session")
def storage_reads(request: pytest.FixtureRequest, inference_session, model_storage: ModelStorage):
    """Timed reads of the model's weight files, page cache excluded: one ReadRound per round."""
    config, target = request.config, inference_session.target
    readers = _opt(config, "inference_read_readers") or target.setting("read_readers", DEFAULT_READERS)
    rounds = _opt(config, "inference_read_rounds") or target.setting("read_rounds", DEFAULT_ROUNDS)
    progress = TerminalProgress(config, "storage read", unit="rounds")
    before = None
    if model_storage.mode == "url":
        prefix = _prefix_for_url(request)
        if uses_lab(config):
            lab = request.getfixturevalue("inference_netlab")
            before = lambda: drop_file_cache(lab.export_dir)  # noqa: E731 - the server reads from disk

        def once():
            return read_url(model_storage.location, readers=readers, prefix=prefix)
    else:
        if not model_storage.is_nfs:
            pytest.fail(model_storage.not_nfs_reason(), pytrace=False)
        if model_storage.node != "local://":
            pytest.skip(f"the weights are read on this host only; {model_storage.location} is on "
                        f"{model_storage.node}: run the storage suite on that node, or use --nfs-url")

        def once():
            return read_mount(model_storage.location, readers=readers)
    return _or_fail(lambda: measure(once, rounds, before_round=before, progress=lambda i, n, r: progress(i, n)),
                    StorageError)


@pytest.fixture(scope="session")
def inference_node(request: pytest.FixtureRequest):
    """The node the node suite probes (``--node``, else the lab's node namespace, else this host)."""
    from ..node import Node, NodeError, backend_from_url

    config = request.config
    node_url = _opt(config, "inference_node")
    if node_url:
        yield Node(_or_fail(lambda: backend_from_url(node_url, kubeconfig=_opt(config, "k8s_kubeconfig"),
                                                     context=_opt(config, "k8s_context")), NodeError))
        return
    if uses_lab(config):
        from ..node import NetnsBackend

        lab = request.getfixturevalue("inference_netlab")
        holder = _or_fail(lambda: hold_connection(lab.nfs_url(lab.model_dir), list(lab.node_prefix())), StorageError)
        try:
            yield Node(NetnsBackend(lab.node_netns))
        finally:
            holder.close()
        return
    yield Node()


def nfs_server_of(request: pytest.FixtureRequest) -> str | None:
    """The NFS server whose route the node suite checks: --nfs-server, --nfs-url's host, the
    model mount's addr=, or the lab's server."""
    config = request.config
    if _opt(config, "inference_nfs_server"):
        return _opt(config, "inference_nfs_server")
    if _opt(config, "inference_nfs_url"):
        return _or_fail(lambda: inspect_url(_opt(config, "inference_nfs_url")), StorageError).nfs_server
    if _opt(config, "inference_model_path"):
        try:
            return inspect_path(_opt(config, "inference_model_path")).nfs_server
        except StorageError:
            return None
    if uses_lab(config):
        return request.getfixturevalue("inference_netlab").server_addr
    return None


@pytest.fixture(scope="session")
def node_snapshot(request: pytest.FixtureRequest, inference_node, inference_session):
    """Everything the node suite judges, probed once: MTU to the NFS server, buffers, NFS connections."""
    server = nfs_server_of(request)
    started = time.monotonic()
    snap = inference_node.snapshot(server)
    inference_session.add_metadata(node=inference_node.name, nfs_server=server or "unknown",
                                   node_probe_s=round(time.monotonic() - started, 3))
    return snap
