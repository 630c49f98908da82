"""What the checks read (an :class:`Observation` and :class:`Settings`) and what they return
(:class:`CheckResult`). Plain data: no I/O, no ``kubernetes`` import.

An observation holds Kubernetes objects as plain dicts in their API shape (camelCase, the
way ``kubectl get -o json`` and a YAML manifest both write them), so the same judges run on
a live cluster and on a folder of manifests.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable, Iterator

from ..checks import CheckResult  # noqa: F401  (the checks' result; re-exported)
from . import DEFAULT_TAINT_KEY

STATIC, LIVE = "static", "live"

#: kinds whose objects carry a pod template (spec.template.spec), and Pod itself
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod")


@dataclass
class WatchLog:
    """Transitions a live watch saw, on the checker's clock (UTC, sub-second).

    ``taint_removed[node]``: when the taint was seen leaving the node;
    ``taint_seen[node]``: the node was seen carrying the taint at least once;
    ``joined_untainted[node]``: the node appeared during the watch (created after it began)
    without the taint; ``bound[(namespace, pod)] = (node, time)``: the pod was seen getting
    its ``spec.nodeName`` during the watch.
    """

    started: datetime
    ended: datetime
    taint_removed: dict[str, datetime] = field(default_factory=dict)
    taint_seen: set[str] = field(default_factory=set)
    joined_untainted: set[str] = field(default_factory=set)
    bound: dict[tuple[str, str], tuple[str, datetime]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "started": iso(self.started), "ended": iso(self.ended),
            "taint_removed": {n: iso(t) for n, t in sorted(self.taint_removed.items())},
            "taint_seen": sorted(self.taint_seen), "joined_untainted": sorted(self.joined_untainted),
            "bound": {f"{ns}/{p}": {"node": n, "at": iso(t)} for (ns, p), (n, t) in sorted(self.bound.items())},
        }


@dataclass
class Observation:
    """Everything one run saw: objects (dicts), events, and a watch log when there was one.

    ``unavailable[kind]`` says why a kind could not be read (RBAC forbids listing it, the API
    does not serve it); a check that needs that kind is inconclusive and says so.
    ``origin[(kind, namespace, name)]`` is where the object came from (``file.yaml#2``).
    """

    mode: str
    source: str
    objects: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    watch: WatchLog | None = None
    unavailable: dict[str, str] = field(default_factory=dict)
    origin: dict[tuple[str, str | None, str], str] = field(default_factory=dict)
    observed_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    namespace: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def live(self) -> bool:
        return self.mode == LIVE

    def of_kind(self, *kinds: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o.get("kind") in kinds]

    def get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        for o in self.of_kind(kind):
            md = o.get("metadata") or {}
            if md.get("name") == name and (namespace is None or md.get("namespace") in (namespace, None)):
                return o
        return None

    def where(self, obj: dict[str, Any]) -> str:
        """``Deployment vllm/vllm (deploy.yaml#1)`` — how a finding names an object."""
        k = key_of(obj)
        ref = f"{k[0]} {k[1] + '/' if k[1] else ''}{k[2]}"
        src = self.origin.get(k)
        return f"{ref} ({src})" if src else ref


@dataclass(frozen=True)
class Settings:
    """What the checks need to know besides the objects: names, selectors, budgets."""

    namespace: str | None = None
    deployment: str | None = None
    deployment_selector: str | None = None
    tuner_daemonset: str | None = None
    tuner_namespace: str | None = None
    taint_key: str = DEFAULT_TAINT_KEY
    gpu_node_selector: str | None = None
    model_load_s: float | None = None
    model_load_source: str = ""
    model_load_margin: float = 1.25
    max_drain_s: float = 60.0
    nconnect_min: int = 8
    nfs_vers_min: tuple[int, int] = (4, 1)
    #: a tuner pod created within this many seconds of its node is the node's join-time tuner
    join_window_s: float = 120.0


# --------------------------------------------------------------------------- small pure helpers


def key_of(obj: dict[str, Any]) -> tuple[str, str | None, str]:
    md = obj.get("metadata") or {}
    return (str(obj.get("kind", "?")), md.get("namespace"), str(md.get("name", "?")))


def name_of(obj: dict[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name", "?"))


def namespace_of(obj: dict[str, Any]) -> str | None:
    return (obj.get("metadata") or {}).get("namespace")


def labels_of(obj: dict[str, Any]) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("labels") or {})


def pod_spec(obj: dict[str, Any]) -> dict[str, Any] | None:
    """The pod spec of a Pod or of any controller's template (CronJob: the job template's)."""
    kind = obj.get("kind")
    spec = obj.get("spec") or {}
    if kind == "Pod":
        return spec
    if kind == "CronJob":
        spec = ((spec.get("jobTemplate") or {}).get("spec")) or {}
    tmpl = spec.get("template")
    if isinstance(tmpl, dict):
        return tmpl.get("spec") or {}
    return None


def pod_template_labels(obj: dict[str, Any]) -> dict[str, str]:
    if obj.get("kind") == "Pod":
        return labels_of(obj)
    spec = obj.get("spec") or {}
    if obj.get("kind") == "CronJob":
        spec = ((spec.get("jobTemplate") or {}).get("spec")) or {}
    return dict((((spec.get("template") or {}).get("metadata")) or {}).get("labels") or {})


def containers(spec: dict[str, Any] | None, *, init: bool = True) -> Iterator[tuple[str, dict[str, Any]]]:
    """(``"initContainers"`` | ``"containers"``, container) pairs of a pod spec."""
    if not spec:
        return
    if init:
        for c in spec.get("initContainers") or []:
            yield "initContainers", c
    for c in spec.get("containers") or []:
        yield "containers", c


def parse_time(value: Any) -> datetime | None:
    """An API timestamp (RFC 3339, ``Z`` or offset, optional fraction) as an aware datetime."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if not value or not isinstance(value, str):
        return None
    text = value.strip().replace("Z", "+00:00")
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def iso(dt: datetime | None) -> str | None:
    if dt is None:
        return None
    return dt.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


# --------------------------------------------------------------------------- label selectors


class SelectorError(ValueError):
    """A label selector that does not parse; the message is one line."""


def parse_selector(text: str) -> list[tuple[str, str, tuple[str, ...]]]:
    """``a=b,c!=d,e,!f,g in (x,y),h notin (z)`` -> requirements (key, op, values)."""
    reqs: list[tuple[str, str, tuple[str, ...]]] = []
    parts: list[str] = []
    depth, cur = 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    for raw in parts:
        p = raw.strip()
        if not p:
            continue
        low = f" {p} "
        if " notin " in low or " in " in low:
            op = "notin" if " notin " in low else "in"
            key, _, rest = p.partition(f" {op} ")
            rest = rest.strip()
            if not (rest.startswith("(") and rest.endswith(")")):
                raise SelectorError(f"label selector {text!r}: '{p}' needs a (value, …) list")
            values = tuple(v.strip() for v in rest[1:-1].split(",") if v.strip())
            reqs.append((key.strip(), op, values))
        elif "!=" in p:
            k, v = p.split("!=", 1)
            reqs.append((k.strip(), "!=", (v.strip(),)))
        elif "==" in p or "=" in p:
            k, v = p.split("==", 1) if "==" in p else p.split("=", 1)
            reqs.append((k.strip(), "=", (v.strip(),)))
        elif p.startswith("!"):
            reqs.append((p[1:].strip(), "!exists", ()))
        else:
            reqs.append((p, "exists", ()))
    for key, _, _ in reqs:
        if not key or any(c.isspace() for c in key):
            raise SelectorError(f"label selector {text!r}: bad key {key!r}")
    return reqs


def selector_matches(selector: str | Iterable | dict[str, str] | None, labels: dict[str, str]) -> bool:
    """Whether ``labels`` satisfy a selector string, a parsed selector, or a matchLabels dict."""
    if selector is None:
        return True
    if isinstance(selector, dict):
        return all(labels.get(k) == v for k, v in selector.items())
    reqs = parse_selector(selector) if isinstance(selector, str) else list(selector)
    for key, op, values in reqs:
        has, val = key in labels, labels.get(key)
        if op == "=" and val != values[0]:
            return False
        if op == "!=" and val == values[0]:
            return False
        if op == "exists" and not has:
            return False
        if op == "!exists" and has:
            return False
        if op == "in" and val not in values:
            return False
        if op == "notin" and has and val in values:
            return False
    return True


def label_selector_matches(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """A Kubernetes ``LabelSelector`` object (matchLabels + matchExpressions) against labels.
    An empty selector matches everything (as for a PodDisruptionBudget); None matches nothing."""
    if selector is None:
        return False
    if not all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), list(expr.get("values") or [])
        has, val = key in labels, labels.get(key)
        if op == "In" and val not in values:
            return False
        if op == "NotIn" and has and val in values:
            return False
        if op == "Exists" and not has:
            return False
        if op == "DoesNotExist" and has:
            return False
    return True


_FLOATING_TAGS = {"latest", "stable", "main", "master", "nightly", "edge", "dev", "slim", "alpine"}


def image_pinned(image: str) -> bool:
    """A digest, or a tag that names a version (has a digit and is not a moving name)."""
    if "@sha256:" in image:
        return True
    last = image.rsplit("/", 1)[-1]
    if ":" not in last:
        return False
    tag = last.rsplit(":", 1)[1]
    return tag.lower() not in _FLOATING_TAGS and bool(re.search(r"\d", tag))
