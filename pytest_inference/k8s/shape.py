"""Bounds and shapes of manifests before any check reads them.

A folder of YAML is hostile input: an alias bomb ("billion laughs") loads as a small graph of
shared nodes that expands to billions when walked, 20,000 nested brackets overflow Python's
stack, and ``spec: true`` or ``labels: 1`` would reach the checks as the wrong type. Here:

- :func:`expanded_size` counts the nodes of a document *as the checks would walk it* (shared
  nodes counted every time they appear) with memoization, iteratively: linear in the graph,
  bounded by :data:`MAX_NODES` and :data:`MAX_DEPTH`;
- :func:`shape_errors` checks the type of every field the checks read (metadata, labels,
  pod templates, containers, volumes, PVC/PV specs, RBAC rules …) against the Kubernetes API's
  types. Fields it does not know are not checked; the API server would judge those.

Each problem is one line naming the document and the field's path.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any

MAX_NODES = 1_000_000   # nodes a folder may expand to (the reference deployment: ~1,000)
MAX_DEPTH = 100         # nesting (a real manifest is < 20 deep)


_TEMPLATE = re.compile(r"\$\{|\{\{|\$\$")


class ShapeError(ValueError):
    """One line: where and what is wrong."""


def expanded_size(doc: Any, budget: int = MAX_NODES, max_depth: int = MAX_DEPTH) -> int:
    """Nodes of ``doc`` counted as a full walk visits them (aliases expanded), without walking
    them: each distinct container's size is computed once. Raises ShapeError past the bounds."""
    sizes: dict[int, int] = {}
    stack: list[tuple[Any, int, bool]] = [(doc, 1, False)]
    while stack:
        node, depth, done = stack.pop()
        if not isinstance(node, (dict, list)):
            continue
        if depth > max_depth:
            raise ShapeError(f"nested deeper than {max_depth} levels")
        key = id(node)
        children = list(node.values()) if isinstance(node, dict) else node
        if done:
            total = 1 + sum(sizes.get(id(c), 1) if isinstance(c, (dict, list)) else 1 for c in children)
            if total > budget:
                raise ShapeError(f"expands to more than {budget:,} nodes (YAML aliases repeated: an alias bomb?)")
            sizes[key] = total
            continue
        if key in sizes:
            continue
        stack.append((node, depth, True))
        stack.extend((c, depth + 1, False) for c in children if isinstance(c, (dict, list)) and id(c) not in sizes)
    return sizes.get(id(doc), 1)


# --- types the checks rely on -----------------------------------------------------------------------
SCALAR = (str, int, float, bool, datetime, date, type(None))
STR, INT, MAP, INT_OR_STR = "string", "integer", "map of strings", "int-or-string"


def _list(item: Any) -> tuple[str, Any]:
    return ("list", item)


ANYMAP = "object"
PROBE = {"httpGet": {"path": STR}, "exec": {"command": _list(STR)}, "tcpSocket": ANYMAP, "grpc": ANYMAP,
         "initialDelaySeconds": INT, "periodSeconds": INT, "failureThreshold": INT, "timeoutSeconds": INT,
         "successThreshold": INT}
CONTAINER = {
    "name": STR, "image": STR, "command": _list(STR), "args": _list(STR), "env": _list({"name": STR}),
    "volumeMounts": _list({"name": STR, "mountPath": STR, "readOnly": "boolean"}), "ports": _list(ANYMAP),
    "resources": {"limits": ANYMAP, "requests": ANYMAP}, "securityContext": ANYMAP,
    "startupProbe": PROBE, "livenessProbe": PROBE, "readinessProbe": PROBE,
    "lifecycle": {"preStop": {"exec": {"command": _list(STR)}, "httpGet": ANYMAP, "sleep": ANYMAP},
                  "postStart": ANYMAP},
}
SELECTOR = {"matchLabels": MAP, "matchExpressions": _list({"key": STR, "operator": STR, "values": _list(STR)})}
POD_SPEC = {
    "containers": _list(CONTAINER), "initContainers": _list(CONTAINER),
    "volumes": _list({"name": STR, "persistentVolumeClaim": {"claimName": STR}}),
    "tolerations": _list({"key": STR, "operator": STR, "effect": STR, "value": STR}),
    "nodeSelector": MAP, "nodeName": STR, "hostNetwork": "boolean", "hostPID": "boolean",
    "serviceAccountName": STR, "serviceAccount": STR, "restartPolicy": STR,
    "terminationGracePeriodSeconds": INT, "affinity": ANYMAP,
}
METADATA = {"name": STR, "namespace": STR, "labels": MAP, "annotations": MAP, "ownerReferences": _list(ANYMAP),
            "managedFields": _list(ANYMAP), "generateName": STR}
TEMPLATE = {"metadata": {"labels": MAP, "annotations": MAP}, "spec": POD_SPEC}
STATUS = {"conditions": _list(ANYMAP), "containerStatuses": _list(ANYMAP), "initContainerStatuses": _list(ANYMAP)}
WORKLOAD_SPEC = {"template": TEMPLATE, "selector": SELECTOR, "replicas": INT,
                 "strategy": {"type": STR, "rollingUpdate": {"maxSurge": INT_OR_STR, "maxUnavailable": INT_OR_STR}}, "updateStrategy": ANYMAP}
SPECS: dict[str, Any] = {
    "Pod": POD_SPEC,
    "Deployment": WORKLOAD_SPEC, "StatefulSet": WORKLOAD_SPEC, "DaemonSet": WORKLOAD_SPEC,
    "ReplicaSet": WORKLOAD_SPEC, "Job": WORKLOAD_SPEC,
    "CronJob": {"jobTemplate": {"metadata": ANYMAP, "spec": WORKLOAD_SPEC}},
    "PersistentVolumeClaim": {"accessModes": _list(STR), "volumeName": STR, "storageClassName": STR,
                              "selector": SELECTOR, "resources": ANYMAP},
    "PersistentVolume": {"accessModes": _list(STR), "mountOptions": _list(STR), "nfs": ANYMAP, "csi": ANYMAP,
                         "claimRef": {"name": STR, "namespace": STR}, "storageClassName": STR},
    "PodDisruptionBudget": {"selector": SELECTOR, "minAvailable": INT_OR_STR, "maxUnavailable": INT_OR_STR},
    "Node": {"taints": _list({"key": STR, "effect": STR, "value": STR})},
}
RULES = _list({"verbs": _list(STR), "resources": _list(STR), "apiGroups": _list(STR), "resourceNames": _list(STR),
               "nonResourceURLs": _list(STR)})
TOP = {"kind": STR, "apiVersion": STR, "metadata": METADATA, "status": STATUS, "rules": RULES,
       "roleRef": {"kind": STR, "name": STR}, "subjects": _list({"kind": STR, "name": STR, "namespace": STR})}


def _type_name(x: Any) -> str:
    if isinstance(x, bool):
        return "a boolean"
    if isinstance(x, (int, float)):
        return "a number"
    if isinstance(x, str):
        return "a string"
    if isinstance(x, list):
        return "a list"
    if isinstance(x, dict):
        return "a mapping"
    if x is None:
        return "null"
    return f"a {type(x).__name__}"


def _check(value: Any, schema: Any, path: str, out: list[str]) -> None:
    if out or value is None:  # the first problem is enough; null is "not set"
        return
    if isinstance(value, str) and schema in (STR, INT, INT_OR_STR, "boolean") and _TEMPLATE.search(value):
        return  # an unrendered template piece: K8S-TEMPLATE-001 reports it, with its remediation
    if schema == STR:
        if not isinstance(value, str):
            hint = f' (quote it: "{value}")' if isinstance(value, (int, float)) else ""
            out.append(f"{path} is {_type_name(value)}, expected a string{hint}")
    elif schema == INT:
        if isinstance(value, bool) or not isinstance(value, int):
            out.append(f"{path} is {_type_name(value)}, expected an integer")
    elif schema == INT_OR_STR:
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            out.append(f"{path} is {_type_name(value)}, expected an integer or a percentage")
    elif schema == "boolean":
        if not isinstance(value, bool):
            out.append(f"{path} is {_type_name(value)}, expected true or false")
    elif schema == MAP:
        if not isinstance(value, dict):
            out.append(f"{path} is {_type_name(value)}, expected a mapping of strings")
        else:
            for k, v in value.items():
                if not isinstance(k, str) or not isinstance(v, str):
                    out.append(f"{path}.{k} is {_type_name(v)}, expected a string (quote it: \"{v}\")"
                               if isinstance(k, str) else f"{path} has a key {k!r} that is not a string")
                    return
    elif schema == ANYMAP:
        if not isinstance(value, dict):
            out.append(f"{path} is {_type_name(value)}, expected a mapping")
    elif isinstance(schema, tuple):
        if not isinstance(value, list):
            out.append(f"{path} is {_type_name(value)}, expected a list")
            return
        for i, item in enumerate(value):
            _check(item, schema[1], f"{path}[{i}]", out)
    elif isinstance(schema, dict):
        if not isinstance(value, dict):
            out.append(f"{path} is {_type_name(value)}, expected a mapping")
            return
        for k, sub in schema.items():
            if k in value:
                _check(value[k], sub, f"{path}.{k}" if path else k, out)


def shape_errors(obj: dict[str, Any]) -> str | None:
    """The first field of ``obj`` whose type is not what the Kubernetes API (and the checks) expect."""
    out: list[str] = []
    _check(obj, TOP, "", out)
    if not out and "spec" in obj:
        _check(obj["spec"], SPECS.get(str(obj.get("kind")), ANYMAP), "spec", out)
    return out[0] if out else None
