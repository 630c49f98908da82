"""The environment fingerprint of a run: what it ran on (summary.json's ``environment``).

:func:`collect` gathers it (accelerator model, count, driver and runtime from ``nvidia-smi`` /
``amd-smi`` / ``rocm-smi``; CPU, kernel, OS; the vLLM version from the server's ``/version``; the
model and its revision; the plugin version; the target profile's SHA-256), :func:`hardware_key`
says what ``compare`` compares, :func:`same_accelerator` is the loose name match the
hardware-mismatch rule (``session.server_mismatch``) uses. Parsers: :mod:`.parse` (pure, tested on
recorded outputs); the tools are run by :mod:`.gather`.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from .gather import accelerator, collect, hardware_key, is_loopback, vllm_version

__all__ = ["accelerator", "collect", "hardware_key", "is_loopback", "vllm_version", "same_accelerator",
           "describe_accelerator"]

#: words that name the maker or the product line, not the part: "AMD Instinct MI300X" is "MI300X"
_NOISE = {"nvidia", "amd", "instinct", "tesla", "ati", "advanced", "micro", "devices", "inc", "corporation"}


def _tokens(name: str) -> set[str]:
    return {t for t in re.split(r"[^0-9a-z]+", name.lower()) if t and t not in _NOISE}


def same_accelerator(want: str, got: str) -> bool:
    """True when the part a target names (``MI300X``, ``H100``, ``H100 80GB``) is the part a tool
    reported (``AMD Instinct MI300X``, ``NVIDIA H100 80GB HBM3``): every word of ``want`` (maker and
    product-line words aside) is a word of ``got``, case-insensitive. ``H100`` is not ``H200``,
    ``MI300X`` is not ``MI300A``."""
    w, g = _tokens(want), _tokens(got)
    return bool(w) and w <= g


def describe_accelerator(acc: Mapping[str, Any]) -> str:
    """``8 x NVIDIA H100 80GB HBM3`` (the count when known)."""
    count = acc.get("count")
    return f"{count} x {acc.get('model')}" if isinstance(count, int) else str(acc.get("model"))
