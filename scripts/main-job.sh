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
# Writes reports/summary.json (with the environment fingerprint), reports/junit.xml,
# reports/allure-results/, reports/html/index.html and the vendor bundle of it all,
# reports/qualification-cpu-local.tar.gz (verified; its one-page summary.html inside).
# Exit status: pytest's (0 = every claim held); 3 when the run passed but its bundle could not be made.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PIP_DISABLE_PIP_VERSION_CHECK=1

echo "::: installing what the main job and the tests need (scripts/install-all.sh)"
bash scripts/install-all.sh

echo "::: running the coldstart, drain, warm, API, load, storage and node suites on the embedded default, k8s on the reference manifests"
set +e
python3 -m pytest suites/coldstart suites/drain suites/warm suites/api suites/load suites/storage suites/node suites/k8s \
  --manifests fixtures/k8s/reference --target cpu-local --inference-report reports --junitxml reports/junit.xml "$@"
rc=$?
set -e

echo "::: rendering the HTML report"
python3 -m pytest_inference.cli report --results reports/allure-results --out reports/html || true
echo "::: packing the vendor bundle (pytest-inference bundle, then verify)"
BUNDLE=reports/qualification-cpu-local.tar.gz
if ! { python3 -m pytest_inference.cli bundle reports -o "$BUNDLE" && python3 -m pytest_inference.cli verify "$BUNDLE"; }; then
  if [ "$rc" -eq 0 ]; then rc=3; fi
fi
echo "summary: reports/summary.json   html: reports/html/index.html   bundle: $BUNDLE"
exit "$rc"
