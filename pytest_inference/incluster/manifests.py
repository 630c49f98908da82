"""``pytest-inference k8s manifests``: reviewable YAML that runs the suites inside a cluster.

Two shapes, both running the image built from the repository's ``Dockerfile`` (whose entrypoint is
``pytest-inference in-pod``, :mod:`.entrypoint`), so every container has ``args`` only — exec form,
no shell, nothing like ``|| true``:

``--plain`` (default; ``kubectl apply -f DIR``)
    ``00-namespace.yaml``   Namespace + ServiceAccount with ``automountServiceAccountToken: false``
                            (the pods need no API rights: results go to the pod log, ``--print-results``,
                            which ``pytest-inference k8s collect`` reads)
    ``10-serving.yaml``     Job: the chosen suites (``--suites``) against the in-cluster Service
    ``20-node.yaml``        DaemonSet (``--node-suite``): the node suite on every GPU node
    ``30-load-shards.yaml`` Indexed Job (``--load-shards N``): N pods, each ``--load-shard=INDEX/N``,
                            all starting at one fixed ``--load-start-at``
``--sonobuoy``  (``sonobuoy run --plugin DIR/plugin-serving.yaml [--plugin DIR/plugin-node.yaml]``)
    Sonobuoy plugin definitions (``sonobuoy-config`` + ``spec`` container + ``podSpec``), Job and
    DaemonSet drivers, ``result-format: junit``, results in ``/tmp/sonobuoy/results``.

Every Kubernetes object carries ``app.kubernetes.io/part-of: pytest-inference`` and every pod
template ``pytest-inference/role: serving|node|load-shard`` (how ``k8s collect`` and the k8s suite
recognise them). The DaemonSet's pods select the GPU nodes and tolerate only the GPU taint and the
network-not-tuned taint (the node suite must run on an untuned node to say so). They use the node's
network namespace (``hostNetwork``), which is all the node probes read there (``--node local://``):
``/proc/sys/net/*`` (buffer sysctls), ``ip route get`` / ``ip link`` (MTU to ``--nfs-server``) and
``ss`` (the NFS sockets); no ``hostPID`` (nothing reads another process's files), never
``privileged``, no capabilities. They sleep after their results (``in-pod --then-wait``) because
a DaemonSet restarts a container that exits.

:func:`generate` is pure (options -> ``{file name: [objects]}``); :func:`write` writes the YAML.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..k8s import PART_OF as PART_OF_LABEL

PART_OF = dict([PART_OF_LABEL])  # on every object written: the k8s suite and `k8s collect` find them by it
ROLE_LABEL = "pytest-inference/role"
ROLES = ("serving", "node", "load-shard")
#: suites that run as a client of an endpoint (the others start their own server, or need API rights)
SERVING_SUITES = ("warm", "api", "load")
DEFAULT_SUITES = ("warm", "api")
DEFAULT_NAMESPACE = "pytest-inference"
#: the reference deployment's Service (fixtures/k8s/reference/30-vllm.yaml: Service vllm in namespace vllm)
DEFAULT_ENDPOINT = "http://vllm.vllm.svc.cluster.local:8000/v1"
#: the GPU node pool of the reference deployment (its vLLM Deployment's nodeSelector)
DEFAULT_NODE_SELECTOR = "doks.digitalocean.com/node-pool=gpu-h100"
GPU_TAINTS = {"nvidia": "nvidia.com/gpu", "amd": "amd.com/gpu"}
#: the taint the network tuner removes once the node is tuned (k8s-reference: the tuner DaemonSet)
NOT_TUNED_TAINT = "node.digitalocean.com/network-not-tuned"
RESULTS_DIR = "/tmp/sonobuoy/results"
API_KEY_ENV = "PYTEST_INFERENCE_API_KEY"
INDEX_ENV = "JOB_COMPLETION_INDEX"
INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
DEFAULT_START_IN_S = 180.0
#: requests/limits per role: a client process (serving, load shard) or the node probes
RESOURCES = {
    "serving": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"memory": "2Gi"}},
    "load-shard": {"requests": {"cpu": "2", "memory": "1Gi"}, "limits": {"memory": "2Gi"}},
    "node": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}},
}
FILES = {"namespace": "00-namespace.yaml", "serving": "10-serving.yaml", "node": "20-node.yaml",
         "load-shard": "30-load-shards.yaml", "plugin-serving": "plugin-serving.yaml", "plugin-node": "plugin-node.yaml"}

DESCRIPTION = """\
Write Kubernetes YAML that runs the suites inside the cluster, from the image built with the
repository's Dockerfile (ENTRYPOINT pytest-inference in-pod). Review it, then:

  --plain (default)  kubectl apply -f DIR; later: pytest-inference k8s collect
                     00-namespace.yaml   Namespace + ServiceAccount (no token: the pods need no API rights)
                     10-serving.yaml     Job: --suites against --endpoint (the in-cluster Service)
                     20-node.yaml        DaemonSet (--node-suite): the node suite on each GPU node
                     30-load-shards.yaml Indexed Job (--load-shards N): N pods offer one load schedule,
                                         pod i runs --load-shard=i/N, all start at one --load-start-at
  --sonobuoy         sonobuoy run --plugin DIR/plugin-serving.yaml [--plugin DIR/plugin-node.yaml]

The image must be pinned: IMAGE@sha256:... or a tag other than latest. No secret is written: an
API key comes from a Secret (--api-key-secret NAME/KEY). Example:

  pytest-inference k8s manifests --image registry.example/pytest-inference:0.1.0 --target h100 \\
      --suites warm,api --node-suite --nfs-server 10.0.0.5 \\
      --load-shards 4 --load-start-in 300 --load-rate 32 -o k8s-run/
"""


class ManifestError(ValueError):
    """Bad options: one line."""


@dataclass
class Options:
    image: str
    target: str
    namespace: str = DEFAULT_NAMESPACE
    endpoint: str = DEFAULT_ENDPOINT
    model: str | None = None
    api_key_secret: str | None = None          # NAME/KEY of a Secret in the namespace
    suites: tuple[str, ...] = DEFAULT_SUITES    # empty: no serving Job
    node_suite: bool = False
    nfs_server: str | None = None
    node_selector: str = DEFAULT_NODE_SELECTOR  # KEY=VALUE
    gpu_vendor: str = "nvidia"
    not_tuned_taint: str = NOT_TUNED_TAINT
    load_shards: int = 0
    load_start_at: float | None = None          # epoch seconds (resolved from --load-start-at/--load-start-in)
    load_args: list[str] = field(default_factory=list)  # --load-rate R, --load-requests N, --load-duration S
    sonobuoy: bool = False


# --- validation ------------------------------------------------------------------------------------
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


def check_image(image: str) -> str:
    """An image reference that names one build: ``...@sha256:<64 hex>``, or a version tag (not
    ``latest`` nor another moving name: :func:`pytest_inference.k8s.model.image_pinned`)."""
    if not image or any(c.isspace() for c in image):
        raise ManifestError(f"--image {image!r}: not an image reference")
    if "@" in image:
        if not _DIGEST.search(image):
            raise ManifestError(f"--image {image}: a digest must be @sha256: and 64 lowercase hex digits")
        return image
    last = image.rsplit("/", 1)[-1]
    tag = last.partition(":")[2]
    if not tag:
        raise ManifestError(f"--image {image}: not pinned; give a tag other than latest or @sha256:<digest> "
                            "(an untagged image is :latest, which changes under a running test)")
    if tag == "latest":
        raise ManifestError(f"--image {image}: :latest is not pinned; give a version tag or @sha256:<digest>")
    from ..k8s.model import image_pinned  # the rule K8S-SUITE-001 judges the written manifests by

    if not image_pinned(image):
        raise ManifestError(f"--image {image}: the tag {tag} names no version (it moves as latest does); give a "
                            "version tag or @sha256:<digest>")
    return image


def _key_value(text: str, option: str) -> tuple[str, str]:
    key, eq, value = text.partition("=")
    if not eq or not key or not re.fullmatch(r"[A-Za-z0-9./_-]+", key) or not re.fullmatch(r"[A-Za-z0-9._-]*", value):
        raise ManifestError(f"{option} {text!r}: give KEY=VALUE, e.g. {DEFAULT_NODE_SELECTOR}")
    return key, value


def check(o: Options) -> Options:
    """Every option's problem as one :class:`ManifestError` line; returns ``o``."""
    from ..session import UsageError, normalize_endpoint

    check_image(o.image)
    if not o.target or any(c.isspace() for c in o.target):
        raise ManifestError(f"--target {o.target!r}: give a target profile name")
    if not _DNS_LABEL.match(o.namespace):
        raise ManifestError(f"--namespace {o.namespace!r}: not a Kubernetes namespace name (lowercase letters, "
                            "digits, '-', at most 63)")
    unknown = [s for s in o.suites if s not in SERVING_SUITES]
    if unknown:
        raise ManifestError(f"--suites: {', '.join(unknown)} cannot run as an in-cluster client; choose from "
                            f"{','.join(SERVING_SUITES)} (the node suite: --node-suite)")
    if o.suites or o.load_shards:
        try:
            o.endpoint = normalize_endpoint(o.endpoint)
        except UsageError as exc:
            raise ManifestError(str(exc)) from None
    if not (o.suites or o.node_suite or o.load_shards):
        raise ManifestError("nothing to run: give --suites, --node-suite or --load-shards N")
    if o.api_key_secret is not None:
        name, slash, key = o.api_key_secret.partition("/")
        if not slash or not _DNS_LABEL.match(name) or not re.fullmatch(r"[-._a-zA-Z0-9]+", key):
            raise ManifestError(f"--api-key-secret {o.api_key_secret!r}: give SECRET/KEY (a Secret in "
                                f"{o.namespace} and its key); the key itself is never written")
    _key_value(o.node_selector, "--node-selector")
    if o.gpu_vendor not in GPU_TAINTS:
        raise ManifestError(f"--gpu-vendor {o.gpu_vendor!r}: choose {' or '.join(GPU_TAINTS)}")
    if not re.fullmatch(r"([A-Za-z0-9][-A-Za-z0-9_.]*/)?[A-Za-z0-9][-A-Za-z0-9_.]*", o.not_tuned_taint):
        raise ManifestError(f"--not-tuned-taint {o.not_tuned_taint!r}: give a taint key, e.g. {NOT_TUNED_TAINT}")
    if o.nfs_server is not None and not re.fullmatch(r"[A-Za-z0-9.:\-\[\]]+", o.nfs_server):
        raise ManifestError(f"--nfs-server {o.nfs_server!r}: give a host name or address")
    if o.load_shards:
        if not 1 <= o.load_shards <= 10_000:
            raise ManifestError(f"--load-shards {o.load_shards}: give 1 .. 10000 pods")
        if o.sonobuoy:
            raise ManifestError("--load-shards needs --plain: a Sonobuoy Job plugin runs one pod, the shards are "
                                "an Indexed Job")
        if o.load_start_at is None:
            raise ManifestError("--load-shards needs a common start: --load-start-at WHEN or --load-start-in S")
    elif o.load_args or o.load_start_at is not None:
        raise ManifestError("--load-start-at/--load-start-in/--load-rate/--load-requests/--load-duration are the "
                            "load shards' options: give --load-shards N")
    return o


# --- objects ---------------------------------------------------------------------------------------
def _labels(component: str) -> dict[str, str]:
    return {**PART_OF, "app.kubernetes.io/name": "pytest-inference", "app.kubernetes.io/component": component}


def _meta(name: str, o: Options, component: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "namespace": o.namespace, "labels": _labels(component), **extra}


def iso_utc(epoch: float) -> str:
    return dt.datetime.fromtimestamp(round(epoch), dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _client_args(o: Options, suites: list[str]) -> list[str]:
    args = ["--pyargs", *(f"pytest_inference.suites.{s}" for s in suites), "--target", o.target,
            "--endpoint", o.endpoint]
    if o.model:
        args += ["--model", o.model]
    if o.api_key_secret:
        args += ["--api-key-env", API_KEY_ENV]
    return args


def pytest_args(o: Options, role: str) -> list[str]:
    """What follows ``--`` in the role's ``in-pod`` arguments (pytest's own options and the plugin's)."""
    common = ["-p", "no:cacheprovider"]  # a read-only image: no .pytest_cache
    if role == "serving":
        return [*_client_args(o, list(o.suites)), *common]
    if role == "load-shard":
        return [*_client_args(o, ["load"]), f"--load-shard=$({INDEX_ENV})/{o.load_shards}",
                f"--load-start-at={iso_utc(o.load_start_at)}", *o.load_args, *common]
    if role == "node":
        args = ["--pyargs", "pytest_inference.suites.node", "--target", o.target, "--node", "local://"]
        if o.nfs_server:
            args += ["--nfs-server", o.nfs_server]
        return [*args, *common]
    raise ValueError(role)


def in_pod_args(o: Options, role: str) -> list[str]:
    """The container's ``args`` (the image's entrypoint is ``pytest-inference in-pod``)."""
    own = []
    if not o.sonobuoy:
        own.append("--print-results")  # plain pods: the results reach `k8s collect` through the pod log
    if role == "node":
        own.append("--then-wait")       # a DaemonSet restarts a container that exits
    return [*own, "--", *pytest_args(o, role)]


def _container(o: Options, role: str) -> dict[str, Any]:
    env = [{"name": "HOME", "value": "/tmp"}, {"name": "MPLCONFIGDIR", "value": "/tmp/matplotlib"}]
    if role == "load-shard":
        env.append({"name": INDEX_ENV, "valueFrom": {"fieldRef": {
            "fieldPath": f"metadata.annotations['{INDEX_ANNOTATION}']"}}})
    if role != "node" and o.api_key_secret:
        name, _, key = o.api_key_secret.partition("/")
        env.append({"name": API_KEY_ENV, "valueFrom": {"secretKeyRef": {"name": name, "key": key}}})
    mounts = [{"name": "scratch", "mountPath": "/tmp"}]
    if o.sonobuoy:
        mounts.append({"name": "results", "mountPath": RESULTS_DIR})
    return {
        "name": "plugin" if o.sonobuoy else f"pytest-inference-{role}",
        "image": o.image,
        "imagePullPolicy": "IfNotPresent",
        "args": in_pod_args(o, role),
        "workingDir": "/tmp",
        "env": env,
        "resources": RESOURCES[role],
        "securityContext": {"runAsNonRoot": True, "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": mounts,
    }


def _node_placement(o: Options) -> dict[str, Any]:
    key, value = _key_value(o.node_selector, "--node-selector")
    return {
        "hostNetwork": True,   # the node's sysctls (net.core.*, tcp_rmem/wmem), routes, MTU and NFS sockets
        "dnsPolicy": "ClusterFirstWithHostNet",
        "nodeSelector": {key: value},
        "tolerations": [{"key": GPU_TAINTS[o.gpu_vendor], "operator": "Exists", "effect": "NoSchedule"},
                        {"key": o.not_tuned_taint, "operator": "Exists", "effect": "NoSchedule"}],
    }


def _pod_spec(o: Options, role: str, restart: str) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "serviceAccountName": "pytest-inference",
        "automountServiceAccountToken": False,
        "restartPolicy": restart,
        "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001,
                            "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [_container(o, role)],
        "volumes": [{"name": "scratch", "emptyDir": {}}],
    }
    if role == "node":
        spec.update(_node_placement(o))
    return spec


def _template(o: Options, role: str, restart: str) -> dict[str, Any]:
    return {"metadata": {"labels": {**_labels(role), ROLE_LABEL: role}}, "spec": _pod_spec(o, role, restart)}


def _plain(o: Options) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {FILES["namespace"]: [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": o.namespace, "labels": _labels("namespace")}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta("pytest-inference", o, "namespace"),
         "automountServiceAccountToken": False},
    ]}
    if o.suites:
        out[FILES["serving"]] = [{
            "apiVersion": "batch/v1", "kind": "Job", "metadata": _meta("pytest-inference-serving", o, "serving"),
            "spec": {"backoffLimit": 0, "template": _template(o, "serving", "Never")}}]
    if o.node_suite:
        selector = {**PART_OF, ROLE_LABEL: "node"}
        out[FILES["node"]] = [{
            "apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": _meta("pytest-inference-node", o, "node"),
            "spec": {"selector": {"matchLabels": selector}, "template": _template(o, "node", "Always")}}]
    if o.load_shards:
        out[FILES["load-shard"]] = [{
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": _meta("pytest-inference-load", o, "load-shard", annotations={
                "pytest-inference/load-start-at": iso_utc(o.load_start_at)}),
            "spec": {"completionMode": "Indexed", "completions": o.load_shards, "parallelism": o.load_shards,
                     "backoffLimit": 0, "template": _template(o, "load-shard", "Never")}}]
    return out


def _plugin(o: Options, role: str) -> dict[str, Any]:
    """A Sonobuoy plugin definition: sonobuoy-config + spec (the container) + podSpec (Sonobuoy adds
    the container and its worker sidecar to ``containers``, and the ``results`` volume)."""
    driver = "DaemonSet" if role == "node" else "Job"
    pod: dict[str, Any] = {
        "serviceAccountName": "sonobuoy-serviceaccount",
        "restartPolicy": "Always" if role == "node" else "Never",
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [],
    }
    if role == "node":
        pod.update(_node_placement(o))
    container = _container(o, role)
    container["env"].append({"name": "SONOBUOY_RESULTS_DIR", "value": RESULTS_DIR})
    container["securityContext"].update({"runAsUser": 10001, "runAsGroup": 10001})
    return {
        "sonobuoy-config": {
            "driver": driver,
            "plugin-name": f"pytest-inference-{role}",
            "result-format": "junit",
            "result-files": ["junit.xml"],
            "description": (f"pytest-inference {'node suite on each GPU node' if role == 'node' else 'suites ' + ','.join(o.suites) + ' against ' + o.endpoint}"
                            f", target {o.target}"),
        },
        "spec": container,
        "extra-volumes": [{"name": "scratch", "emptyDir": {}}],
        "podSpec": pod,
    }


def generate(o: Options) -> dict[str, list[dict]]:
    """``{relative file name: [objects]}`` for the options (checked first: :class:`ManifestError`)."""
    check(o)
    if not o.sonobuoy:
        return _plain(o)
    out = {}
    if o.suites:
        out[FILES["plugin-serving"]] = [_plugin(o, "serving")]
    if o.node_suite:
        out[FILES["plugin-node"]] = [_plugin(o, "node")]
    return out


HEADER = ("# Generated by `pytest-inference k8s manifests` ({what}). Review, then {how}.\n"
          "# Labels: app.kubernetes.io/part-of=pytest-inference; pods: pytest-inference/role.\n")


def write(objects: dict[str, list[dict]], out_dir: str | os.PathLike) -> list[Path]:
    """One YAML file per entry (``---`` between objects), written atomically; returns the paths."""
    import yaml

    from ..supervise import write_text_atomic

    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, docs in objects.items():
        sonobuoy = name.startswith("plugin-")
        head = HEADER.format(what="Sonobuoy plugin" if sonobuoy else "plain objects",
                             how=f"`sonobuoy run --plugin {name}`" if sonobuoy else "`kubectl apply -f` the folder")
        body = "---\n".join(yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, width=120) for doc in docs)
        write_text_atomic(d / name, head + body, mode=0o644)
        paths.append(d / name)
    return paths


# --- the verb --------------------------------------------------------------------------------------
def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--image", required=True, help="the image built from the Dockerfile, pinned: NAME@sha256:... or "
                   "NAME:TAG (not latest)")
    p.add_argument("--target", required=True, metavar="NAME", help="target profile the pods judge with (shipped name)")
    p.add_argument("-o", "--out", required=True, metavar="DIR", help="folder for the YAML files")
    p.add_argument("--namespace", default=DEFAULT_NAMESPACE, metavar="NS", help="namespace of the pods (default %(default)s)")
    p.add_argument("--endpoint", default=DEFAULT_ENDPOINT, metavar="URL",
                   help="the in-cluster OpenAI-compatible URL the client suites measure (default: the reference "
                   "deployment's Service, %(default)s)")
    p.add_argument("--model", metavar="NAME", help="model name sent in requests (default: the endpoint's only model)")
    p.add_argument("--api-key-secret", metavar="SECRET/KEY", help="the endpoint's API key from this Secret's key "
                   f"(env {API_KEY_ENV}, --api-key-env); the key is never written")
    p.add_argument("--suites", default=",".join(DEFAULT_SUITES), metavar="warm,api,...",
                   help=f"client suites of the serving Job, from {','.join(SERVING_SUITES)}; '' for none "
                   "(default %(default)s)")
    p.add_argument("--node-suite", action="store_true", help="also the node suite, as a DaemonSet on the GPU nodes")
    p.add_argument("--nfs-server", metavar="ADDR", help="NFS server whose route MTU and connections the node suite "
                   "checks (without it: the default route's interface, and every NFS connection)")
    p.add_argument("--node-selector", default=DEFAULT_NODE_SELECTOR, metavar="KEY=VALUE",
                   help="label of the GPU nodes (default %(default)s)")
    p.add_argument("--gpu-vendor", choices=sorted(GPU_TAINTS), default="nvidia",
                   help="whose GPU taint the node pods tolerate: nvidia.com/gpu or amd.com/gpu (default %(default)s)")
    p.add_argument("--not-tuned-taint", default=NOT_TUNED_TAINT, metavar="KEY",
                   help="the taint a node carries until its network is tuned; the node pods tolerate it, to report "
                   "an untuned node (default %(default)s)")
    p.add_argument("--load-shards", type=int, default=0, metavar="N",
                   help="an Indexed Job of N load-suite pods offering one schedule together (--load-shard=i/N)")
    start = p.add_mutually_exclusive_group()
    start.add_argument("--load-start-at", metavar="WHEN", help="the shards' common start: epoch seconds or "
                       "2026-12-02T13:00:00Z (written into the YAML as is)")
    start.add_argument("--load-start-in", type=float, metavar="S",
                       help=f"the shards' common start S seconds from now, fixed in the YAML (default with "
                       f"--load-shards: {DEFAULT_START_IN_S:g}; apply before then)")
    p.add_argument("--load-rate", metavar="RPS", help="the shards' offered rate in total, as the load suite's --load-rate")
    p.add_argument("--load-requests", type=int, metavar="N", help="requests per load run (load suite's --load-requests)")
    p.add_argument("--load-duration", type=float, metavar="S", help="seconds of arrivals (load suite's --load-duration)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--plain", dest="sonobuoy", action="store_false",
                      help="plain Namespace/Job/DaemonSet/Indexed Job for kubectl apply (default)")
    mode.add_argument("--sonobuoy", dest="sonobuoy", action="store_true", help="Sonobuoy plugin definitions")
    p.set_defaults(sonobuoy=False)


def options_from_args(args: argparse.Namespace, now: float | None = None) -> Options:
    from ..load import parse_start_at

    start = None
    if args.load_start_at is not None:
        try:
            start = parse_start_at(args.load_start_at)
        except ValueError as exc:
            raise ManifestError(str(exc)) from None
    elif args.load_start_in is not None or args.load_shards:
        seconds = DEFAULT_START_IN_S if args.load_start_in is None else args.load_start_in
        if not 0 < seconds <= 86400:
            raise ManifestError(f"--load-start-in {seconds:g}: give 1 .. 86400 seconds")
        start = (time.time() if now is None else now) + seconds
    load_args = []
    for flag, value in (("--load-rate", args.load_rate), ("--load-requests", args.load_requests),
                        ("--load-duration", args.load_duration)):
        if value is not None:
            load_args.append(f"{flag}={value}")
    return Options(
        image=args.image, target=args.target, namespace=args.namespace, endpoint=args.endpoint, model=args.model,
        api_key_secret=args.api_key_secret, suites=tuple(s.strip() for s in args.suites.split(",") if s.strip()),
        node_suite=args.node_suite, nfs_server=args.nfs_server, node_selector=args.node_selector,
        gpu_vendor=args.gpu_vendor, not_tuned_taint=args.not_tuned_taint, load_shards=args.load_shards, load_start_at=start,
        load_args=load_args, sonobuoy=args.sonobuoy)


def handle(args: argparse.Namespace) -> int:
    from ..cli import fail

    try:
        o = options_from_args(args)
        objects = generate(o)
    except ManifestError as exc:
        return fail("k8s manifests", str(exc))
    try:
        paths = write(objects, args.out)
    except OSError as exc:
        return fail("k8s manifests", f"cannot write {args.out} ({exc.strerror or exc})")
    for p in paths:
        print(p)
    if o.sonobuoy:
        print("run: sonobuoy run " + " ".join(f"--plugin {p}" for p in paths))
    else:
        print(f"apply: kubectl apply -f {args.out}; then: pytest-inference k8s collect --namespace {o.namespace}")
    if o.load_shards:
        print(f"load shards start at {iso_utc(o.load_start_at)}: apply before then (a shard more than a few "
              "seconds late refuses to run)")
    return 0
