"""Live mode: read a cluster with the official ``kubernetes`` client into an
:class:`~.model.Observation`. Read-only: only GET requests (list, get, watch) leave this module.

Objects are kept as the API's JSON (``_preload_content=False``), the same shape as manifests.
A kind the credentials may not list is recorded in ``observation.unavailable`` (checks that
need it are inconclusive); an API that cannot be reached, a kubeconfig that does not load and an
unknown context are one line in :class:`K8sError`.

``kubernetes`` is imported inside the functions, so importing this module costs nothing.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from .. import __version__
from .inventory import find_tuner, node_taint
from .model import LIVE, Observation, Settings, WatchLog, name_of, namespace_of, parse_time

USER_AGENT = f"pytest-inference/{__version__} (k8s suite)"
LIST_TIMEOUT = (10, 60)


class K8sError(Exception):
    """The cluster cannot be read; the message is one line meant for the user."""


@dataclass
class Cluster:
    """A connected API client and where it points."""

    api: Any
    kubeconfig: str
    context: str
    namespace: str
    server: str

    def describe(self) -> str:
        return f"context {self.context} ({self.server}) from {self.kubeconfig}"


def _import_client():
    try:
        import kubernetes  # noqa: F401
        from kubernetes import client, config
    except ImportError:
        raise K8sError("live mode needs the official Kubernetes client: pip install 'pytest-inference[k8s]' "
                       "(or pip install kubernetes)") from None
    return client, config


def default_kubeconfig() -> str:
    return os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


def connect(kubeconfig: str | None, context: str | None, *, namespace: str | None = None) -> Cluster:
    """Load a kubeconfig (``--kubeconfig``, else $KUBECONFIG, else ~/.kube/config) and a context.
    Nothing is sent to the cluster here."""
    client, config = _import_client()
    path = kubeconfig or default_kubeconfig()
    opt = "--kubeconfig" if kubeconfig else ("$KUBECONFIG" if os.environ.get("KUBECONFIG") else "~/.kube/config")
    for part in path.split(os.pathsep):
        p = Path(part).expanduser()
        if not p.exists():
            raise K8sError(f"{opt} {part}: no such file")
        if not p.is_file():
            raise K8sError(f"{opt} {part}: not a file")
    try:
        contexts, active = config.list_kube_config_contexts(config_file=path)
    except Exception as exc:  # ConfigException, YAML errors, ...
        raise K8sError(f"{opt} {path}: not a usable kubeconfig: {_one_line(exc)}") from None
    names = [c.get("name") for c in contexts or []]
    if context:
        if context not in names:
            raise K8sError(f"--context {context}: no such context in {path} (it has: {', '.join(names) or 'none'})")
        chosen = next(c for c in contexts if c.get("name") == context)
    else:
        if not active:
            raise K8sError(f"{opt} {path}: no current-context; choose one with --context ({', '.join(names)})")
        chosen = active
    cfg = client.Configuration()
    try:
        config.load_kube_config(config_file=path, context=chosen.get("name"), client_configuration=cfg,
                                persist_config=False)
    except Exception as exc:
        raise K8sError(f"{opt} {path}, context {chosen.get('name')}: cannot load it: {_one_line(exc)}") from None
    cfg.retries = 1
    api = client.ApiClient(cfg)
    api.user_agent = USER_AGENT
    ns = namespace or (chosen.get("context") or {}).get("namespace") or "default"
    return Cluster(api=api, kubeconfig=path, context=str(chosen.get("name")), namespace=ns, server=cfg.host)


def _unreachable(cluster: Cluster, exc: BaseException) -> K8sError:
    return K8sError(f"cannot reach the Kubernetes API at {cluster.server} ({cluster.describe()}): "
                    f"{_reason(exc)}")


def _reason(exc: BaseException) -> str:
    inner = getattr(exc, "reason", None)
    text = _one_line(inner) if isinstance(inner, BaseException) else _one_line(exc)
    for needle in ("Connection refused", "Name or service not known", "timed out", "No route to host",
                   "certificate verify failed", "Temporary failure in name resolution"):
        if needle in text or needle in str(exc):
            return needle
    return text


class Reader:
    """Read-only access: every call here is an HTTP GET."""

    def __init__(self, cluster: Cluster) -> None:
        client, _ = _import_client()
        self.cluster = cluster
        self.core = client.CoreV1Api(cluster.api)
        self.apps = client.AppsV1Api(cluster.api)
        self.batch = client.BatchV1Api(cluster.api)
        self.policy = client.PolicyV1Api(cluster.api)
        self.rbac = client.RbacAuthorizationV1Api(cluster.api)

    def list(self, kind: str, fn: Callable, *args: Any) -> tuple[list[dict[str, Any]] | None, str | None]:
        """(items with ``kind`` set, None) or (None, why it could not be listed)."""
        from kubernetes.client.rest import ApiException
        from urllib3.exceptions import HTTPError

        try:
            resp = fn(*args, _preload_content=False, _request_timeout=LIST_TIMEOUT)
            data = json.loads(resp.data or b"{}")
        except ApiException as exc:
            if exc.status in (401,):
                raise K8sError(f"the Kubernetes API at {self.cluster.server} rejected the credentials of "
                               f"{self.cluster.describe()} (HTTP 401)") from None
            if exc.status == 403:
                return None, f"forbidden (HTTP 403): the credentials may not list {kind} objects"
            if exc.status == 404:
                return None, f"the API server does not serve {kind} (HTTP 404)"
            return None, f"HTTP {exc.status} {exc.reason}"
        except (HTTPError, OSError) as exc:
            raise _unreachable(self.cluster, exc) from None
        except ValueError:
            return None, "the API answered with something that is not JSON"
        items = data.get("items")
        if not isinstance(items, list):
            return None, "the API answered without an item list"
        for it in items:
            if isinstance(it, dict):
                it.setdefault("kind", kind)
        return [it for it in items if isinstance(it, dict)], None


def observe(cluster: Cluster, s: Settings, *, watch_s: float = 0.0) -> Observation:
    """Everything the checks read, from the workload namespace, the tuner's namespace and the
    cluster-scoped kinds. With ``watch_s``, nodes and pods are watched that long first."""
    r = Reader(cluster)
    ns = s.namespace or cluster.namespace
    obs = Observation(mode=LIVE, source=cluster.describe(), namespace=ns)

    def take(kind: str, fn: Callable, *args: Any) -> list[dict[str, Any]]:
        items, why = r.list(kind, fn, *args)
        if items is None:
            obs.unavailable.setdefault(kind, why or "not readable")
            return []
        obs.objects.extend(items)
        return items

    # nodes first: the first call also tells whether the API answers at all
    watch_log = watch(cluster, ns, s.taint_key, watch_s) if watch_s > 0 else None
    take("Node", r.core.list_node)
    dss, why = r.list("DaemonSet", r.apps.list_daemon_set_for_all_namespaces)
    if dss is None and s.tuner_namespace:
        dss, why = r.list("DaemonSet", r.apps.list_namespaced_daemon_set, s.tuner_namespace)
    if dss is None:
        dss, why2 = r.list("DaemonSet", r.apps.list_namespaced_daemon_set, ns)
        obs.notes.append(f"DaemonSets listed in {ns} only: {why}")
        if dss is None:
            obs.unavailable["DaemonSet"] = why2 or why or ""
    obs.objects.extend(dss or [])
    take("Deployment", r.apps.list_namespaced_deployment, ns)
    take("StatefulSet", r.apps.list_namespaced_stateful_set, ns)
    take("Job", r.batch.list_namespaced_job, ns)
    take("CronJob", r.batch.list_namespaced_cron_job, ns)
    take("PodDisruptionBudget", r.policy.list_namespaced_pod_disruption_budget, ns)
    take("PersistentVolumeClaim", r.core.list_namespaced_persistent_volume_claim, ns)
    take("PersistentVolume", r.core.list_persistent_volume)
    take("Service", r.core.list_namespaced_service, ns)
    pod_namespaces = [ns]
    tuner, _ = find_tuner(obs, s)
    tuner_ns = namespace_of(tuner) if tuner is not None else None
    if tuner_ns and tuner_ns != ns:
        pod_namespaces.append(tuner_ns)
    for pns in pod_namespaces:
        take("Pod", r.core.list_namespaced_pod, pns)
    events, why = r.list("Event", r.core.list_namespaced_event, ns)
    obs.events = events or []
    if events is None:
        obs.notes.append(f"events not readable: {why}")
    take("ClusterRole", r.rbac.list_cluster_role)
    take("ClusterRoleBinding", r.rbac.list_cluster_role_binding)
    rb_ns = tuner_ns or s.tuner_namespace or ns
    take("Role", r.rbac.list_namespaced_role, rb_ns)
    take("RoleBinding", r.rbac.list_namespaced_role_binding, rb_ns)
    obs.watch = watch_log
    obs.observed_at = datetime.now(timezone.utc)
    return obs


# --------------------------------------------------------------------------- watching


class _Transitions:
    """Folds watch events into a :class:`WatchLog` (pure; fed by the watch threads)."""

    def __init__(self, log: WatchLog, taint_key: str) -> None:
        self.log, self.key = log, taint_key
        self.tainted: dict[str, bool] = {}
        self.node_of: dict[tuple[str, str], str | None] = {}
        self.lock = threading.Lock()

    def node_event(self, kind: str, obj: dict[str, Any], now: datetime) -> None:
        name = name_of(obj)
        has = node_taint(obj, self.key) is not None
        with self.lock:
            if kind == "DELETED":
                self.tainted.pop(name, None)
                return
            before = self.tainted.get(name)
            self.tainted[name] = has
            if has:
                self.log.taint_seen.add(name)
            if before is None:
                created = parse_time((obj.get("metadata") or {}).get("creationTimestamp"))
                if not has and created and (created - self.log.started).total_seconds() >= -1:
                    self.log.joined_untainted.add(name)
            elif before and not has:
                self.log.taint_removed.setdefault(name, now)

    def pod_event(self, kind: str, obj: dict[str, Any], now: datetime) -> None:
        key = (namespace_of(obj) or "", name_of(obj))
        node = (obj.get("spec") or {}).get("nodeName") or None
        with self.lock:
            if kind == "DELETED":
                self.node_of.pop(key, None)
                return
            seen = key in self.node_of
            before = self.node_of.get(key)
            self.node_of[key] = node
            if node and not before and (seen or _created_since(obj, self.log.started)):
                self.log.bound.setdefault(key, (node, now))


def _created_since(obj: dict[str, Any], t: datetime) -> bool:
    created = parse_time((obj.get("metadata") or {}).get("creationTimestamp"))
    return bool(created and (created - t).total_seconds() >= -1) and not (obj.get("spec") or {}).get("nodeName")


def watch(cluster: Cluster, namespace: str, taint_key: str, seconds: float) -> WatchLog:
    """Watch nodes and the namespace's pods for ``seconds``; record taint removals and bindings
    on this machine's clock."""
    r = Reader(cluster)
    started = datetime.now(timezone.utc)
    log = WatchLog(started=started, ended=started)
    fold = _Transitions(log, taint_key)
    errors: list[BaseException] = []
    deadline = time.monotonic() + seconds

    def run(fn: Callable, args: tuple, handle: Callable) -> None:
        from kubernetes import watch as kwatch

        while time.monotonic() < deadline:
            w = kwatch.Watch()
            remaining = max(0.2, deadline - time.monotonic())
            try:
                # deserialize=False: plain dicts, as listed (no model validation of what the API sends)
                for ev in w.stream(fn, *args, timeout_seconds=max(1, int(remaining) + 1), deserialize=False,
                                   _request_timeout=(5, min(2.0, remaining))):
                    obj = ev.get("object") if isinstance(ev, dict) else None
                    if isinstance(obj, dict):
                        handle(str(ev.get("type")), obj, datetime.now(timezone.utc))
                    if time.monotonic() >= deadline:
                        w.stop()
                        break
            except Exception as exc:  # read timeouts end an idle stream; anything else is reported
                if _is_timeout(exc):
                    continue
                errors.append(exc)
                return

    threads = [threading.Thread(target=run, args=(r.core.list_node, (), fold.node_event), daemon=True),
               threading.Thread(target=run, args=(r.core.list_namespaced_pod, (namespace,), fold.pod_event),
                                daemon=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 15)
    log.ended = datetime.now(timezone.utc)
    if errors:
        exc = errors[0]
        from kubernetes.client.rest import ApiException

        if isinstance(exc, ApiException):
            raise K8sError(f"--k8s-watch-s: the API refused the watch (HTTP {exc.status} {exc.reason})") from None
        raise _unreachable(cluster, exc) from None
    return log


def _is_timeout(exc: BaseException) -> bool:
    from urllib3.exceptions import ProtocolError, ReadTimeoutError

    if isinstance(exc, (ReadTimeoutError, TimeoutError)):
        return True
    if isinstance(exc, ProtocolError) and "timed out" in str(exc).lower():
        return True
    return "Read timed out" in str(exc)
