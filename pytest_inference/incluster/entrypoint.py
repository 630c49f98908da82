"""``pytest-inference in-pod [--results-dir DIR] [--print-results] [--then-wait] -- PYTEST_ARGS...``

The container's entrypoint (the Dockerfile's ``ENTRYPOINT ["pytest-inference", "in-pod"]``): it runs
``python -m pytest PYTEST_ARGS --junitxml DIR/junit.xml --inference-report DIR`` in a child process
(output streamed as it comes), then leaves the results the way Sonobuoy's worker expects them:

- ``DIR`` is ``--results-dir``, else ``$SONOBUOY_RESULTS_DIR``, else ``/tmp/sonobuoy/results``;
- everything the run wrote there (``junit.xml``, ``summary.json``, ``allure-results/``, ...) plus
  ``in-pod.json`` (pytest's exit status, the arguments, start and end times) is packed into
  ``DIR/results.tar.gz``; then ``DIR/done`` names that file — Sonobuoy's completion signal;
- ``--print-results`` also prints the tarball to stdout, base64 in 76-character lines, between
  :data:`BEGIN` and :data:`END` (how ``pytest-inference k8s collect`` reads a plain Job's results from
  the pod log: read-only, no API write rights);
- ``--then-wait`` then sleeps until the pod is stopped (SIGTERM): a DaemonSet restarts a container
  that exits, so its pods must stay up after their results (Sonobuoy's own DaemonSet plugins sleep too);
- SIGTERM during the run (the pod is stopped) reaches pytest as SIGINT: it stops as on Ctrl-C, still
  writes its reports for what ran, and those are packed and signalled as usual.

Exit status: 0 when results were written (tests ran; failed tests are results, not a pod failure);
2 for bad input (no ``--``, an option pytest-inference sets itself, a results folder that cannot be
written); 3 when the run left no test results (pytest could not run its tests: usage error, nothing
collected, interrupted, crashed) — the tarball and ``done`` are still written then, so Sonobuoy
reports at once instead of waiting out its timeout. No ``|| true`` anywhere.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

BEGIN = "----- pytest-inference results begin (base64 tar.gz) -----"
END = "----- pytest-inference results end -----"
DEFAULT_DIR = "/tmp/sonobuoy/results"
TARBALL = "results.tar.gz"
DONE = "done"
RECORD = "in-pod.json"
#: options the entrypoint sets on the child pytest itself
OWN_OPTIONS = ("--junitxml", "--junit-xml", "--inference-report")
#: pytest exit statuses that mean the tests ran (0 all passed, 1 some failed)
RAN = (0, 1)
VERB = "in-pod"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The verb's options (shared by ``pytest-inference in-pod`` and :func:`main`)."""
    p.add_argument("--results-dir", metavar="DIR", default=None,
                   help=f"where the results go (default: $SONOBUOY_RESULTS_DIR, else {DEFAULT_DIR})")
    p.add_argument("--print-results", action="store_true",
                   help="also print the results tarball to stdout, base64 between two marker lines "
                   "(what `pytest-inference k8s collect` reads from a plain Job's pod log)")
    p.add_argument("--then-wait", action="store_true",
                   help="after the results, sleep until SIGTERM (DaemonSet pods: an exited container is restarted)")
    p.add_argument("pytest_args", nargs=argparse.REMAINDER, metavar="-- PYTEST_ARGS",
                   help="pytest's arguments, after --")


def split_pytest_args(rest: list[str]) -> list[str]:
    """``rest`` as argparse leaves it (starting with ``--``) -> pytest's arguments; ValueError with
    the one-line reason for bad input."""
    if not rest or rest[0] != "--":
        raise ValueError("pytest's arguments go after --: pytest-inference in-pod [options] -- PYTEST_ARGS...")
    args = rest[1:]
    if not args:
        raise ValueError("no pytest arguments after -- (name the tests to run, e.g. -- --pyargs pytest_inference.suites.warm)")
    for a in args:
        if a == "--":
            break  # pytest's own positional separator: what follows is not an option
        for own in OWN_OPTIONS:
            if a == own or a.startswith(own + "="):
                raise ValueError(f"{own} is set by in-pod itself (to the results folder); leave it out")
    return args


def results_dir(given: str | None) -> Path:
    return Path(given or os.environ.get("SONOBUOY_RESULTS_DIR") or DEFAULT_DIR).absolute()


def prepare_dir(d: Path) -> None:
    """Create ``d`` and prove it writable (ValueError with the reason), before pytest runs for minutes."""
    try:
        d.mkdir(parents=True, exist_ok=True)
        probe = d / f".in-pod-probe.{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ValueError(f"results folder {d} cannot be written ({exc.strerror or exc})") from None
    for stale in (DONE, TARBALL):  # a previous run's signal must not announce this run's results early
        try:
            (d / stale).unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise ValueError(f"cannot remove the previous {d / stale} ({exc.strerror})") from None


def run_pytest(d: Path, pytest_args: list[str]) -> tuple[int, bool]:
    """The child pytest, its output on ours -> (its exit status, whether we were asked to stop).

    The child has its own process group, and a SIGTERM or SIGINT to us (the kubelet stops the pod:
    SIGTERM to PID 1 only) reaches it as one SIGINT: pytest then stops as on Ctrl-C and still
    writes junit.xml and summary.json for what ran, which are packed as usual."""
    cmd = [sys.executable, "-m", "pytest", *pytest_args, "--junitxml", str(d / "junit.xml"),
           "--inference-report", str(d)]
    sys.stdout.flush()
    child = subprocess.Popen(cmd, process_group=0)
    stopped: list[int] = []

    def forward(signum, _frame):
        stopped.append(signum)
        if len(stopped) == 1:  # once: a second SIGINT would cut pytest's report writing short
            try:
                child.send_signal(signal.SIGINT)
            except ProcessLookupError:
                pass

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        return child.wait(), bool(stopped)
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def pack(d: Path) -> Path:
    """Everything in ``d`` except the tarball, ``done`` and temporary files -> ``d/results.tar.gz``
    (names relative to ``d``; symlinks stored as links, never followed), written atomically, mode 0644
    (Sonobuoy's worker may run as another user)."""
    out = d / TARBALL
    tmp = d / f".{TARBALL}.{os.getpid()}.tmp"
    try:
        with open(tmp, "wb") as raw, gzip.GzipFile(TARBALL, "wb", fileobj=raw) as gz, \
                tarfile.open(fileobj=gz, mode="w") as tar:
            for entry in sorted(d.iterdir()):
                if entry.name in (TARBALL, DONE) or entry.name.startswith("."):
                    continue
                tar.add(entry, arcname=entry.name)
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return out


def print_results(tarball: Path, stream=None) -> None:
    stream = stream or sys.stdout
    data = base64.encodebytes(tarball.read_bytes()).decode("ascii")
    stream.write(f"{BEGIN}\n{data}{END}\n")
    stream.flush()


def wait_forever() -> int:
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    print("pytest-inference in-pod: results written; waiting until the pod is stopped (--then-wait)", flush=True)
    try:
        while not stop:
            signal.pause() if hasattr(signal, "pause") else time.sleep(3600)
    except KeyboardInterrupt:
        pass
    return 0


def run(d: Path, pytest_args: list[str], *, print_block: bool = False, then_wait: bool = False) -> int:
    """Run, pack, signal; the exit status of the module docstring. ``d`` was prepared by :func:`prepare_dir`."""
    from ..supervise import write_text_atomic

    started = time.time()
    status, stopped = run_pytest(d, pytest_args)
    ran = status in RAN and (d / "junit.xml").is_file()
    record = {"pytest_exit_status": status, "tests_ran": ran, "stopped_by_signal": stopped, "pytest_args": pytest_args,
              "started": started, "ended": time.time(), "results_dir": str(d)}
    try:
        write_text_atomic(d / RECORD, json.dumps(record, indent=2) + "\n", mode=0o644)
        tarball = pack(d)
        write_text_atomic(d / DONE, str(tarball), mode=0o644)
    except OSError as exc:
        print(f"pytest-inference {VERB}: results could not be written to {d} ({exc.strerror or exc})", file=sys.stderr)
        return 3
    if print_block:
        print_results(tarball)
    if not ran:
        why = "no junit.xml" if status in RAN else f"pytest exit status {status}"
        print(f"pytest-inference {VERB}: the run left no test results ({why}); {tarball} holds what there is",
              file=sys.stderr, flush=True)
    code = 0 if ran else 3
    if then_wait and not stopped:  # asked to stop during the run: the pod is going away, do not wait
        wait_forever()
    return code


def handle(args: argparse.Namespace) -> int:
    """The verb's handler (argparse already split the options from ``-- PYTEST_ARGS``)."""
    try:
        pytest_args = split_pytest_args(args.pytest_args)
        d = results_dir(args.results_dir)
        prepare_dir(d)
    except ValueError as exc:
        print(f"pytest-inference {VERB}: {exc}", file=sys.stderr)
        return 2
    return run(d, pytest_args, print_block=args.print_results, then_wait=args.then_wait)


def main(argv: list[str] | None = None) -> int:
    """``in-pod`` on its own (``python -m pytest_inference.incluster.entrypoint [options] -- PYTEST_ARGS``)."""
    from ..cli import main as cli_main

    return cli_main([VERB, *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
