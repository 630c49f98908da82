"""Node probes: network tuning of the host that loads the model (MTU, TCP buffers, NFS
connections), run locally, in a network namespace, on a Kubernetes node, or on a recording.

:mod:`.parse` and :mod:`.judge` are pure; :mod:`.backends` and :mod:`.probes` touch the node.
"""

from .backends import Backend, KubectlBackend, LocalBackend, NetnsBackend, NodeError, RecordedBackend, backend_from_url
from .probes import Node, NodeSnapshot

__all__ = ["Backend", "KubectlBackend", "LocalBackend", "NetnsBackend", "NodeError", "RecordedBackend",
           "backend_from_url", "Node", "NodeSnapshot"]
