"""collect() and accelerator() against fake tools (present, missing, failing, hanging, garbage)."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from fakes import AMD_8XMI300X, C1_ACCELERATOR, C1_KEYS, NVIDIA_8XH100
from pytest_inference.fingerprint import accelerator, collect, hardware_key
from pytest_inference.targets import load_target


def test_nvidia_smi_8x_h100(tools):
    env, dev = tools(NVIDIA_8XH100)
    acc = accelerator(env, dev)
    assert set(acc) >= C1_ACCELERATOR
    assert (acc["vendor"], acc["model"], acc["count"], acc["driver"], acc["runtime"], acc["tool"], acc["unknown"]) == (
        "nvidia", "NVIDIA H100 80GB HBM3", 8, "535.129.03", "CUDA 12.2", "nvidia-smi", None)
    assert hardware_key({"accelerator": acc}) == "nvidia H100 80GB HBM3 x8"


@pytest.mark.parametrize("visible,count", [("0,1", 2), ("", 0), ("-1", 0), ("3", 1), ("0,9,1", 1),
                                           ("GPU-8f6a2b4c-1d3e-4f50-9a7b-0c1d2e3f4a5b", 1)])
def test_cuda_visible_devices_narrow_the_count_and_say_so(tools, visible, count):
    env, dev = tools(NVIDIA_8XH100, CUDA_VISIBLE_DEVICES=visible)
    acc = accelerator(env, dev)
    assert acc["count"] == count and acc["installed"] == 8
    assert acc["note"] == f"CUDA_VISIBLE_DEVICES={visible}: {count} of 8 installed visible to the server"


def test_hip_and_rocr_visible_devices_narrow_an_amd_count(tools):
    env, dev = tools(AMD_8XMI300X, ROCR_VISIBLE_DEVICES="0,1,2,3", HIP_VISIBLE_DEVICES="1")
    acc = accelerator(env, dev)
    assert (acc["vendor"], acc["model"], acc["count"], acc["installed"]) == ("amd", "AMD Instinct MI300X", 1, 8)
    assert "ROCR_VISIBLE_DEVICES=0,1,2,3, HIP_VISIBLE_DEVICES=1" in acc["note"]


def test_a_failing_header_call_costs_the_runtime_only(tools):
    env, dev = tools({"nvidia-smi": [("--query-gpu", "nvidia-smi-query-1xh200.csv", 0), ("", "boom", 3)]})
    acc = accelerator(env, dev)
    assert (acc["model"], acc["count"], acc["driver"], acc["runtime"]) == ("NVIDIA H200", 1, "550.90.07", None)


def test_a_failing_nvidia_smi_falls_through_to_amd_smi(tools):
    env, dev = tools({"nvidia-smi": [("", "nvidia-smi-failed.txt", 9)], **AMD_8XMI300X})
    acc = accelerator(env, dev)
    assert (acc["vendor"], acc["tool"], acc["count"], acc["driver"], acc["runtime"]) == (
        "amd", "amd-smi", 8, "6.7.0", "ROCm 6.2.0")
    assert hardware_key({"accelerator": acc}) == "amd Instinct MI300X x8"


def test_garbage_from_amd_smi_falls_through_to_rocm_smi(tools):
    env, dev = tools({"amd-smi": [("static", "amd-smi-static-truncated.json", 0)],
                      "rocm-smi": [("", "rocm-smi-8xmi300x.json", 0)]})
    acc = accelerator(env, dev)
    assert (acc["vendor"], acc["model"], acc["count"], acc["driver"], acc["tool"]) == (
        "amd", "AMD Instinct MI300X OAM", 8, "6.7.0", "rocm-smi")


def test_every_tool_failing_is_unknown_with_every_reason(tools):
    env, dev = tools({"nvidia-smi": [("", "nvidia-smi-failed.txt", 9)],
                      "amd-smi": [("static", "amd-smi-static-truncated.json", 0)],
                      "rocm-smi": [("", "rocm-smi-hex-only.json", 0)]})
    acc = accelerator(env, dev)
    assert (acc["vendor"], acc["model"], acc["count"], acc["tool"]) == (None, None, None, "none")
    assert acc["unknown"].startswith("nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader "
                                     "exited 9: NVIDIA-SMI has failed")
    assert "amd-smi printed JSON that does not parse" in acc["unknown"]
    assert "rocm-smi card0: no product name, only '0x74a1'" in acc["unknown"]
    assert hardware_key({"accelerator": acc}) == "unknown"


def test_garbage_output_is_unknown_not_a_guess(tools):
    env, dev = tools({"nvidia-smi": [("", "nvidia-smi-query-garbage.csv", 0)]})
    acc = accelerator(env, dev)
    assert acc["model"] is None and acc["count"] is None
    assert "nvidia-smi line 1 has 1 field(s), not 3" in acc["unknown"]


def test_a_hanging_tool_is_cut_short(tools):
    env, dev = tools({"nvidia-smi": [("", "nvidia-smi-query-8xh100.csv", 0, 20)]})
    t0 = time.monotonic()
    acc = accelerator(env, dev, timeout_s=0.5)
    assert time.monotonic() - t0 < 5
    assert acc["unknown"] == ("nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader "
                              "did not finish within 0.5 s")


def test_no_tool_and_no_device_node_is_the_cpu(tools):
    env, dev = tools({})
    acc = accelerator(env, dev)
    assert (acc["vendor"], acc["count"], acc["tool"], acc["unknown"]) == ("cpu", 0, "none", None)
    env_ = {"accelerator": acc, "cpu": {"model": "Intel(R) Xeon(R) Processor", "count": 2}}
    assert hardware_key(env_) == "cpu Intel(R) Xeon(R) Processor x2"


def test_a_device_node_without_its_tool_is_unknown(tools):
    env, dev = tools({})
    (dev / "nvidia0").write_text("")
    acc = accelerator(env, dev)
    assert acc["vendor"] == "nvidia" and acc["model"] is None and acc["count"] is None
    assert acc["unknown"] == f"{dev / 'nvidia0'} exists but no nvidia-smi, amd-smi or rocm-smi is on PATH"
    assert hardware_key({"accelerator": acc, "cpu": {"model": "x", "count": 2}}) == "unknown"


def test_the_tools_run_once_per_process(tools, tmp_path):
    env, dev = tools(NVIDIA_8XH100)
    first = accelerator(env, dev)
    first["model"] = "changed by a caller"
    assert accelerator(env, dev)["model"] == "NVIDIA H100 80GB HBM3"  # a copy each time
    calls = (tmp_path / "bin" / "calls").read_text().splitlines()
    assert len(calls) == 2  # the query and the header, once


def test_hardware_key_of_nothing_is_unknown():
    assert hardware_key(None) == "unknown" and hardware_key({}) == "unknown"
    assert hardware_key({"accelerator": {"vendor": "cpu"}, "cpu": {"model": None, "count": 2}}) == "unknown"


# --- collect(): the whole section ------------------------------------------------------------
REVISION = "0123456789abcdef0123456789abcdef01234567"
MODELS = json.dumps({"object": "list", "data": [{"id": "openai/gpt-oss-120b", "object": "model", "owned_by": "vllm",
                     "root": f"/hub/models--openai--gpt-oss-120b/snapshots/{REVISION}", "max_model_len": 8192}]})


class _Version(BaseHTTPRequestHandler):
    """vLLM's /version and /v1/models (the model card's root: the folder it loaded)."""
    answer = b'{"version": "0.6.3.post1"}'

    def do_GET(self):  # noqa: N802
        pages = {"/version": self.answer, "/v1/models": MODELS.encode()}
        body = pages.get(self.path, b"{}")
        self.send_response(200 if self.path in pages else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


@pytest.fixture
def version_server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Version)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def test_collect_has_every_c1_key(tools, tmp_path, version_server):
    env, dev = tools(NVIDIA_8XH100)
    snap = tmp_path / "hub" / "models--openai--gpt-oss-120b" / "snapshots" / ("a" * 40)
    snap.mkdir(parents=True)
    mi = load_target("mi300x")
    out = collect(target_name=mi.name, target_source=mi.source, model="openai/gpt-oss-120b", model_path=str(snap),
                  endpoint=version_server + "/v1", env=env, dev=dev)
    assert set(out) == C1_KEYS and out["schema"] == 1
    json.dumps(out)  # JSON all through
    assert out["hardware"] == "nvidia H100 80GB HBM3 x8"
    assert out["vllm"] == {"version": "0.6.3.post1", "source": f"GET {version_server}/version"}
    assert out["model"] == {"name": "openai/gpt-oss-120b", "revision": "a" * 40}
    with open(mi.source, "rb") as fh:
        assert out["target"] == {"name": "mi300x", "sha256": hashlib.sha256(fh.read()).hexdigest()}
    assert out["cpu"]["count"] and out["kernel"] and out["plugin_version"]


def test_collect_without_a_server_or_tools(tools, tmp_path):
    env, dev = tools({})
    out = collect(target_name="vendor", target_source=str(tmp_path / "gone.toml"), env=env, dev=dev)
    assert out["vllm"] == {"version": None, "source": None}
    assert out["model"] == {"name": None, "revision": None} and out["target"] == {"name": "vendor", "sha256": None}
    assert out["accelerator"]["vendor"] == "cpu" and out["hardware"].startswith("cpu ")


def test_a_server_elsewhere_is_never_asked_and_a_silent_one_is_a_reason(tools, version_server):
    env, dev = tools({})
    out = collect(target_name="t", endpoint="http://10.255.255.1:9/v1", env=env, dev=dev)
    assert out["vllm"] == {"version": None, "source": None}  # not on loopback: nothing sent
    _Version.answer = b"not json"
    try:
        out = collect(target_name="t", endpoint=version_server, env=env, dev=dev)
    finally:
        _Version.answer = b'{"version": "0.6.3.post1"}'
    assert out["vllm"]["version"] is None and "HTTP 200, no {\"version\": ...}" in out["vllm"]["unknown"]
    # what a fixture learned while the server ran wins over a server gone by the end
    known = {"version": "0.7.0", "source": "GET http://127.0.0.1:1/version"}
    assert collect(target_name="t", endpoint="http://127.0.0.1:1/v1", vllm=known, env=env, dev=dev)["vllm"] == known


def test_model_revision_of_a_local_dir_download(tools, tmp_path):
    env, dev = tools({})
    folder = tmp_path / "model"
    meta = folder / ".cache" / "huggingface" / "download"
    meta.mkdir(parents=True)
    (meta / "config.json.metadata").write_text("0123456789abcdef0123456789abcdef01234567\n\"etag\"\n1733000000.0\n")
    out = collect(target_name="t", model="m", model_path=str(folder), env=env, dev=dev)
    assert out["model"]["revision"] == "0123456789abcdef0123456789abcdef01234567"


def test_the_model_revision_from_the_servers_model_card(tools, version_server):
    from pytest_inference.fixtures.endpoints import open_endpoint

    ep = open_endpoint(version_server + "/v1", api_key=None, model=None, fallback_model=None)
    assert ep.model == "openai/gpt-oss-120b" and ep.root.endswith(REVISION)
    env, dev = tools({})
    out = collect(target_name="t", model=ep.model, model_path=ep.root, env=env, dev=dev)
    assert out["model"] == {"name": "openai/gpt-oss-120b", "revision": REVISION}


def test_rocm_release_from_the_install_when_amd_smi_does_not_say(tools, tmp_path):
    rocm = tmp_path / "rocm"
    (rocm / ".info").mkdir(parents=True)
    (rocm / ".info" / "version").write_text("6.2.0-66\n")
    env, dev = tools({"rocm-smi": [("", "rocm-smi-8xmi300x.json", 0)]}, ROCM_PATH=str(rocm))
    acc = accelerator(env, dev)
    assert (acc["tool"], acc["driver"], acc["runtime"]) == ("rocm-smi", "6.7.0", "ROCm 6.2.0")
