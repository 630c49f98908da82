"""Fake accelerator tools: scripts on a PATH of their own that print recorded outputs (data/); the
keys contract C1 promises."""

from __future__ import annotations

import shlex
from pathlib import Path

DATA = Path(__file__).parent / "data"

#: what the contract (C1) promises in summary.json's "environment"
C1_KEYS = {"schema", "accelerator", "cpu", "kernel", "os", "vllm", "model", "plugin_version", "target", "hardware"}
C1_ACCELERATOR = {"vendor", "model", "count", "driver", "runtime", "tool", "unknown"}

NVIDIA_8XH100 = {"nvidia-smi": [("--query-gpu", "nvidia-smi-query-8xh100.csv", 0), ("", "nvidia-smi-8xh100.txt", 0)]}
AMD_8XMI300X = {"amd-smi": [("static", "amd-smi-static-8xmi300x.json", 0), ("version", "amd-smi-version.txt", 0)]}
AMD_1XMI300X_TEXT = ('{"gpu_data": [{"gpu": 0, "asic": {"market_name": "AMD Instinct MI300X"}, '
                     '"driver": {"version": "6.7.0"}}]}')


def write_tools(folder: Path, tools: dict) -> Path:
    """``tools``: name -> [(argument pattern, recorded file name | text | None, exit status[, sleep s])],
    the first pattern found in the arguments wins ('' matches all). Each call is logged to
    ``folder/calls``."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, cases in tools.items():
        lines = ["#!/bin/sh", f'echo "{name} $*" >> {shlex.quote(str(folder / "calls"))}', 'case "$*" in']
        for pattern, output, status, *sleep in cases:
            body = []
            if sleep:
                body.append(f"sleep {sleep[0]}")
            if output is not None:
                path = DATA / output
                if path.is_file():
                    body.append(f"cat {shlex.quote(str(path))}")
                else:
                    body.append(f"printf '%s\\n' {shlex.quote(output)}")
            body.append(f"exit {status}")
            lines.append(f"  *{pattern}*) {'; '.join(body)};;")
        lines.append("esac")
        script = folder / name
        script.write_text("\n".join(lines) + "\n")
        script.chmod(0o755)
    return folder
