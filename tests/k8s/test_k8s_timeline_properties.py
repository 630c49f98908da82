"""The taint-gate timeline's properties on hypothesis-generated timelines (needs the test extra:
pip install -e '.[test]'; without it these skip and the rest of tests/k8s runs)."""

import pytest

pytest.importorskip("hypothesis", reason="the property tests need hypothesis: pip install -e '.[test]'")

from hypothesis import given, settings, strategies as st  # noqa: E402

from k8s_scenarios import verdict  # noqa: E402
from pytest_inference.k8s.checks import run_check  # noqa: E402
from pytest_inference.claims import FAIL, PASS  # noqa: E402
from pytest_inference.k8s.timeline import Binding, Instant, NodeTaint, judge_timeline  # noqa: E402
from test_k8s_timeline import S, at, live, node, vllm_pod  # noqa: E402


# --------------------------------------------------------------------------- properties

nodes_st = st.dictionaries(st.sampled_from([f"gpu-{i}" for i in range(6)]),
                           st.one_of(st.none(), st.integers(0, 600)), min_size=1, max_size=6)


@st.composite
def timelines(draw, exact: bool):
    nodes = draw(nodes_st)  # node -> removal second (None: the taint is still there)
    pods = draw(st.lists(st.tuples(st.sampled_from(sorted(nodes)),
                                   st.floats(0, 600, allow_nan=False) if exact else st.integers(0, 600),
                                   st.booleans()), max_size=12))
    return nodes, pods


def _judge(nodes, pods, exact):
    mk = Instant.exact if exact else Instant.stamp
    taints = {n: NodeTaint(n, present=r is None, removed=None if r is None else mk(at(r), "watch"))
              for n, r in nodes.items()}
    bindings = [Binding("vllm", f"p{i}", n, mk(at(t), "watch"), tol) for i, (n, t, tol) in enumerate(pods)]
    return judge_timeline(taints, bindings)


@settings(max_examples=300, deadline=None)
@given(timelines(exact=True))
def test_property_violation_iff_bound_before_removal_exact(tl):
    nodes, pods = tl
    res = _judge(nodes, pods, exact=True)
    want = {f"p{i}" for i, (n, t, _) in enumerate(pods) if nodes[n] is None or t < nodes[n]}
    assert {p.binding.pod for p in res.violations} == want
    assert not res.unknown or all(p.binding.tolerates for p in res.unknown)


@settings(max_examples=300, deadline=None)
@given(timelines(exact=False))
def test_property_violation_iff_bound_before_removal_whole_seconds(tl):
    nodes, pods = tl
    res = _judge(nodes, pods, exact=False)
    want = {f"p{i}" for i, (n, t, _) in enumerate(pods) if nodes[n] is None or t < nodes[n]}
    assert {p.binding.pod for p in res.violations} == want
    # the same second cannot be ordered: fine for a pod that does not tolerate the taint, else unknown
    for p in res.unknown:
        i = int(p.binding.pod[1:])
        n, t, tol = pods[i]
        assert tol and t == nodes[n]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 60), st.integers(0, 60)), min_size=1, max_size=5))
def test_property_check_counts_violations_from_objects(pairs):
    """Nodes whose managedFields say when the taint left, pods whose PodScheduled says when they were
    bound: the check's count is the number of pods bound in an earlier second."""
    objs = []
    for i, (removed, bound) in enumerate(pairs):
        objs += [node(f"gpu-{i}", managed_taint_at=removed), vllm_pod(f"p{i}", f"gpu-{i}", scheduled=bound)]
    r = run_check("K8S-TAINT-001", live(*objs), S)
    want = sum(1 for removed, bound in pairs if bound < removed)
    if want:
        assert verdict(r) == FAIL and r.measured == want
    else:
        assert verdict(r) == PASS and r.measured == 0
