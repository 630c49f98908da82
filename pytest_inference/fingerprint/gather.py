"""Collect the environment fingerprint: run the accelerator tools, read the host, ask the server.

:func:`accelerator` runs the first accelerator tool that works (``nvidia-smi``, ``amd-smi``,
``rocm-smi``; each with a short timeout) and parses its output with :mod:`.parse`. A tool that is
missing, fails, hangs or prints something that does not parse makes the accelerator *unknown* with
the reason — never a crash, never a guess. With no tool and no GPU device node (``/dev/nvidia*``,
``/dev/kfd``) the host has no accelerator this process can use: vendor ``cpu``.

The count is what the server may use: ``CUDA_VISIBLE_DEVICES`` (and for AMD ``ROCR_VISIBLE_DEVICES``
/ ``HIP_VISIBLE_DEVICES``) narrow the installed GPUs, and the fingerprint says so (``installed``,
``note``).

Test seam: ``env`` (its ``PATH`` finds the tools: a folder of scripts printing recorded outputs
stands in for them) and ``dev`` (the device-node folder) of :func:`accelerator` / :func:`collect`.
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any, Mapping, Sequence

from . import parse

SCHEMA = 1
TIMEOUT_S = 10.0
NVIDIA_QUERY = ("nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader")
NVIDIA_HEADER = ("nvidia-smi",)
AMD_STATIC = ("amd-smi", "static", "--json")
AMD_VERSION = ("amd-smi", "version")
ROCM_SMI = ("rocm-smi", "--showproductname", "--showdriverversion", "--json")
_VENDOR_WORDS = {"nvidia": "NVIDIA", "amd": "AMD"}

_cache: dict[tuple, dict[str, Any]] = {}


class ToolError(Exception):
    """A tool could not be run or failed; one line."""


def run_tool(argv: tuple[str, ...], env: Mapping[str, str], timeout_s: float) -> str:
    """The stdout of ``argv`` (its program looked up on ``env``'s PATH); :class:`ToolError` when it
    is missing, exits non-zero or does not finish within ``timeout_s``."""
    exe = shutil.which(argv[0], path=env.get("PATH", ""))
    if exe is None:
        raise ToolError(f"{argv[0]} not found on PATH")
    try:  # its own process group: a tool that hangs goes with whatever it started
        proc = subprocess.Popen([exe, *argv[1:]], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, text=True, errors="replace", env=dict(env),
                                start_new_session=True)
    except OSError as exc:
        raise ToolError(f"{argv[0]} could not run ({exc.strerror or exc})") from None
    try:
        stdout, stderr = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        from ..supervise import kill_and_reap, kill_group

        kill_group(proc.pid, signal.SIGKILL)
        kill_and_reap(proc, 2.0)
        raise ToolError(f"{' '.join(argv)} did not finish within {timeout_s:g} s") from None
    if proc.returncode != 0:
        said = parse._first_line(stdout + "\n" + stderr)
        raise ToolError(f"{' '.join(argv)} exited {proc.returncode}: {said}")
    return stdout


def _visible(value: str | None, installed: int) -> int | None:
    """How many of ``installed`` devices a ``*_VISIBLE_DEVICES`` value leaves, or None when unset.
    As CUDA/ROCm do, the list ends at the first entry that is not a device (``-1``, an index out of
    range): ``""`` and ``-1`` leave none."""
    if value is None:
        return None
    n = 0
    for entry in value.split(","):
        entry = entry.strip()
        if re.fullmatch(r"\d+", entry):
            if int(entry) >= installed:
                break
        elif not re.fullmatch(r"(GPU|MIG)-[0-9A-Za-z\-/]+|[0-9a-fA-F]{8}-[0-9a-fA-F\-]+", entry):
            break
        n += 1
    return min(n, installed)


def _narrow(vendor: str, installed: int, env: Mapping[str, str]) -> tuple[int, str | None]:
    names = ("CUDA_VISIBLE_DEVICES",) if vendor == "nvidia" else (
        "ROCR_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES")
    count, said = installed, []
    for name in names:
        n = _visible(env.get(name), count)
        if n is not None:
            count = n
            said.append(f"{name}={env[name]}")
    if not said:
        return installed, None
    return count, f"{', '.join(said)}: {count} of {installed} installed visible to the server"


def _build(vendor: str, tool: str, gpus: list[dict[str, Any]], driver: str | None, runtime: str | None,
           env: Mapping[str, str]) -> dict[str, Any]:
    names = sorted({g["name"] for g in gpus})
    count, note = _narrow(vendor, len(gpus), env)
    if len(names) == 1:
        model, unknown = names[0], None
    else:  # which ones the server may use is not known: name them, not one of them
        model = None
        unknown = "mixed accelerators: " + ", ".join(f"{sum(g['name'] == n for g in gpus)} x {n}" for n in names)
    return {"vendor": vendor, "model": model, "count": count, "driver": driver, "runtime": runtime,
            "tool": tool, "unknown": unknown, "installed": len(gpus), "note": note}


def _unknown(why: str, vendor: str | None = None) -> dict[str, Any]:
    return {"vendor": vendor, "model": None, "count": None, "driver": None, "runtime": None, "tool": "none",
            "unknown": why, "installed": None, "note": None}


def _nvidia(env: Mapping[str, str], timeout_s: float) -> dict[str, Any]:
    gpus = parse.nvidia_query(run_tool(NVIDIA_QUERY, env, timeout_s))
    try:
        cuda = parse.cuda_version(run_tool(NVIDIA_HEADER, env, timeout_s))
    except ToolError:
        cuda = None
    return _build("nvidia", "nvidia-smi", gpus, gpus[0]["driver"], f"CUDA {cuda}" if cuda else None, env)


def _rocm_installed(env: Mapping[str, str]) -> str | None:
    """The ROCm release installed: ``$ROCM_PATH/.info/version`` (``6.2.0-66``), else /opt/rocm's."""
    for root in (env.get("ROCM_PATH"), "/opt/rocm"):
        if root:
            try:
                text = (Path(root) / ".info" / "version").read_text().strip()
            except OSError:
                continue
            m = re.match(r"\d+\.\d+(\.\d+)?", text)
            if m:
                return m.group(0)
    return None


def _amd_smi(env: Mapping[str, str], timeout_s: float) -> dict[str, Any]:
    gpus = parse.amd_smi_static(run_tool(AMD_STATIC, env, timeout_s))
    try:
        rocm = parse.amd_smi_version(run_tool(AMD_VERSION, env, timeout_s))
    except ToolError:
        rocm = None
    rocm = rocm or _rocm_installed(env)
    return _build("amd", "amd-smi", gpus, gpus[0]["driver"], f"ROCm {rocm}" if rocm else None, env)


def _rocm_smi(env: Mapping[str, str], timeout_s: float) -> dict[str, Any]:
    gpus, driver = parse.rocm_smi(run_tool(ROCM_SMI, env, timeout_s))
    rocm = _rocm_installed(env)
    return _build("amd", "rocm-smi", gpus, driver, f"ROCm {rocm}" if rocm else None, env)


TOOLS = (("nvidia-smi", _nvidia), ("amd-smi", _amd_smi), ("rocm-smi", _rocm_smi))


def accelerator(env: Mapping[str, str] | None = None, dev: str | Path = "/dev",
                timeout_s: float = TIMEOUT_S) -> dict[str, Any]:
    """The accelerator section of the fingerprint (contract C1, plus ``installed`` and ``note``):
    the first tool that works; else unknown with every tool's reason; else (no tool, no GPU device
    node) vendor ``cpu``. Cached per process for the same PATH, visibility variables and ``dev``."""
    env = dict(os.environ if env is None else env)
    key = (env.get("PATH"), *(env.get(v) for v in ("CUDA_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES",
                                                    "HIP_VISIBLE_DEVICES")), str(dev))
    if key not in _cache:
        _cache[key] = _accelerator(env, Path(dev), timeout_s)
    return dict(_cache[key])


def _accelerator(env: dict[str, str], dev: Path, timeout_s: float) -> dict[str, Any]:
    reasons, present = [], []
    for tool, probe in TOOLS:
        if shutil.which(tool, path=env.get("PATH", "")) is None:
            continue
        present.append(tool)
        try:
            return probe(env, timeout_s)
        except (ToolError, parse.ParseError) as exc:
            reasons.append(str(exc))
    nodes = [p for p in ("nvidiactl", "nvidia0", "kfd") if (dev / p).exists()]
    if not present and not nodes:
        acc = _unknown(None, "cpu")
        acc.update(count=0, installed=0, unknown=None,
                   note="no nvidia-smi, amd-smi or rocm-smi on PATH and no GPU device "
                   f"node in {dev}: no accelerator this process can use")
        return acc
    vendor = "nvidia" if any(n.startswith("nvidia") for n in nodes) else "amd" if nodes else None
    if not present:
        reasons.append(f"{dev / nodes[0]} exists but no nvidia-smi, amd-smi or rocm-smi is on PATH")
    return _unknown("; ".join(reasons), vendor)


# --- the rest of the host ----------------------------------------------------------------------
def cpu(proc: str | Path = "/proc") -> dict[str, Any]:
    model = None
    try:
        for line in (Path(proc) / "cpuinfo").read_text(errors="replace").splitlines():
            k, _, v = line.partition(":")
            if k.strip() in ("model name", "Model", "cpu model", "Hardware") and v.strip():
                model = " ".join(v.split())
                break
    except OSError:
        pass
    return {"model": model or platform.processor() or platform.machine() or None, "count": os.cpu_count()}


def os_name() -> str | None:
    try:
        return platform.freedesktop_os_release().get("PRETTY_NAME") or platform.system() or None
    except OSError:
        return f"{platform.system()} {platform.release()}".strip() or None


def file_sha256(path: str | Path | None) -> str | None:
    if not path:
        return None
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


def model_revision(model_path: str | Path | None) -> str | None:
    """The revision of a local model folder, when it says: a Hugging Face cache snapshot
    (``…/snapshots/<commit>``) or a ``huggingface-cli download --local-dir`` folder (the commit is the
    first line of ``.cache/huggingface/download/config.json.metadata``)."""
    if not model_path:
        return None
    p = Path(model_path)
    parts = p.parts
    for i, part in enumerate(parts[:-1]):
        if part == "snapshots" and re.fullmatch(r"[0-9a-f]{40}", parts[i + 1]):
            return parts[i + 1]
    meta_dir = p / ".cache" / "huggingface" / "download"
    for meta in [meta_dir / "config.json.metadata", *sorted(meta_dir.glob("*.metadata"))]:
        try:
            first = meta.read_text(errors="replace").splitlines()[0].strip()
        except (OSError, IndexError):
            continue
        if re.fullmatch(r"[0-9a-f]{40}", first):
            return first
    return None


def is_loopback(url: str | None) -> bool:
    """True for an http(s) URL whose host is this machine's loopback (localhost, 127.0.0.0/8, ::1)."""
    if not url:
        return False
    from ipaddress import ip_address
    from urllib.parse import urlsplit

    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


def server_root(base_url: str) -> str:
    base = base_url.rstrip("/")
    return base[: -len("/v1")] if base.endswith("/v1") else base


def vllm_version(base_url: str, *, api_key: str | None = None, timeout_s: float = 2.0) -> dict[str, Any]:
    """``GET <root>/version`` of a vLLM server (``{"version": "0.6.3"}``): ``{"version", "source"}``,
    version None and ``unknown`` saying why when it does not answer so. Only for loopback URLs (the
    caller's rule: the embedded server or an endpoint on this host); never raises."""
    url = server_root(base_url) + "/version"
    out: dict[str, Any] = {"version": None, "source": None}
    if not is_loopback(url):
        out["unknown"] = f"{url} is not on loopback: not asked"
        return out
    try:
        from ..engine import http as ehttp

        status, _, body = ehttp.get(url, api_key=api_key, timeout_s=timeout_s)
    except Exception as exc:  # any failure of a side question is a reason, never a failed run
        out["unknown"] = f"GET {url}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        return out
    import json

    try:
        version = json.loads(body).get("version") if status == 200 else None
    except (ValueError, AttributeError):
        version = None
    if isinstance(version, str) and version.strip():
        out.update(version=version.strip()[:100], source=f"GET {url}")
    else:
        out["unknown"] = f"GET {url}: HTTP {status}, no {{\"version\": ...}} (not vLLM, or a vLLM without /version)"
    return out


def hardware_key(env: Mapping[str, Any] | None) -> str:
    """What ``compare`` compares: ``nvidia H100 80GB HBM3 x8``, ``cpu <cpu model> x2`` (no
    accelerator), or ``unknown``."""
    if not isinstance(env, Mapping):
        return "unknown"
    acc = env.get("accelerator") if isinstance(env.get("accelerator"), Mapping) else {}
    vendor = acc.get("vendor")
    if vendor in _VENDOR_WORDS and acc.get("model") and isinstance(acc.get("count"), int):
        model = re.sub(rf"^{_VENDOR_WORDS[vendor]}\s+", "", str(acc["model"]), flags=re.I)
        return f"{vendor} {model} x{acc['count']}"
    cpu_ = env.get("cpu") if isinstance(env.get("cpu"), Mapping) else {}
    if vendor == "cpu" and cpu_.get("model") and cpu_.get("count"):
        return f"cpu {cpu_['model']} x{cpu_['count']}"
    return "unknown"


def collect(*, target_name: str, target_source: str | None = None, model: str | None = None,
            model_path: str | Sequence[str | None] | None = None, endpoint: str | None = None,
            api_key: str | None = None,
            vllm: Mapping[str, Any] | None = None, plugin_version: str | None = None,
            env: Mapping[str, str] | None = None, dev: str | Path = "/dev", proc: str | Path = "/proc",
            timeout_s: float = TIMEOUT_S) -> dict[str, Any]:
    """The run's environment (``summary.json``'s ``environment``, contract C1).

    ``vllm``: what a fixture already learned from the server while it ran (``{"version", "source"}``,
    or ``unknown``: why not); else, when ``endpoint`` is on loopback, ``GET <root>/version`` is asked
    now (2 s at most). ``model_path``: the model's folder, or several places it may be (the first
    that names a revision wins). ``env``, ``dev``, ``proc``: the test seam (see the module docstring)."""
    if plugin_version is None:
        from .. import __version__ as plugin_version
    paths = [model_path] if isinstance(model_path, (str, Path)) or model_path is None else list(model_path)
    if vllm is None and is_loopback(endpoint):  # asked once: a fixture's answer (or reason) stands
        vllm = vllm_version(endpoint, api_key=api_key)
    out = {
        "schema": SCHEMA,
        "accelerator": accelerator(env, dev, timeout_s),
        "cpu": cpu(proc),
        "kernel": platform.release() or None,
        "os": os_name(),
        "vllm": dict(vllm) if vllm else {"version": None, "source": None},
        "model": {"name": model, "revision": next(filter(None, map(model_revision, paths)), None)},
        "plugin_version": plugin_version,
        "target": {"name": target_name, "sha256": file_sha256(target_source)},
    }
    out["hardware"] = hardware_key(out)
    return out
