"""The embedded vLLM server's command, defined once.

What a local vLLM start runs — the command template, its environment (offline, no telemetry,
loopback only, a small CPU KV cache), the CPU flags the tiny model needs, where the checkout's
venv and tiny model live — for every starter: ``pytest_inference.local`` (the suites' server),
:func:`cpu_spec` (tests that start the CPU vLLM themselves) and ``scripts/start-vllm-cpu.sh``, which
asks for the command line instead of writing it a third time::

    python -m pytest_inference.vllm.command --print --python PY --model-path DIR --port 8011 \\
        [--name NAME] [--cache-root DIR] [--tmpdir DIR] [-- EXTRA_VLLM_ARGS...]

prints one shell-quoted line, ``NAME=VALUE ... argv ...`` (run it with ``env``). Stdlib only.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any, Mapping

#: this distribution's ``vllm`` console command is broken: the server runs as a module
COMMAND = (
    "{python} -m vllm.entrypoints.openai.api_server --model {model_path} --served-model-name {model} "
    "--host {host} --port {port} {args}"
)
HOST = "127.0.0.1"
#: the embedded default's served model name (fixtures/tiny_model/generate.py)
TINY_MODEL = "tiny-llama"
#: what every local vLLM start gets: offline, no telemetry, loopback only, a small KV cache on CPU
#: (``VLLM_CPU_KVCACHE_SPACE`` from this process's environment when set)
ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "VLLM_NO_USAGE_STATS": "1",
    "DO_NOT_TRACK": "1",
    "VLLM_CPU_KVCACHE_SPACE": "1",
    "VLLM_HOST_IP": HOST,
    "VLLM_LOOPBACK_IP": HOST,
}
#: flags the tiny model gets on the CPU unless the extra flags name them (a second --max-model-len
#: would not override the first)
CPU_ARGS = (("--max-model-len", "512"), ("--dtype", "float32"))
#: prints the vLLM distributions of a python (``vllm`` or ``vllm-cpu``); fails without vLLM
_VLLM_PROBE = (
    "import importlib.metadata as m, vllm\n"
    "for d in ('vllm', 'vllm-cpu'):\n"
    "    try:\n        m.version(d); print(d)\n    except m.PackageNotFoundError:\n        pass\n"
)


def environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """:data:`ENV`, with ``VLLM_CPU_KVCACHE_SPACE`` taken from ``environ`` (default: this process's)."""
    environ = os.environ if environ is None else environ
    env = dict(ENV)
    if environ.get("VLLM_CPU_KVCACHE_SPACE"):
        env["VLLM_CPU_KVCACHE_SPACE"] = environ["VLLM_CPU_KVCACHE_SPACE"]
    return env


def cpu_args(args: str) -> str:
    """``args`` with :data:`CPU_ARGS` appended where ``args`` does not name the flag."""
    padded = f" {args} "
    out = args.strip()
    for flag, value in CPU_ARGS:
        if f" {flag}" not in padded:
            out = f"{out} {flag} {value}".strip()
    return out


def checkout_root() -> Path:
    return Path(__file__).resolve().parents[2]


def venv_dir(root: str | os.PathLike[str] | None = None) -> Path:
    """The CPU vLLM venv: ``PYTEST_INFERENCE_VLLM_VENV``, else ``<root>/.venv-vllm``."""
    return Path(os.environ.get("PYTEST_INFERENCE_VLLM_VENV", Path(root or checkout_root()) / ".venv-vllm"))


def tiny_model_path(root: str | os.PathLike[str] | None = None) -> Path:
    """The embedded tiny model: ``PYTEST_INFERENCE_VLLM_MODEL``, else ``<root>/.cache/tiny-llama``."""
    return Path(os.environ.get("PYTEST_INFERENCE_VLLM_MODEL", Path(root or checkout_root()) / ".cache" / "tiny-llama"))


def vllm_distributions(python: str, timeout_s: float = 120) -> list[str] | None:
    """The vLLM distributions (``vllm``, ``vllm-cpu``) installed for ``python``; None when it cannot
    import vLLM."""
    probe = subprocess.run([python, "-c", _VLLM_PROBE], capture_output=True, text=True, timeout=timeout_s)
    return probe.stdout.split() if probe.returncode == 0 else None


def spec(*, python: str, model_path: str | os.PathLike[str], model: str = TINY_MODEL, args: str = "",
         command: Any = COMMAND, env: Mapping[str, str] | None = None, **kw: Any):
    """The :class:`~pytest_inference.server.ServerSpec` of a local vLLM: ``command`` (default
    :data:`COMMAND`), :func:`environment` plus ``env``, on :data:`HOST`, with vLLM's hooks (cache
    root, CPU pinning). Other keywords go to ``ServerSpec``."""
    from ..server import ServerSpec
    from .hooks import VLLM

    kw.setdefault("host", HOST)
    return ServerSpec(command=command, python=python, model_path=os.fspath(model_path), model=model, args=args,
                      env={**environment(), **(env or {})}, hooks=VLLM, **kw)


def cpu_spec(root: str | os.PathLike[str] | None = None, *, model_path: str | os.PathLike[str] | None = None,
             model: str = TINY_MODEL, port: int = 0, args: str = "",
             cache_dir: str | os.PathLike[str] | None = None, **kw: Any):
    """The CPU vLLM of this checkout as ``scripts/start-vllm-cpu.sh`` starts it (venv, tiny model,
    :data:`CPU_ARGS` unless ``args`` names them), honouring the script's environment variables
    (``PYTEST_INFERENCE_VLLM_VENV``, ``_MODEL``, ``_ARGS``, ``_PIN``). The model must exist
    (``fixtures/tiny_model/generate.py`` makes it)."""
    root = Path(root) if root is not None else checkout_root()
    extra = " ".join(x for x in (os.environ.get("PYTEST_INFERENCE_VLLM_ARGS", ""), args) if x)
    kw.setdefault("pin_cpus", os.environ.get("PYTEST_INFERENCE_VLLM_PIN", "auto"))
    return spec(python=str(venv_dir(root) / "bin" / "python"),
                model_path=model_path if model_path is not None else tiny_model_path(root), model=model,
                port=port, args=cpu_args(extra),
                cache_dir=Path(cache_dir) if cache_dir is not None else root / ".cache" / "vllm-launch", **kw)


def command_line(server: Any, port: int, *, cache_root: str | os.PathLike[str] | None = None,
                 tmpdir: str | os.PathLike[str] | None = None) -> list[str]:
    """``NAME=VALUE`` items, then the argv, of ``server`` (a ServerSpec) started on ``port``: what
    ``env`` runs."""
    env = dict(server.env or {})
    if cache_root is not None:
        env.update(server.hooks.environment(Path(cache_root)))
    if tmpdir is not None:
        env["TMPDIR"] = os.fspath(tmpdir)
    return [f"{k}={v}" for k, v in env.items()] + server.format_command(port)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pytest_inference.vllm.command",
                                 description="Print the embedded vLLM server's command line (NAME=VALUE ... argv).")
    ap.add_argument("--print", action="store_true", required=True, help="print the command line")
    ap.add_argument("--python", required=True, help="the python that has vLLM")
    ap.add_argument("--model-path", required=True)
    ap.add_argument("--name", default=TINY_MODEL, help=f"served model name (default {TINY_MODEL})")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--cache-root", help="vLLM's cache root (compile cache)")
    ap.add_argument("--tmpdir", help="TMPDIR of the server")
    ap.add_argument("extra", nargs=argparse.REMAINDER, help="-- then extra vLLM flags")
    a = ap.parse_args(argv)
    extra = a.extra[1:] if a.extra[:1] == ["--"] else a.extra
    server = spec(python=a.python, model_path=a.model_path, model=a.name, args=cpu_args(shlex.join(extra)))
    print(shlex.join(command_line(server, a.port, cache_root=a.cache_root, tmpdir=a.tmpdir)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
