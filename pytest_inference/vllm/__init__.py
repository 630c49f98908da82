"""What is vLLM's, apart from the generic launcher (:mod:`pytest_inference.server`):

- :mod:`.command` — the embedded server's command, environment and CPU flags, defined once
  (``local.py``, :func:`.command.cpu_spec` and ``scripts/start-vllm-cpu.sh`` all use it);
- :mod:`.hooks` — vLLM's :class:`~pytest_inference.server.ServerHooks` (``VLLM_CACHE_ROOT``, pinning);
- :mod:`.cpu` — the CPU pinning: EngineCore with its Worker, the API server on the other CPUs;
- :mod:`.startup_log` — the startup-log parser (pure): timed, nested phases and facts.

Import the submodule you need; this package imports nothing (the plugin loads it on every run).
"""
