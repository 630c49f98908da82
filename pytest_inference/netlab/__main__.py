"""``python -m pytest_inference.netlab up|down``: start a lab and run it until Ctrl-C/SIGTERM, or tear
down labs whose owner and guardian are both gone. (``_teardown STATE`` is the guardian's command.)"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading

from .common import LabError, LabUnavailable, lock_dir
from .lab import NetLab
from .registry import reap_orphans, records


def _cli_down() -> int:
    """Tear down orphaned labs (owner and guardian both gone), under the host lock."""
    from ..server.lock import DeviceLock, DeviceLockError

    lk = DeviceLock("host-net-sysctl", lock_dir())
    try:
        lk.acquire(timeout_s=120, progress=lambda text, waited: print(f"{text} ({waited:.0f} s)", file=sys.stderr))
    except DeviceLockError as e:
        print(f"netlab down: {e}", file=sys.stderr)
        return 1
    try:
        reaped = reap_orphans()
        for line in reaped:
            print(line)
        for _, state in records():
            print(f"lab {state.get('token')}: owner {state.get('owner_pid')} alive, left alone")
        print(f"{len(reaped)} lab(s) torn down")
    finally:
        lk.release()
    return 0


def _cli(argv: list[str]) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m pytest_inference.netlab",
                                description="Start (up) or clean up (down) a pytest-inference network lab.")
    sub = p.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="start a lab, print its details as JSON, run until Ctrl-C/SIGTERM")
    g = up.add_mutually_exclusive_group()
    g.add_argument("--tuned", dest="tuned", action="store_true", default=True)
    g.add_argument("--untuned", dest="tuned", action="store_false")
    up.add_argument("--weights-mib", type=float, default=256)
    up.add_argument("--shards", type=int, default=4)
    up.add_argument("--offloads", action="store_true", help="leave veth offloads on")
    sub.add_parser("down", help="tear down labs whose owner and guardian processes are both gone")
    td = sub.add_parser("_teardown")  # the guardian's command: tear down one state file (its owner is gone)
    td.add_argument("state")
    args = p.parse_args(argv)
    if args.cmd == "down":
        return _cli_down()
    if args.cmd == "_teardown":
        from .teardown import main as teardown_main

        return teardown_main(args.state)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        lab = NetLab(tuned=args.tuned, weights_mib=args.weights_mib, shards=args.shards,
                     offloads=args.offloads).start()
    except LabUnavailable as e:
        print(f"netlab unavailable: {e}", file=sys.stderr)
        return 2
    except LabError as e:
        print(f"netlab failed: {e}", file=sys.stderr)
        return 1
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    print(json.dumps(lab.info()), flush=True)  # one line: easy to read from a script
    print(f"client: {' '.join(lab.node_prefix())} nfs-ls '{lab.nfs_url(lab.model_dir)}'   (Ctrl-C stops the lab)",
          file=sys.stderr, flush=True)
    while not stop.wait(1.0):
        pass
    lab.stop()
    return 0


if __name__ == "__main__":
    sys.exit(_cli(sys.argv[1:]))
