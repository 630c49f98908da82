"""Launch an inference server (vLLM or any OpenAI-compatible one), time its cold start —
process launched → port open → ``/health`` 200 → first streamed token — and make sure it
never outlives the test that started it.

    from pytest_inference.server import ServerSpec, launch
    spec = ServerSpec(command="{python} -m vllm.entrypoints.openai.api_server --model {model_path} "
                              "--served-model-name {model} --host {host} --port {port} {args}",
                      model_path="/models/m", model="m", python="/venv/bin/python", device="gpu0")
    with launch(spec) as h:
        tl = h.wait_ready()        # Timeline: port_open_s, health_s, first_token_s, ttft_ms, lines
        ...                        # h.base_url is the /v1 URL

One server per ``device`` at a time on the machine (an exclusive lock file, see
:mod:`.lock`); the server and its children are killed with their process group on stop,
on Ctrl-C, at interpreter exit, and by a watchdog (:mod:`.watchdog`) when the launching
process is killed outright. See :mod:`.launcher` for the details.
"""

from .launcher import (
    ServerExit,
    ServerHandle,
    ServerSpec,
    ServerStartError,
    Timeline,
    free_port,
    launch,
    pin_vllm_group,
    vllm_cpu_spec,
)
from .lock import DeviceLock, DeviceLockError, DeviceLockTimeout, DeviceLockUnsafe, default_lock_dir

__all__ = [
    "ServerSpec",
    "ServerHandle",
    "ServerStartError",
    "ServerExit",
    "Timeline",
    "launch",
    "free_port",
    "vllm_cpu_spec",
    "pin_vllm_group",
    "DeviceLock",
    "DeviceLockError",
    "DeviceLockTimeout",
    "DeviceLockUnsafe",
    "default_lock_dir",
]
