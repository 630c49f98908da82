"""Pure parsers of the accelerator tools' outputs (recorded samples: tests/fingerprint/data/).

Each parser takes the text a tool printed and returns plain data, or raises :class:`ParseError`
with one line saying what did not parse. Nothing here runs a tool (that is :mod:`.gather`), and
nothing guesses: a name that is only a PCI device id, a line with too few fields, JSON cut short
are errors, so the fingerprint says "unknown" with the reason instead of a wrong accelerator.

- ``nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader``:
  ``NVIDIA H100 80GB HBM3, 535.129.03, 81559 MiB`` per GPU -> :func:`nvidia_query`
- ``nvidia-smi`` (its header), ``nvidia-smi -q`` or ``nvidia-smi --version``: ``CUDA Version: 12.4``
  -> :func:`cuda_version`
- ``amd-smi static --json``: a list of GPUs (ROCm 6.0-6.3) or ``{"gpu_data": [...]}`` (later), each
  with ``asic.market_name``, ``board.product_name``, ``driver.version`` -> :func:`amd_smi_static`
- ``amd-smi version``: ``AMDSMI Tool: 24.6.2+2b02a07 | AMDSMI Library version: 24.6.2.0 | ROCm
  version: 6.2.0`` (or its ``--json``) -> :func:`amd_smi_version`
- ``rocm-smi --showproductname --showdriverversion --json``: ``{"card0": {"Card Series": ...},
  "system": {"Driver version": ...}}`` -> :func:`rocm_smi`
"""

from __future__ import annotations

import json
import re
from typing import Any

#: what nvidia-smi prints instead of a table when it cannot work (driver gone, no device, …)
_NVIDIA_FAILURES = ("NVIDIA-SMI has failed", "No devices were found", "Failed to initialize NVML",
                    "couldn't communicate with the NVIDIA driver", "Unable to determine the device handle")
_HEX_ONLY = re.compile(r"^(0x)?[0-9a-fA-F]{3,8}$")
_CUDA = re.compile(r"CUDA Version\s*:?\s*([0-9]+(?:\.[0-9]+)+)")
_ROCM = re.compile(r"ROCm version\s*:\s*([0-9][0-9A-Za-z.\-+]*)", re.IGNORECASE)


class ParseError(ValueError):
    """A tool's output did not parse; the message is one line."""


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()[:160]
    return "(empty output)"


def nvidia_query(text: str) -> list[dict[str, Any]]:
    """The GPUs of ``nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader``:
    ``[{"name", "driver", "memory_mib"}]`` in nvidia-smi's order (``memory_mib`` None when not a
    number: ``[N/A]``)."""
    for failure in _NVIDIA_FAILURES:
        if failure.lower() in text.lower():
            raise ParseError(f"nvidia-smi says: {_first_line(text)}")
    gpus = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split(",")]
        if len(fields) != 3:
            raise ParseError(f"nvidia-smi line {n} has {len(fields)} field(s), not 3 (name, driver, memory): "
                             f"{line.strip()[:120]!r}")
        name, driver, memory = fields
        if not name or name.startswith("[") or _HEX_ONLY.match(name):
            raise ParseError(f"nvidia-smi line {n}: no GPU name ({name!r})")
        if not re.fullmatch(r"[0-9]+(\.[0-9]+)+", driver):
            raise ParseError(f"nvidia-smi line {n}: driver version {driver!r} is not a version")
        m = re.fullmatch(r"([0-9]+)\s*MiB", memory)
        if memory and not m and not memory.startswith("["):
            raise ParseError(f"nvidia-smi line {n}: memory {memory!r} is not 'N MiB' (the output is cut short?)")
        gpus.append({"name": name, "driver": driver, "memory_mib": int(m.group(1)) if m else None})
    if not gpus:
        raise ParseError("nvidia-smi printed no GPU line")
    return gpus


def cuda_version(text: str) -> str | None:
    """The CUDA version the driver supports, from nvidia-smi's header (``CUDA Version: 12.4``),
    ``-q`` (``CUDA Version : 12.4``) or ``--version``; None when it is not there (``Not Found``)."""
    m = _CUDA.search(text)
    return m.group(1) if m else None


def _loads(text: str, tool: str) -> Any:
    # amd-smi may print Python warnings before its JSON (seen: SyntaxWarning lines on Python 3.14):
    # the JSON starts at the first line that starts with { or [
    m = re.search(r"^[ \t]*[\[{]", text, re.M)
    start = m.start() if m else -1
    if start < 0:
        raise ParseError(f"{tool} printed no JSON: {_first_line(text)}")
    try:
        return json.loads(text[start:])
    except ValueError as exc:
        raise ParseError(f"{tool} printed JSON that does not parse ({exc.msg} at character {exc.pos + start}; "
                         "cut short?)") from None


def _name(*candidates: Any) -> str | None:
    """The first candidate that is a product name: not empty, not N/A, not a bare PCI id."""
    for c in candidates:
        if isinstance(c, str):
            c = c.strip()
            if c and c.upper() not in ("N/A", "NA", "UNKNOWN") and not _HEX_ONLY.match(c):
                return c
    return None


def _amd_name(market: Any, product: Any) -> str | None:
    """amd-smi's ``market_name`` is the product on most versions, a generic string on some
    (``AMD Radeon Graphics``, a code name): the board's ``product_name`` wins when it names an
    Instinct part and the market name does not."""
    m, p = _name(market), _name(product)
    if m and p and not re.search(r"\bMI\d", m, re.I) and re.search(r"\bMI\d", p, re.I):
        return p
    return m or p


def amd_smi_static(text: str) -> list[dict[str, Any]]:
    """The GPUs of ``amd-smi static --json``: ``[{"name", "driver"}]``."""
    data = _loads(text, "amd-smi")
    if isinstance(data, dict) and isinstance(data.get("gpu_data"), list):
        data = data["gpu_data"]
    if not isinstance(data, list):
        raise ParseError("amd-smi static --json is neither a list of GPUs nor {\"gpu_data\": [...]}")
    gpus = []
    for i, gpu in enumerate(data):
        if not isinstance(gpu, dict):
            raise ParseError(f"amd-smi GPU entry {i} is not an object")
        asic = gpu.get("asic") if isinstance(gpu.get("asic"), dict) else {}
        board = gpu.get("board") if isinstance(gpu.get("board"), dict) else {}
        driver = gpu.get("driver") if isinstance(gpu.get("driver"), dict) else {}
        name = _amd_name(asic.get("market_name"), board.get("product_name"))
        if name is None:
            raise ParseError(f"amd-smi GPU {gpu.get('gpu', i)}: no product name (asic.market_name "
                             f"{asic.get('market_name')!r}, board.product_name {board.get('product_name')!r})")
        version = driver.get("version") if isinstance(driver.get("version"), str) else None
        gpus.append({"name": name, "driver": _name(version)})
    if not gpus:
        raise ParseError("amd-smi listed no GPU")
    return gpus


def amd_smi_version(text: str) -> str | None:
    """The ROCm version from ``amd-smi version`` (text or ``--json``), or None."""
    m = _ROCM.search(text)
    if m:
        return m.group(1)
    try:
        data = json.loads(text)
    except ValueError:
        return None
    for entry in data if isinstance(data, list) else [data]:
        if isinstance(entry, dict):
            for key, value in entry.items():
                if "rocm" in key.lower() and isinstance(value, str) and _name(value):
                    return value
    return None


def rocm_smi(text: str) -> tuple[list[dict[str, Any]], str | None]:
    """The GPUs (``[{"name"}]``, card order) and the driver version of
    ``rocm-smi --showproductname --showdriverversion --json``."""
    data = _loads(text, "rocm-smi")
    if not isinstance(data, dict):
        raise ParseError("rocm-smi --json is not an object of cards")
    cards = sorted((k for k in data if re.fullmatch(r"card\d+", k)), key=lambda k: int(k[4:]))
    if not cards:
        raise ParseError("rocm-smi --json lists no card (no key card0, card1, …)")
    gpus = []
    for card in cards:
        fields = {k.lower(): v for k, v in data[card].items()} if isinstance(data[card], dict) else {}
        name = _name(fields.get("card series"), fields.get("card model"), fields.get("device name"))
        if name is None:
            shown = fields.get("card series") or fields.get("card model")
            raise ParseError(f"rocm-smi {card}: no product name, only {shown!r} (a PCI device id)")
        gpus.append({"name": name})
    system = data.get("system") if isinstance(data.get("system"), dict) else {}
    driver = next((v for k, v in system.items() if k.lower() == "driver version"), None)
    return gpus, _name(driver)
