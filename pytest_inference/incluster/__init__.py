"""pytest-inference inside a cluster: the container's entrypoint and the manifests that run it.

- :mod:`.entrypoint` — ``pytest-inference in-pod [...] -- PYTEST_ARGS``: runs pytest in the pod and
  leaves its results the way Sonobuoy expects them (``results.tar.gz`` + ``done``), optionally also in
  the pod's log (``--print-results``) for plain Jobs;
- :mod:`.manifests` — ``pytest-inference k8s manifests``: reviewable YAML (Sonobuoy plugins, or plain
  Job / DaemonSet / Indexed Job for load shards) that runs the image built from the repository's Dockerfile;
- ``collect`` (``pytest-inference k8s collect``) reads the results back.
"""
