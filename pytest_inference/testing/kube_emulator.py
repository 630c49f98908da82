"""An emulated Kubernetes API server for the k8s suite's own tests: kmock's in-memory
``KubernetesEmulator`` served over real HTTP by aiohttp in a background thread, so the official
``kubernetes`` client (and a child pytest given a kubeconfig) talks to it as to a cluster.

It does not schedule pods or run controllers: a test plays the scenario (creates a tainted
node, binds a pod, removes the taint) through :meth:`KubeEmulator.driver`, an official client
whose requests carry the user agent ``scenario-driver``; the suite's own requests carry
``pytest-inference/…``, so :meth:`KubeEmulator.requests` tells who asked what (the read-only proof).

    with KubeEmulator() as kube:
        kube.add(node("gpu-1", tainted=True))
        path = kube.write_kubeconfig(tmp_path / "kubeconfig", namespace="vllm")
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: kind -> (group/version, plural, namespaced)
RESOURCES: dict[str, tuple[str, str, bool]] = {
    "Node": ("v1", "nodes", False),
    "Namespace": ("v1", "namespaces", False),
    "Pod": ("v1", "pods", True),
    "Event": ("v1", "events", True),
    "Service": ("v1", "services", True),
    "ServiceAccount": ("v1", "serviceaccounts", True),
    "PersistentVolume": ("v1", "persistentvolumes", False),
    "PersistentVolumeClaim": ("v1", "persistentvolumeclaims", True),
    "Deployment": ("apps/v1", "deployments", True),
    "DaemonSet": ("apps/v1", "daemonsets", True),
    "StatefulSet": ("apps/v1", "statefulsets", True),
    "Job": ("batch/v1", "jobs", True),
    "CronJob": ("batch/v1", "cronjobs", True),
    "PodDisruptionBudget": ("policy/v1", "poddisruptionbudgets", True),
    "ClusterRole": ("rbac.authorization.k8s.io/v1", "clusterroles", False),
    "ClusterRoleBinding": ("rbac.authorization.k8s.io/v1", "clusterrolebindings", False),
    "Role": ("rbac.authorization.k8s.io/v1", "roles", True),
    "RoleBinding": ("rbac.authorization.k8s.io/v1", "rolebindings", True),
}

DRIVER_AGENT = "scenario-driver"


def _patch_namespace_paths(kmock_parsing: Any) -> None:
    """Make kmock read ``/api/v1/namespaces`` and ``/api/v1/namespaces/NAME`` as the namespaces
    resource (it takes them for a namespace prefix with no resource and answers 500); every other
    path is parsed as before. Idempotent."""
    original = kmock_parsing.parse_path
    if getattr(original, "_namespaces_patched", False):
        return

    def parse_path(path: str) -> Any:
        parts = path.strip("/").split("/")
        if len(parts) in (3, 4) and parts[0] == "api" and parts[2] == "namespaces":
            return kmock_parsing.ParsedPath("", parts[1], "namespaces", None, parts[3] if len(parts) == 4 else None)
        return original(path)

    parse_path._namespaces_patched = True  # type: ignore[attr-defined]
    kmock_parsing.parse_path = parse_path


@dataclass(frozen=True)
class Seen:
    """One request the emulator served."""

    method: str
    path: str
    user_agent: str
    action: str | None


class KubeEmulator:
    """kmock's KubernetesEmulator on 127.0.0.1:<random port>, in a background event loop."""

    def __init__(self, *, kinds: tuple[str, ...] | None = None, forbid: tuple[str, ...] = ()) -> None:
        import kmock
        from kmock._internal import parsing

        _patch_namespace_paths(parsing)
        self._kmock_mod = kmock
        self.kmock = kmock.KubernetesEmulator()
        self.url = ""
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        for kind in kinds or tuple(RESOURCES):
            gv, plural, namespaced = RESOURCES[kind]
            self.kmock.resources[f"{gv}/{plural}"] = {"kind": kind, "namespaced": namespaced,
                                                     "verbs": ["get", "list", "watch", "create", "patch",
                                                               "update", "delete"]}
        self._logs: dict[tuple[str, str], str] = {}
        pods = kmock.resource("", "v1", "pods")
        self.kmock[pods, kmock.subresource("log")] << self._serve_log
        self.kmock[kmock.action.LIST, lambda r: bool(r.params.get("labelSelector"))] << self._serve_selected
        for kind in forbid:  # RBAC says no: every request on this kind is answered 403
            gv, plural, _ = RESOURCES[kind]
            group, _, version = gv.rpartition("/")
            self.kmock[kmock.resource(group, version, plural)] << kmock.KubernetesError(
                status=403, reason="Forbidden", message=f"{plural} is forbidden")

    # --- lifecycle ---------------------------------------------------------------------------
    def __enter__(self) -> "KubeEmulator":
        self._thread = threading.Thread(target=self._run, name="kube-emulator", daemon=True)
        self._thread.start()
        if not self._ready.wait(20):
            raise RuntimeError("the emulated API server did not start")
        if self._error:
            raise RuntimeError(f"the emulated API server did not start: {self._error}")
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        if self._loop and self._stop and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread:
            self._thread.join(10)

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        try:
            self._loop.run_until_complete(self._main())
        except BaseException as exc:  # pragma: no cover - shown by __enter__
            self._error = exc
            self._ready.set()
        finally:
            self._loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        async with self.kmock, self._kmock_mod.Server(self.kmock) as srv:
            self.url = str(srv.url).rstrip("/")
            self._ready.set()
            await self._stop.wait()

    # --- objects -----------------------------------------------------------------------------
    def add(self, *objs: dict[str, Any]) -> None:
        """Store objects directly (before a run; use :meth:`driver` to change them live)."""
        for obj in objs:
            kind = obj["kind"]
            gv, plural, namespaced = RESOURCES[kind]
            md = obj.setdefault("metadata", {})
            ns = md.get("namespace") if namespaced else None
            if namespaced and not ns:
                ns = md["namespace"] = "default"
            obj.setdefault("apiVersion", gv)
            self.kmock.objects[f"{gv}/{plural}", ns, md["name"]] = obj

    def get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        gv, plural, _ = RESOURCES[kind]
        try:
            obj = self.kmock.objects[f"{gv}/{plural}", namespace, name]
        except KeyError:
            return None
        return None if obj.deleted else dict(obj.raw)

    def set_log(self, namespace: str, pod: str, text: str) -> None:
        """What ``GET …/pods/{pod}/log`` answers (the container's stdout and stderr)."""
        self._logs[(namespace, pod)] = text

    def _serve_log(self, request: Any) -> Any:
        kmock = self._kmock_mod
        if (request.namespace, request.name) in self._logs:
            return self._logs[(request.namespace, request.name)]
        if self.get("Pod", request.name, request.namespace) is None:
            return kmock.KubernetesError(status=404, reason="NotFound", message=f'pods "{request.name}" not found')
        return kmock.KubernetesError(status=400, reason="BadRequest",
                                     message=f'container in pod "{request.name}" is waiting to start: ContainerCreating')

    def _serve_selected(self, request: Any) -> dict[str, Any]:
        from ..k8s.model import selector_matches

        sel = request.params["labelSelector"]
        items = [o.raw for (res, ns, _), o in list(self.kmock.objects.items())
                 if res == request.resource and not o.deleted
                 and (request.namespace is None or ns == request.namespace)
                 and selector_matches(sel, (o.raw.get("metadata") or {}).get("labels") or {})]
        return {"metadata": {"resourceVersion": "1"}, "items": items}

    # --- what was asked ----------------------------------------------------------------------
    def requests(self) -> list[Seen]:
        out = []
        for r in list(self.kmock._requests):
            out.append(Seen(method=str(r.method.value if hasattr(r.method, "value") else r.method).upper(),
                            path=r.url.path, user_agent=r.headers.get("User-Agent", ""),
                            action=str(r.action.value) if r.action is not None else None))
        return out

    def suite_requests(self) -> list[Seen]:
        """Requests from anything but the scenario driver (i.e. from the suite under test)."""
        return [r for r in self.requests() if not r.user_agent.startswith(DRIVER_AGENT)]

    # --- clients -----------------------------------------------------------------------------
    def driver(self):
        """An official ``kubernetes`` ApiClient for playing the scenario (user agent ``scenario-driver``)."""
        from kubernetes import client

        cfg = client.Configuration()
        cfg.host = self.url
        api = client.ApiClient(cfg)
        api.user_agent = DRIVER_AGENT
        return api

    def kubeconfig(self, *, namespace: str | None = None, context: str = "emulated") -> dict[str, Any]:
        ctx: dict[str, Any] = {"cluster": "emulated", "user": "tester"}
        if namespace:
            ctx["namespace"] = namespace
        return {
            "apiVersion": "v1", "kind": "Config", "current-context": context,
            "clusters": [{"name": "emulated", "cluster": {"server": self.url}}],
            "users": [{"name": "tester", "user": {"token": "not-a-secret"}}],
            "contexts": [{"name": context, "context": ctx}],
        }

    def write_kubeconfig(self, path: str | Path, **kw: Any) -> Path:
        import yaml

        p = Path(path)
        p.write_text(yaml.safe_dump(self.kubeconfig(**kw)))
        return p
