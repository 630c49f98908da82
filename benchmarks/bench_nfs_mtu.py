"""NFS weight-read throughput at MTU 1500 vs 9000 on the local lab, side by side, in one run.

    python3 benchmarks/bench_nfs_mtu.py [--rounds 5] [--readers 4] [--weights-mib 256] [--offloads]

The lab (pytest_inference.netlab): nfs-ganesha in one network namespace, the node in
another, a veth pair between them; the userspace reader (one TCP connection per reader) reads
every weight file, the server's page cache dropped before each round. Rounds alternate the MTU
(both veth ends) so the machine's noise hits both alike. veth offloads are off unless --offloads
(with TSO/GRO on, the MTU hardly matters on a veth: segments are coalesced anyway).
Needs root, network namespaces, nfs-ganesha and libnfs (scripts/install-nfs-lab.sh).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pytest_inference.storage.probe import drop_file_cache, read_url  # noqa: E402
from pytest_inference.netlab import LabUnavailable, NetLab  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--readers", type=int, default=4)
    ap.add_argument("--weights-mib", type=int, default=256)
    ap.add_argument("--offloads", action="store_true", help="leave veth offloads on")
    args = ap.parse_args()
    try:
        NetLab.check_available()
    except LabUnavailable as exc:
        print(f"the local NFS lab cannot run here: {exc}", file=sys.stderr)
        return 2
    figures: dict[int, list[float]] = {1500: [], 9000: []}
    with NetLab(tuned=True, weights_mib=args.weights_mib, shards=4, offloads=args.offloads) as lab:
        url = lab.nfs_url(lab.model_dir)
        for i in range(args.rounds):
            for mtu in ((1500, 9000) if i % 2 == 0 else (9000, 1500)):
                lab.set_mtu(mtu)
                drop_file_cache(lab.export_dir)
                figures[mtu].append(read_url(url, readers=args.readers, prefix=lab.node_prefix()).MBps)
            print(f"round {i + 1}: MTU 1500 {figures[1500][-1]:7.1f} MB/s   MTU 9000 {figures[9000][-1]:7.1f} MB/s",
                  flush=True)
    a, b = statistics.median(figures[1500]), statistics.median(figures[9000])
    print(f"{args.weights_mib} MiB of weights, {args.readers} readers, offloads {'on' if args.offloads else 'off'}")
    print(f"median MTU 1500 {a:.0f} MB/s, MTU 9000 {b:.0f} MB/s: x{b / a:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
