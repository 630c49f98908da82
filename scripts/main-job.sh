#!/usr/bin/env bash
# The main job on the embedded default: install what it needs, then run the coldstart, drain, warm,
# API conformance, load (a short run and a capacity search bounded to about a minute), storage and node suites with
# --target cpu-local. Without --endpoint the suites start a real vLLM on the CPU themselves (the tiny
# offline model, generated on first use): cold starts from launch to first token, then one shared
# server for the warm and load measurements. Without --nfs-url/--model-path/--node the storage
# and node suites start the local NFS lab (nfs-ganesha in a network namespace, a tuned node namespace;
# needs root). Writes the report.
#
#   bash scripts/main-job.sh [extra pytest args...]
#
# Writes reports/summary.json, reports/allure-results/ and reports/html/index.html.
# Exit status: pytest's (0 = every claim held).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PIP_DISABLE_PIP_VERSION_CHECK=1

echo "::: installing what the main job and the tests need (scripts/install-all.sh)"
bash scripts/install-all.sh

echo "::: running the coldstart, drain, warm, API, load, storage and node suites on the embedded default, k8s on the reference manifests"
set +e
python3 -m pytest suites/coldstart suites/drain suites/warm suites/api suites/load suites/storage suites/node suites/k8s \
  --manifests fixtures/k8s/reference --target cpu-local --inference-report reports "$@"
rc=$?
set -e

echo "::: rendering the HTML report"
python3 -m pytest_inference.cli report --results reports/allure-results --out reports/html || true
echo "summary: reports/summary.json   html: reports/html/index.html"
exit "$rc"
