"""``python -m pytest_inference.catalog readme [--check] README.md``: write (or check) the README's
generated catalog tables."""

from __future__ import annotations

import argparse
import sys

from .readme import main as readme_main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pytest_inference.catalog")
    sub = ap.add_subparsers(dest="command", required=True)
    rd = sub.add_parser("readme", help="rewrite the README's generated regions from the catalogs")
    rd.add_argument("path", help="the README to rewrite (or check)")
    rd.add_argument("--check", action="store_true", help="exit 1 when a region is out of date; write nothing")
    args = ap.parse_args(argv)
    rc, line = readme_main(args.path, check=args.check)
    print(line, file=sys.stderr if rc else sys.stdout)
    return rc


if __name__ == "__main__":
    sys.exit(main())
