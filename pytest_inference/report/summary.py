"""``summary.json``, schema version 1: the machine-readable record of a run's claims."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def write_summary_json(path: Path, summary: dict[str, Any]) -> Path:
    """Write atomically (temp file + rename), so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".summary-", suffix=".json")
    with os.fdopen(fd, "w") as fh:
        json.dump(summary, fh, indent=2, default=str)
        fh.write("\n")
    os.replace(tmp, path)
    return path
