"""The in-cluster verbs: ``pytest-inference in-pod`` (the container's entrypoint, :mod:`.entrypoint`)
and ``pytest-inference k8s manifests`` (:mod:`.manifests`) / ``k8s collect`` (:mod:`.collect`).
Light imports only: ``pytest-inference --help`` stays fast."""

from __future__ import annotations

import argparse


def register(sub) -> None:
    from ..cli import verb_parser
    from . import entrypoint

    p = verb_parser(
        sub, "in-pod",
        help="the container's entrypoint: run pytest, leave Sonobuoy-style results (results.tar.gz + done)",
        description="Run `python -m pytest PYTEST_ARGS --junitxml DIR/junit.xml --inference-report DIR`, then pack "
        "DIR into DIR/results.tar.gz and write its path to DIR/done (Sonobuoy's completion signal). Exit 0 when "
        "the tests ran (failed tests are results), 2 for bad input, 3 when the run left no test results.",
        usage="pytest-inference in-pod [--results-dir DIR] [--print-results] [--then-wait] -- PYTEST_ARGS...",
    )
    entrypoint.add_arguments(p)
    p.set_defaults(func=entrypoint.handle)

    k = verb_parser(sub, "k8s", help="run the suites inside a cluster: manifests to apply, results to collect",
                    description="Kubernetes manifests that run the suites in-cluster (Sonobuoy plugins or plain "
                    "Jobs/DaemonSet), and the collection of their results.")
    k8s_sub = k.add_subparsers(dest="k8s_command", required=True, metavar="{manifests,collect}")
    _add_manifests(k8s_sub)
    from . import collect

    collect.register(k8s_sub)


def _add_manifests(k8s_sub) -> None:
    from ..cli import verb_parser
    from . import manifests

    p = verb_parser(k8s_sub, "manifests", parent="k8s", help="write reviewable YAML that runs the suites in-cluster",
                  description=manifests.DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    manifests.add_arguments(p)
    p.set_defaults(func=manifests.handle)
