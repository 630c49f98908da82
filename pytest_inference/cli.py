"""``pytest-inference``: the command line beside the plugin.

    pytest-inference targets [NAME ...]        list target profiles and their claims
    pytest-inference report [--results DIR] [--out DIR]
                                               render allure-results to one offline HTML file
    pytest-inference crossover --gpu-hourly USD --price-in USD_PER_1M --price-out USD_PER_1M
                               --input-tokens N [--output-lengths 30,220,1200] [--pricing FILE]
                               [--capacity-rps C] [--json]
                                               GPU vs serverless break-even table (no server needed)

The other verbs (``k8s``, ``merge``, ``bundle``, ``compare``, ...) live in their own modules (see
:data:`VERBS`): each has a ``register(sub)`` that adds its parser made by :func:`verb_parser`.
"""

from __future__ import annotations

import argparse
import json
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


# --- crossover (pytest_inference.economics) ---------------------------------------------------------
def _crossover(args: argparse.Namespace) -> int:
    from .economics import (NO_CAPACITY, Capacity, EconomicsError, capacity_table, format_capacity_table,
                            resolve_settings, swing)

    options = {
        "gpu_usd_per_hour": args.gpu_hourly,
        "usd_per_m_input": args.price_in,
        "usd_per_m_output": args.price_out,
        "input_tokens": args.input_tokens,
        "output_lengths": args.output_lengths,
        "capacity_rps": args.capacity_rps,
    }
    try:
        settings = resolve_settings(options, args.pricing)
        capacity = (None if settings.capacity_rps is None
                    else Capacity(settings.capacity_rps, "given", settings.sources["capacity_rps"]))
        rows = capacity_table(settings.pricing, settings.input_tokens, settings.output_lengths,
                              None if capacity is None else capacity.rps)
    except EconomicsError as exc:
        print(f"pytest-inference crossover: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({**settings.to_dict(), "capacity": capacity.to_dict() if capacity else None,
                          "capacity_note": None if capacity else NO_CAPACITY,
                          "rows": [r.to_dict() for r in rows], "swing": swing([r.base for r in rows])}, indent=2))
    else:
        print(format_capacity_table(rows, settings.pricing, capacity), end="")
    return 0


def verb_parser(sub, name: str, *, parent: str | None = None, **kwargs) -> argparse.ArgumentParser:
    """A subcommand parser whose bad input is one line on stderr (``pytest-inference NAME: ...``, or
    ``pytest-inference PARENT NAME: ...`` for a sub-verb such as ``k8s collect``) and exit status 2,
    never argparse's usage block; its ``on_error`` default says unknown arguments the same way."""
    p = sub.add_parser(name, **kwargs)
    said = f"{parent} {name}" if parent else name

    def one_line(message: str) -> None:
        print(f"pytest-inference {said}: {message}", file=sys.stderr)
        sys.exit(2)

    p.error = one_line  # type: ignore[method-assign]
    p.set_defaults(on_error=one_line)
    return p


def fail(verb: str, message: str) -> int:
    """Say one line on stderr for ``verb`` and return exit status 2 (bad input)."""
    print(f"pytest-inference {verb}: {message}", file=sys.stderr)
    return 2


def _add_crossover(sub) -> None:
    from .economics import argparse_type

    p = verb_parser(
        sub,
        "crossover",
        help="GPU vs serverless break-even table by response length (no server needed)",
        description="Break-even requests/hour and /s where a serverless endpoint costs as much as a GPU "
        "billed per hour: GPU $/h / (input tokens x $/1M in + output tokens x $/1M out) x 1M.",
    )
    p.add_argument("--gpu-hourly", type=argparse_type("gpu_usd_per_hour"), metavar="USD", help="GPU price, USD per hour (seed: 1.88)")
    p.add_argument("--price-in", type=argparse_type("usd_per_m_input"), metavar="USD_PER_1M",
                   help="serverless USD per 1M input tokens (seed: 0.10)")
    p.add_argument("--price-out", type=argparse_type("usd_per_m_output"), metavar="USD_PER_1M",
                   help="serverless USD per 1M output tokens (seed: 0.70)")
    p.add_argument("--input-tokens", type=argparse_type("input_tokens"), metavar="N", help="input tokens per request (seed: ~80)")
    p.add_argument("--output-lengths", type=argparse_type("output_lengths"), metavar="30,220,1200",
                   help="output tokens per response length: 30,220,1200 (short, medium, long; default) or name=tokens pairs")
    p.add_argument("--pricing", type=argparse_type("pricing_file"), metavar="FILE",
                   help="TOML/JSON file with any of gpu_usd_per_hour, usd_per_m_input, usd_per_m_output, input_tokens, "
                   "output_lengths, capacity_rps; options win over it")
    p.add_argument("--capacity-rps", type=argparse_type("capacity_rps"), metavar="C",
                   help="requests/s one GPU serves within the SLO: self-hosted cost at R req/s is ceil(R / C) GPUs x "
                   "$/h (default: one GPU at any rate)")
    p.add_argument("--json", action="store_true", help="print the settings and the rows as JSON")
    p.set_defaults(func=_crossover)


# --- end crossover ---------------------------------------------------------------------------------

#: modules that add verbs: each has ``register(sub)`` (light imports only: ``--help`` stays fast)
VERBS = (
    "pytest_inference.incluster.cli",   # k8s manifests | k8s collect | in-pod entrypoint
    "pytest_inference.shards",          # merge
    "pytest_inference.bundle.cli",      # bundle | compare | verify
)


def _register_verbs(sub) -> None:
    import importlib

    for name in VERBS:
        importlib.import_module(name).register(sub)


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
    _add_crossover(sub)
    _register_verbs(sub)
    args, extra = parser.parse_known_args(argv)
    if extra:  # what parse_args does, but a subcommand may say it in its own words
        getattr(args, "on_error", parser.error)(f"unrecognized arguments: {' '.join(extra)}")
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
