"""Child processes this package (and its tests) start: stop one for good without hanging.

The supervisor proper (``/proc``, signalling process groups, the guardian) is :mod:`.supervise`;
this is the plain end of a ``subprocess.Popen`` child the caller owns: the open-loop workers
(:mod:`.engine.workers`) and the test fixtures that start helpers.
"""

from __future__ import annotations

import subprocess

__all__ = ["kill_and_reap"]


def kill_and_reap(p: subprocess.Popen, timeout_s: float = 5.0) -> None:
    """SIGKILL ``p`` if it still runs, reap it (waiting at most ``timeout_s``: a child stuck in the
    kernel is left behind rather than hang the caller) and close the pipes it was given."""
    if p.poll() is None:
        p.kill()
    try:
        p.wait(timeout_s)
    except subprocess.TimeoutExpired:
        pass
    for f in (p.stdin, p.stdout, p.stderr):
        if f is not None:
            try:
                f.close()
            except OSError:
                pass
