"""The Kubernetes suite's machinery: observe a deployment (live or from manifests), judge it.

One module per concern, and only :mod:`.observe` and :mod:`.mutate` talk to a cluster:

* :mod:`.model`      the observation (plain dicts of Kubernetes objects plus what a watch saw),
                     the settings the checks read, and a check's result;
* :mod:`.manifests`  static mode: a folder of YAML files -> an observation;
* :mod:`.observe`    live mode: the official ``kubernetes`` client, read-only (get/list/watch);
* :mod:`.checks`     the pure judges, one stable id each (``K8S-TAINT-001`` …);
* :mod:`.timeline`   the pure taint-gate timeline (binding time vs taint removal time per node);
* :mod:`.shell`      pure readings of the shell scripts in pod specs (masked failures, drains);
* :mod:`.mutate`     only with ``--k8s-allow-mutations``: scale-out timing, node-probe pods.

Nothing here imports ``kubernetes`` at module load: ``pytest --help`` stays fast.
"""

DEFAULT_TAINT_KEY = "node.digitalocean.com/network-not-tuned"
#: the label `pytest-inference k8s manifests` puts on every object it writes: how the k8s suite's
#: K8S-SUITE-* checks and `pytest-inference k8s collect` recognise pytest-inference's own objects
PART_OF = ("app.kubernetes.io/part-of", "pytest-inference")
