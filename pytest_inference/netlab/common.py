"""What every part of the lab shares: its constants, its two errors, the lock folder and how it runs
a short system command."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

MiB = 1024 * 1024
TUNED_TCP_RMEM = "4096 87380 16777216"
TUNED_TCP_WMEM = "4096 65536 16777216"
DEFAULT_TCP_RMEM = "4096 131072 6291456"   # the kernel's classic defaults (before memory scaling)
DEFAULT_TCP_WMEM = "4096 16384 4194304"
TUNED_CORE_MAX = 16 * MiB                   # net.core.rmem_max / wmem_max, tuned
UNTUNED_CORE_MAX = 212992                   # the kernel default of net.core.rmem_max / wmem_max
HOST_KEYS = ("net.core.rmem_max", "net.core.wmem_max")
TUNED_MTU, UNTUNED_MTU = 9000, 1500
NFS_PORT = 2049


class LabUnavailable(Exception):
    """The lab cannot run on this machine; ``str(exc)`` is a one-line reason (for ``pytest.skip``)."""


class LabError(RuntimeError):
    """The lab could run here but something went wrong (start failed, lock timeout, misuse)."""



def lock_dir() -> Path:
    env = os.environ.get("PYTEST_INFERENCE_LOCK_DIR")
    return Path(env) if env else Path("/tmp/pytest-inference-locks")



def run(argv: list[str], *, check: bool = True, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """Run a short system command; with ``check`` a failure raises LabError with its stderr."""
    try:
        cp = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise LabError(f"{argv[0]!r} not found") from None
    except subprocess.TimeoutExpired:
        raise LabError(f"{' '.join(argv)} did not finish within {timeout:g} s") from None
    if check and cp.returncode != 0:
        raise LabError(f"`{' '.join(argv)}` failed (exit {cp.returncode}): "
                       f"{(cp.stderr or cp.stdout).strip()[-500:]}")
    return cp

