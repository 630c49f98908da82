"""The k8s suite's command-line options (group ``inference-k8s``), registered by the plugin.

Light: no ``kubernetes`` import. Values are checked as they are parsed, so a bad one is a pytest
usage error naming the option.
"""

from __future__ import annotations

import argparse

from . import DEFAULT_TAINT_KEY
from .model import SelectorError, parse_selector


def _positive(name: str, *, zero: bool = False, minimum: float | None = None):
    def conv(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a number of seconds; got {text!r}") from None
        if v != v or v in (float("inf"), float("-inf")) or v < 0 or (v == 0 and not zero):
            raise argparse.ArgumentTypeError(f"{name} must be {'0 or more' if zero else 'more than 0'}; got {text!r}")
        if minimum is not None and v < minimum:
            raise argparse.ArgumentTypeError(f"{name} must be at least {minimum:g}; got {text!r}")
        return v
    return conv


def _count(name: str):
    def conv(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a whole number; got {text!r}") from None
        if v < 1:
            raise argparse.ArgumentTypeError(f"{name} must be 1 or more; got {text!r}")
        return v
    return conv


def _selector(name: str):
    def conv(text: str) -> str:
        try:
            parse_selector(text)
        except SelectorError as exc:
            raise argparse.ArgumentTypeError(f"{name}: {exc}") from None
        return text
    return conv


def add_options(parser) -> None:
    g = parser.getgroup("inference-k8s", "pytest-inference Kubernetes suite (suites/k8s; read-only unless "
                        "--k8s-allow-mutations)")
    g.addoption("--kubeconfig", dest="k8s_kubeconfig", metavar="FILE", default=None,
                help="kubeconfig of the cluster to judge live (read-only: get, list, watch).")
    g.addoption("--context", "--k8s-context", dest="k8s_context", metavar="NAME", default=None,
                help="kubeconfig context (default: the current one). Alone, it selects live mode with "
                "$KUBECONFIG or ~/.kube/config.")
    g.addoption("--namespace", "--k8s-namespace", dest="k8s_namespace", metavar="NS", default=None,
                help="namespace of the vLLM workload (default: the context's, else 'default'). Workload pods, "
                "the Deployment, its PDB, PVC and download Job are looked for there.")
    g.addoption("--vllm-deployment", dest="k8s_deployment", metavar="NAME", default=None,
                help="the vLLM Deployment (default: the only Deployment running a vLLM image or command).")
    g.addoption("--vllm-selector", dest="k8s_deployment_selector", metavar="LABELS", default=None,
                type=_selector("--vllm-selector"), help="label selector for the vLLM Deployment, e.g. app=vllm.")
    g.addoption("--tuner-daemonset", dest="k8s_tuner", metavar="NAME", default=None,
                help="the network-tuner DaemonSet (default: the DaemonSet that tolerates --taint-key).")
    g.addoption("--tuner-namespace", dest="k8s_tuner_namespace", metavar="NS", default=None,
                help="namespace of the tuner DaemonSet (default: any).")
    g.addoption("--taint-key", dest="k8s_taint_key", metavar="KEY", default=DEFAULT_TAINT_KEY,
                help=f"the not-yet-tuned taint GPU nodes join with (default {DEFAULT_TAINT_KEY}).")
    g.addoption("--gpu-node-selector", dest="k8s_gpu_node_selector", metavar="LABELS", default=None,
                type=_selector("--gpu-node-selector"),
                help="label selector of the GPU nodes (default: nodes with nvidia.com/gpu or amd.com/gpu capacity "
                "or carrying the taint).")
    g.addoption("--manifests", dest="k8s_manifests", metavar="DIR", default=None,
                help="static mode: judge the YAML manifests in DIR (recursively, multi-document) without a cluster, "
                "e.g. fixtures/k8s/reference.")
    g.addoption("--k8s-allow-mutations", dest="k8s_allow_mutations", action="store_true", default=False,
                help="allow the checks that create or change objects: scale-out timing (scales the vLLM Deployment "
                "and restores it) and node tuning (one privileged hostNetwork pod per GPU node, deleted after). "
                "Without it the suite only gets, lists and watches.")
    g.addoption("--k8s-watch-s", dest="k8s_watch_s", metavar="S", default=0.0, type=_positive("--k8s-watch-s", zero=True),
                help="watch nodes and pods for S seconds before judging, recording when taints leave nodes and when "
                "pods are bound (the API keeps little of that history). Default 0.")
    g.addoption("--model-load-s", dest="k8s_model_load_s", metavar="S", default=None,
                type=_positive("--model-load-s"),
                help="model-load time the startup probe must cover (default: the target's model_load_s, else the "
                "longest start -> Ready of the live vLLM pods).")
    g.addoption("--model-load-margin", dest="k8s_model_load_margin", metavar="X", default=None,
                type=_positive("--model-load-margin", minimum=1.0),
                help="the startup budget must reach load x X (default: the target's model_load_margin, else 1.25).")
    g.addoption("--k8s-max-drain-s", dest="k8s_max_drain_s", metavar="S", default=None,
                type=_positive("--k8s-max-drain-s"),
                help="longest drain a preStop hook may need, for the grace-period check (default: the target's "
                "max_drain_s, else 60).")
    g.addoption("--k8s-scale-to", dest="k8s_scale_to", metavar="N", default=3, type=_count("--k8s-scale-to"),
                help="replicas the scale-out check scales to (seed: 1 -> 3; default 3).")
    g.addoption("--k8s-scale-timeout-s", dest="k8s_scale_timeout_s", metavar="S", default=600.0,
                type=_positive("--k8s-scale-timeout-s"), help="give up waiting for the scaled replicas after S (default 600).")
    g.addoption("--k8s-probe-image", dest="k8s_probe_image", metavar="IMAGE", default="busybox:1.36.1",
                help="image of the node-probe pods (needs nsenter; default busybox:1.36.1).")
    g.addoption("--k8s-pod-timeout-s", dest="k8s_pod_timeout_s", metavar="S", default=180.0,
                type=_positive("--k8s-pod-timeout-s"), help="wait at most S for a node-probe pod to run (default 180).")
    g.addoption("--k8s-probe-namespace", dest="k8s_probe_namespace", metavar="NS", default=None,
                help="namespace for the node-probe pods (privileged; default: the tuner's, else kube-system).")
