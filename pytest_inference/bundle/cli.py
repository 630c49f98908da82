"""The verbs ``bundle``, ``verify`` and ``compare`` (added to ``pytest-inference`` by :func:`register`).

    pytest-inference bundle reports/ -o qualification.tar.gz    pack the report folder (+ Allure HTML, page, manifest)
    pytest-inference bundle reports/ --page-only -o page.html    only the one-page HTML summary (folder, bundle or summary.json)
    pytest-inference verify qualification.tar.gz                 exit 2 and one line when any file does not match
    pytest-inference compare last.tar.gz qualification.tar.gz    per claim: improved / regressed / no change / inconclusive

compare's exit status: 0 printed (nothing regressed), 1 some claim regressed, 2 bad input or refused
(different or unknown hardware without ``--allow-different-hardware``). See :mod:`.compare`.
"""

from __future__ import annotations

import argparse
import json

from ..cli import fail, verb_parser


def _bundle(args: argparse.Namespace) -> int:
    from ..report.summary import SummaryError
    from . import BundleError
    from .pack import load_run, pack

    try:
        if args.page_only:
            from ..supervise import write_text_atomic
            from .page import build_page

            run = load_run(args.path)
            out = args.output or "summary.html"
            write_text_atomic(out, build_page(run.summary, records=run.records,
                                              info=run.bundle.info if run.bundle else None), mode=0o644)
            print(f"page written to {out}")
            return 0
        packed = pack(args.path, args.output, allure_html=not args.no_allure_html)
    except (BundleError, SummaryError) as exc:
        return fail("bundle", str(exc))
    except OSError as exc:
        return fail("bundle", f"cannot write {args.output or 'the bundle'}: {exc.strerror or exc}")
    info = packed.info
    allure = info["allure_html"]
    print(f"bundle written to {packed.path} ({len(info['contents']) - 1} files and MANIFEST.sha256; hardware {info['hardware']}; "
          f"Allure HTML {'included' if allure['path'] else allure['reason']})")
    for s in info["skipped"]:
        print(f"  left out {s['path']}: {s['reason']}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from ..report.summary import SummaryError
    from . import BundleError
    from .pack import verify

    try:
        b = verify(args.bundle)
    except (BundleError, SummaryError) as exc:
        return fail("verify", str(exc))
    print(f"bundle {args.bundle}: {len(b.files) - 1} files match MANIFEST.sha256 "
          f"(target {b.info.get('target')}, hardware {b.info.get('hardware')}, created {b.info.get('created')})")
    return 0


def _compare(args: argparse.Namespace) -> int:
    from ..report.summary import SummaryError
    from . import BundleError
    from .compare import DIFFERENT_HARDWARE, REGRESSED, compare_summaries, format_rows, hardware_problem, tally
    from .pack import load_run

    try:
        old, new = load_run(args.old), load_run(args.new)
    except (BundleError, SummaryError) as exc:
        return fail("compare", str(exc))
    problem = hardware_problem(old.hardware, new.hardware)
    if problem and not args.allow_different_hardware:
        return fail("compare", f"refused: {problem}; --allow-different-hardware compares anyway")
    rows = compare_summaries(old.summary, new.summary, confidence=args.confidence,
                             note=DIFFERENT_HARDWARE if problem else None)
    if args.json:
        print(json.dumps({"old": {"source": old.label, "kind": old.kind, "hardware": old.hardware},
                          "new": {"source": new.label, "kind": new.kind, "hardware": new.hardware},
                          "confidence": args.confidence, "hardware_note": problem,
                          "rows": [r.to_dict() for r in rows]}, indent=2))
    else:
        print(f"old: {old.label} ({old.kind}, hardware {old.hardware})")
        print(f"new: {new.label} ({new.kind}, hardware {new.hardware})")
        if problem:
            print(f"{problem}: compared anyway (--allow-different-hardware)")
        for line in format_rows(rows):
            print(line)
        print(tally(rows))
    return 1 if any(r.verdict == REGRESSED for r in rows) else 0


def _confidence(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--confidence {text!r} is not a number like 0.95") from None
    if not 0.5 <= value <= 0.999:
        raise argparse.ArgumentTypeError(f"--confidence {text} must lie in 0.5 .. 0.999")
    return value


def register(sub) -> None:
    p = verb_parser(sub, "bundle", help="pack a report folder into one verifiable .tar.gz (vendor bundle)",
                    description="Pack summary.json, records, Allure results and HTML, the environment fingerprint, "
                    "a one-page summary.html and a SHA-256 manifest into one .tar.gz.")
    p.add_argument("path", metavar="REPORT_DIR", help="the report folder (with summary.json); with --page-only also "
                   "a bundle or a summary.json")
    p.add_argument("-o", "--output", metavar="FILE", help="the bundle to write (default "
                   "pytest-inference-<target>-<UTC time>.tar.gz here); with --page-only the page (default summary.html)")
    p.add_argument("--no-allure-html", action="store_true", help="do not render the Allure HTML into the bundle")
    p.add_argument("--page-only", action="store_true", help="write only the one-page HTML summary")
    p.set_defaults(func=_bundle)

    p = verb_parser(sub, "verify", help="check every file of a bundle against its SHA-256 manifest",
                    description="Exit 0 when every file matches MANIFEST.sha256; else one line naming the file "
                    "that changed, is missing or was added, and exit status 2.")
    p.add_argument("bundle", metavar="BUNDLE")
    p.set_defaults(func=_verify)

    p = verb_parser(sub, "compare", help="compare two runs claim by claim with a two-sample test on the samples",
                    description="Per claim (test + metric): old vs new and improved / regressed / no change / "
                    "inconclusive from a seeded bootstrap interval (quantiles, mean) or permutation test (min, max, "
                    "spread) of the claim's own statistic. Exit 1 when a claim regressed.")
    p.add_argument("old", metavar="OLD", help="a bundle, a report folder or a summary.json")
    p.add_argument("new", metavar="NEW", help="the same for the new run")
    p.add_argument("--allow-different-hardware", action="store_true",
                   help="compare runs whose environment hardware differs or is unknown (each row says so)")
    p.add_argument("--confidence", type=_confidence, default=0.95, help="per-claim confidence (default %(default)s)")
    p.add_argument("--json", action="store_true", help="print the rows as JSON")
    p.set_defaults(func=_compare)
