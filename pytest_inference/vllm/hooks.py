"""vLLM's hooks into the generic launcher (:class:`pytest_inference.server.ServerHooks`): its compile
cache goes where the launcher's ``cache_dir`` says (``VLLM_CACHE_ROOT``), and on small CPU machines its
EngineCore is pinned with its Worker, away from the API server (:mod:`.cpu`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from ..server.launcher import Member, ServerHooks
from . import cpu

#: vLLM's cache root (compile cache, …): the launcher points it at <cache_dir>/cache
CACHE_ENV = "VLLM_CACHE_ROOT"


class VllmHooks(ServerHooks):
    name = "vLLM server"

    def environment(self, cache_root: Path) -> dict[str, str]:
        return {CACHE_ENV: str(cache_root)}

    def pin(self, pgid: int, members: Sequence[Member], mode: bool | str) -> dict[str, Any]:
        return cpu.pin(pgid, members, mode)


VLLM = VllmHooks()
