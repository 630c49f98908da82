"""``pytest-inference``: the command line beside the plugin.

    pytest-inference targets [NAME ...]        list target profiles and their claims
    pytest-inference report [--results DIR] [--out DIR]
                                               render allure-results to one offline HTML file
"""

from __future__ import annotations

import argparse
import sys


def _targets(args: argparse.Namespace) -> int:
    from .targets import TargetError, describe_targets

    try:
        print(describe_targets(args.names or None), end="")
    except TargetError as exc:
        print(f"pytest-inference: {exc}", file=sys.stderr)
        return 2
    return 0


def _report(args: argparse.Namespace) -> int:
    from .report.html import ReportError, render_html

    try:
        path = render_html(args.results, args.out)
    except ReportError as exc:
        print(f"pytest-inference: {exc}", file=sys.stderr)
        return 2
    print(f"report written to {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pytest-inference", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("targets", help="list target profiles and their claims")
    p.add_argument("names", nargs="*", help="target names or profile paths (default: all shipped)")
    p.set_defaults(func=_targets)
    p = sub.add_parser("report", help="render allure-results to one offline HTML file (Allure 3 from npm)")
    p.add_argument("--results", default="reports/allure-results", help="allure-results folder (default %(default)s)")
    p.add_argument("--out", default="reports/html", help="output folder (default %(default)s)")
    p.set_defaults(func=_report)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
