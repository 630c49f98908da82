# pytest-inference inside a pod: the plugin, its suites and the Kubernetes client (the "k8s" extra).
# No vLLM: in a cluster the suites are clients of the serving endpoint (warm, api, load shards) and
# read-only probes of the node (node suite); the server is the deployment under test.
#
#   docker build -t REGISTRY/pytest-inference:0.1.0 .          (from the repository root)
#   pytest-inference k8s manifests --image REGISTRY/pytest-inference:0.1.0 --target NAME -o k8s-run/
#
# The entrypoint is `pytest-inference in-pod`: a container's args are `[in-pod options] -- PYTEST_ARGS`;
# it leaves junit.xml, summary.json, results.tar.gz and `done` in /tmp/sonobuoy/results (Sonobuoy's layout).
#
# The base image is pinned by its digest (python:3.11-slim: the Python the entrypoint's tests run on),
# so a rebuild gets the same base. To move to a newer build of the same tag, read the current digest with
#   docker buildx imagetools inspect python:3.11-slim          (the "Digest:" line)
# and replace the part after "@", or pass --build-arg BASE_IMAGE=python:3.11-slim@sha256:<digest>.
ARG BASE_IMAGE=python:3.11-slim@sha256:9c900dea9e8fb7e16277c179b555cc72d29a352dbc33cff48ad5a0412fd5bfc7
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# ip and ss: the node suite reads the route and MTU to the NFS server and the NFS sockets with them
RUN apt-get update \
    && apt-get install -y --no-install-recommends iproute2 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY pytest_inference ./pytest_inference
COPY suites ./suites
RUN pip install ".[k8s]" \
    && rm -rf /src

# the pods run as this user (the manifests set runAsNonRoot and runAsUser 10001); /tmp is their
# writable scratch (an emptyDir: the root filesystem is read-only there)
RUN groupadd --gid 10001 pytest-inference \
    && useradd --uid 10001 --gid 10001 --home-dir /tmp --no-create-home --shell /usr/sbin/nologin pytest-inference
USER 10001:10001
WORKDIR /tmp
ENV HOME=/tmp

ENTRYPOINT ["pytest-inference", "in-pod"]
