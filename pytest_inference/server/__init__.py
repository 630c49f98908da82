"""Launch an inference server (any OpenAI-compatible one), time its cold start —
process launched → port open → ``/health`` 200 → first streamed token — and make sure it
never outlives the test that started it.

    from pytest_inference.server import ServerSpec, launch
    spec = ServerSpec(command="{python} -m my_server --model {model_path} --served-model-name {model} "
                              "--host {host} --port {port} {args}",
                      model_path="/models/m", model="m", python="/venv/bin/python", device="gpu0")
    with launch(spec) as h:
        tl = h.wait_ready()        # Timeline: port_open_s, health_s, first_token_s, ttft_ms, lines
        ...                        # h.base_url is the /v1 URL

The launcher knows no server family: vLLM's command, environment and CPU pinning are in
:mod:`pytest_inference.vllm` (``vllm.command.spec``), plugged in through :class:`ServerHooks`.

One server per ``device`` at a time on the machine (an exclusive lock file, see
:mod:`.lock`); the server and its children are killed with their process group on stop,
on Ctrl-C, at interpreter exit, and by a watchdog (:mod:`pytest_inference.supervise`'s guardian) when the launching
process is killed outright. See :mod:`.launcher` for the details.
"""

from .launcher import (
    ServerExit,
    ServerHandle,
    ServerHooks,
    ServerSpec,
    ServerStartError,
    Timeline,
    free_port,
    launch,
)
from .lock import DeviceLock, DeviceLockError, DeviceLockTimeout, DeviceLockUnsafe, default_lock_dir

__all__ = [
    "ServerSpec",
    "ServerHooks",
    "ServerHandle",
    "ServerStartError",
    "ServerExit",
    "Timeline",
    "launch",
    "free_port",
    "DeviceLock",
    "DeviceLockError",
    "DeviceLockTimeout",
    "DeviceLockUnsafe",
    "default_lock_dir",
]
