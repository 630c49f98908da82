"""A foreign CPU load for the harness's own tests: busy loops on every CPU that are *not* descendants
of the process that starts them (a shell starts each and exits, so it is reparented), as another
program on the machine would be. Each loop ends by itself after ``seconds`` and is killed on exit.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def busy_loops(per_cpu: int = 2, seconds: float = 60.0) -> Iterator[list[int]]:
    """Run ``per_cpu`` busy loops pinned to each CPU this process may use; yield their pids."""
    loop = f"import time\nend = time.monotonic() + {seconds:g}\nwhile time.monotonic() < end: pass"
    pids: list[int] = []
    try:
        for cpu in sorted(os.sched_getaffinity(0)):
            for _ in range(per_cpu):
                out = subprocess.run(["sh", "-c", f"taskset -c {cpu} {sys.executable} -c '{loop}' "
                                      ">/dev/null 2>&1 & echo $!"], capture_output=True, text=True, check=True)
                pids.append(int(out.stdout))
        yield pids
    finally:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
