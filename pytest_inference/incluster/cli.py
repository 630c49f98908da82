"""The in-cluster verbs: ``pytest-inference in-pod`` (the container's entrypoint, :mod:`.entrypoint`)
and ``pytest-inference k8s manifests`` (:mod:`.manifests`) / ``k8s collect`` (:mod:`.collect`, when present).
Light imports only: ``pytest-inference --help`` stays fast."""

from __future__ import annotations

import argparse
import importlib
import sys


def _sub_verb(sub, verb: str, name: str, **kwargs) -> argparse.ArgumentParser:
    """A parser for ``pytest-inference VERB NAME`` whose bad input is one line naming both words."""
    from ..cli import verb_parser

    p = verb_parser(sub, name, **kwargs)

    def one_line(message: str) -> None:
        print(f"pytest-inference {verb} {name}: {message}", file=sys.stderr)
        sys.exit(2)

    p.error = one_line  # type: ignore[method-assign]
    p.set_defaults(on_error=one_line)
    return p


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
    try:
        collect = importlib.import_module("pytest_inference.incluster.collect")
    except ModuleNotFoundError as exc:
        if exc.name != "pytest_inference.incluster.collect":
            raise
    else:
        collect.register(k8s_sub)


def _add_manifests(k8s_sub) -> None:
    try:
        manifests = importlib.import_module("pytest_inference.incluster.manifests")
    except ModuleNotFoundError as exc:  # pragma: no cover - during development only
        if exc.name != "pytest_inference.incluster.manifests":
            raise
        return
    p = _sub_verb(k8s_sub, "k8s", "manifests", help="write reviewable YAML that runs the suites in-cluster",
                  description=manifests.DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    manifests.add_arguments(p)
    p.set_defaults(func=manifests.handle)
