"""Defence in depth for secrets: no report file may contain the API key, whatever wrote it.

The key is never handed to a sink on purpose; this pass catches what a server echoed back,
captured logs, or a user's own test printed, before the report leaves the machine.
"""

from __future__ import annotations

from pathlib import Path


def redact_tree(root: Path, secret: str, replacement: str = "***") -> list[Path]:
    """Replace ``secret`` in every file under ``root``; return the files changed."""
    if not secret or not root.exists():
        return []
    needle = secret.encode()
    changed = []
    for path in ([root] if root.is_file() else root.rglob("*")):
        if not path.is_file():
            continue
        try:
            data = path.read_bytes()
        except OSError:
            continue
        if needle in data:
            path.write_bytes(data.replace(needle, replacement.encode()))
            changed.append(path)
    return changed
