"""The taint gate's timeline, pure: was every workload pod bound to a GPU node only after the
network-not-tuned taint had left that node?

Times are intervals. Kubernetes keeps most timestamps to the whole second (conditions,
container states, managedFields), so an API stamp ``T`` means "some time in [T, T+1 s)";
a watch this run kept, and an event's ``eventTime`` (microseconds), are points. For one pod
bound to a node:

* bound definitely before the removal (``bound.hi < removed.lo``)  -> **violation**
* bound definitely after it (``bound.lo >= removed.hi``)           -> ok
* the intervals overlap by at most :data:`SAME_MOMENT_S` and the pod does not tolerate the taint
  -> ok (the scheduler cannot bind it while the taint is there; same-second stamps cannot order it)
* otherwise, or with no record of either time                      -> **unknown** (inconclusive)

A node still carrying the taint, or one a watch saw joining without it, makes every workload
pod on it a violation: that pod runs on a node the gate never cleared.

Where the times come from, best first (see :func:`node_evidence`, :func:`binding_evidence`):
taint removal — this run's watch; the tuner pod that joined with the node (the container that
removes the taint: ``startedAt`` .. ``finishedAt``); the node's ``managedFields`` entry of the
``kubectl-taint`` manager (dropped by the API server once that manager owns no field, i.e. often
gone after the removal). Binding — this run's watch; the scheduler's ``Scheduled`` event
(``eventTime``, kept ~1 h); the pod's ``PodScheduled`` condition. The sources use different
clocks (checker, kubelet, API server): the judgement assumes they agree to about a second (NTP).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Iterable

from .inventory import _removes_taint, gpu_nodes, is_ours, node_taint, owned_by, tolerates, tuner_pods
from .model import Observation, Settings, iso, name_of, namespace_of, parse_time
from .shell import exec_points

SAME_MOMENT_S = 2.0
SECOND = timedelta(seconds=1)
TAINT_MANAGERS = ("kubectl-taint",)

VIOLATION, OK, UNKNOWN = "violation", "ok", "unknown"


@dataclass(frozen=True)
class Instant:
    """A moment known to lie in [lo, hi]."""

    lo: datetime
    hi: datetime
    source: str

    @classmethod
    def exact(cls, t: datetime, source: str) -> "Instant":
        return cls(t, t, source)

    @classmethod
    def stamp(cls, t: datetime, source: str) -> "Instant":
        """An API timestamp: exact when it has a fraction, else the whole second it names."""
        if t.microsecond:
            return cls(t, t, source)
        return cls(t, t + SECOND - timedelta(microseconds=1), source)

    def text(self) -> str:
        if self.lo == self.hi:
            return f"{iso(self.lo)} ({self.source})"
        if self.hi - self.lo < SECOND:
            return f"{iso(self.lo)} ({self.source})"
        return f"between {iso(self.lo)} and {iso(self.hi)} ({self.source})"


@dataclass(frozen=True)
class NodeTaint:
    node: str
    present: bool = False
    removed: Instant | None = None
    joined_untainted: bool = False
    note: str = ""


@dataclass(frozen=True)
class Binding:
    namespace: str
    pod: str
    node: str
    bound: Instant | None
    tolerates: bool = False


@dataclass
class PairVerdict:
    kind: str
    binding: Binding
    node: NodeTaint
    text: str

    def to_dict(self) -> dict[str, Any]:
        b, n = self.binding, self.node
        return {
            "verdict": self.kind, "node": b.node, "pod": f"{b.namespace}/{b.pod}",
            "bound_at": b.bound.text() if b.bound else None,
            "taint_removed_at": n.removed.text() if n.removed else ("still present" if n.present else None),
            "pod_tolerates_taint": b.tolerates, "why": self.text,
        }


@dataclass
class TimelineResult:
    pairs: list[PairVerdict] = field(default_factory=list)

    def of(self, kind: str) -> list[PairVerdict]:
        return [p for p in self.pairs if p.kind == kind]

    @property
    def violations(self) -> list[PairVerdict]:
        return self.of(VIOLATION)

    @property
    def unknown(self) -> list[PairVerdict]:
        return self.of(UNKNOWN)


def judge_pair(b: Binding, n: NodeTaint) -> PairVerdict:
    where = f"pod {b.namespace}/{b.pod} on node {b.node}"
    if n.joined_untainted:
        return PairVerdict(VIOLATION, b, n, f"{where}: the node joined without the taint, so nothing gated the pod")
    if n.present:
        at = f" at {b.bound.text()}" if b.bound else ""
        return PairVerdict(VIOLATION, b, n, f"{where}: bound{at} while the taint is still on the node")
    if n.removed is None:
        return PairVerdict(UNKNOWN, b, n, f"{where}: no record of when the taint left the node"
                           + (f" ({n.note})" if n.note else ""))
    if b.bound is None:
        return PairVerdict(UNKNOWN, b, n, f"{where}: no record of when the pod was bound")
    r, t = n.removed, b.bound
    if t.hi < r.lo:
        return PairVerdict(VIOLATION, b, n, f"{where}: bound at {t.text()}, before the taint left at {r.text()}")
    if t.lo >= r.hi:
        return PairVerdict(OK, b, n, f"{where}: bound at {t.text()}, after the taint left at {r.text()}")
    span = (max(t.hi, r.hi) - min(t.lo, r.lo)).total_seconds()
    if not b.tolerates and span <= SAME_MOMENT_S:
        return PairVerdict(OK, b, n, f"{where}: bound at {t.text()}, the same moment the taint left ({r.text()}); "
                           "the pod does not tolerate the taint, so the scheduler could not bind it earlier")
    return PairVerdict(UNKNOWN, b, n, f"{where}: bound at {t.text()} and the taint left at {r.text()}: "
                       "the records cannot order them")


def judge_timeline(nodes: dict[str, NodeTaint], bindings: Iterable[Binding]) -> TimelineResult:
    """Judge every binding on a node in ``nodes`` (bindings elsewhere are not the gate's)."""
    res = TimelineResult()
    for b in bindings:
        n = nodes.get(b.node)
        if n is not None:
            res.pairs.append(judge_pair(b, n))
    return res


# --------------------------------------------------------------------------- evidence from objects


def _remover_interval(pod: dict[str, Any], key: str) -> tuple[datetime, datetime, str, int] | None:
    """(startedAt, finishedAt, container, restarts) of the tuner pod's container that removes the taint."""
    spec = pod.get("spec") or {}
    names = []
    for field_ in ("initContainers", "containers"):
        for c in spec.get(field_) or []:
            if any(_removes_taint(argv, key) for _, argv, _ in exec_points(c)):
                names.append(c.get("name"))
    st = pod.get("status") or {}
    for cs in (st.get("initContainerStatuses") or []) + (st.get("containerStatuses") or []):
        if cs.get("name") not in names:
            continue
        term = ((cs.get("state") or {}).get("terminated")) or ((cs.get("lastState") or {}).get("terminated"))
        if not term or term.get("exitCode", 1) != 0:
            continue
        a, b = parse_time(term.get("startedAt")), parse_time(term.get("finishedAt"))
        if a and b:
            return a, b, str(cs.get("name")), int(cs.get("restartCount") or 0)
    return None


def _managed_taint_time(node: dict[str, Any]) -> datetime | None:
    times = [parse_time(m.get("time")) for m in (node.get("metadata") or {}).get("managedFields") or []
             if m.get("manager") in TAINT_MANAGERS and m.get("operation") == "Update"]
    times = [t for t in times if t]
    return max(times) if times else None


def node_evidence(obs: Observation, s: Settings, tuner: dict[str, Any] | None) -> dict[str, NodeTaint]:
    """What the observation says about when the taint left each GPU node."""
    out: dict[str, NodeTaint] = {}
    w = obs.watch
    pods_by_node: dict[str, list[dict[str, Any]]] = {}
    if tuner is not None:
        for p in tuner_pods(obs, tuner):
            pods_by_node.setdefault(str((p.get("spec") or {}).get("nodeName")), []).append(p)
    for node in gpu_nodes(obs, s):
        name = name_of(node)
        created = parse_time((node.get("metadata") or {}).get("creationTimestamp"))
        if w and name in w.joined_untainted:
            out[name] = NodeTaint(name, joined_untainted=True)
            continue
        if node_taint(node, s.taint_key):
            out[name] = NodeTaint(name, present=True)
            continue
        if w and name in w.taint_removed:
            out[name] = NodeTaint(name, removed=Instant.exact(w.taint_removed[name], "watch"))
            continue
        found = None
        for p in pods_by_node.get(name, []):
            iv = _remover_interval(p, s.taint_key)
            if not iv:
                continue
            start, finish, cname, restarts = iv
            pc = parse_time((p.get("metadata") or {}).get("creationTimestamp"))
            join_time = bool(created and pc and (pc - created).total_seconds() <= s.join_window_s)
            src = f"tuner pod {name_of(p)}, container {cname}"
            if join_time and not restarts:
                found = NodeTaint(name, removed=Instant(start, finish + SECOND - timedelta(microseconds=1), src))
            else:
                # a later tuner pod (the DaemonSet was rolled) or a rerun: it proves only an upper bound
                lo = created or start
                found = NodeTaint(name, removed=Instant(min(lo, start), finish + SECOND - timedelta(microseconds=1),
                                                       src + (" (not the node's first tuner run)")))
            break
        if found:
            out[name] = found
            continue
        mt = _managed_taint_time(node)
        if mt:
            out[name] = NodeTaint(name, removed=Instant.stamp(mt, "node managedFields, manager kubectl-taint"))
            continue
        out[name] = NodeTaint(name, note="the API keeps no taint history for this node and no join-time tuner "
                              "pod records the removal; watch nodes join with --k8s-watch-s")
    return out


def _scheduled_event(obs: Observation, ns: str, pod: str, node: str) -> datetime | None:
    best = None
    for e in obs.events:
        inv = e.get("involvedObject") or e.get("regarding") or {}
        if e.get("reason") != "Scheduled" or inv.get("kind") != "Pod" or inv.get("name") != pod:
            continue
        if inv.get("namespace") not in (ns, None):
            continue
        msg = str(e.get("message") or e.get("note") or "")
        if node not in msg:
            continue
        t = parse_time(e.get("eventTime")) or parse_time(e.get("firstTimestamp"))
        if t and (best is None or t > best):
            best = t
    return best


def binding_evidence(obs: Observation, s: Settings, tuner: dict[str, Any] | None,
                     nodes: Iterable[str]) -> list[Binding]:
    """Workload pods on the given nodes and when each was bound."""
    wanted = set(nodes)
    out: list[Binding] = []
    for p in obs.of_kind("Pod"):
        spec = p.get("spec") or {}
        node = spec.get("nodeName")
        if node not in wanted or is_ours(p):
            continue
        ns = namespace_of(p) or ""
        if s.namespace and ns != s.namespace:
            continue
        if tuner is not None and (owned_by(p, "DaemonSet", name_of(tuner)) and ns == (namespace_of(tuner) or ns)):
            continue
        pod = name_of(p)
        bound: Instant | None = None
        if obs.watch and (ns, pod) in obs.watch.bound and obs.watch.bound[(ns, pod)][0] == node:
            bound = Instant.exact(obs.watch.bound[(ns, pod)][1], "watch")
        if bound is None:
            ev = _scheduled_event(obs, ns, pod, node)
            if ev:
                bound = Instant.stamp(ev, "Scheduled event")
        if bound is None:
            for c in (p.get("status") or {}).get("conditions") or []:
                if c.get("type") == "PodScheduled" and c.get("status") == "True":
                    t = parse_time(c.get("lastTransitionTime"))
                    if t:
                        bound = Instant.stamp(t, "PodScheduled condition")
        out.append(Binding(ns, pod, str(node), bound, tolerates(spec, s.taint_key)))
    return out
