#!/usr/bin/env bash
# Runs the whole test suite: installs what is missing, builds, then
#  1. deployment checks (compose, Helm chart, CDK synth and tests, shellcheck),
#  2. a bounded libFuzzer run of the request parsing path (FUZZ_SECONDS, 30),
#  3. a benchmark smoke run, bench/run --quick --no-build (under 2 minutes; it
#     checks that the harness works and that every job ends in exactly one
#     terminal state, never the performance targets),
#  4. CTest: unit tests, store tests against a throwaway PostgreSQL the tests
#     start themselves, integration tests with real api-node and
#     worker-node processes, and the dashboard's browser test (chromium,
#     label browser).
# Extra arguments go to ctest (e.g. -L unit, -L integration, -R cancel).
# Settings: ORCH_TEST_JOBS (parallel tests, default 2); ORCH_SKIP_DEPLOY_CHECKS=1,
# ORCH_SKIP_FUZZ=1 or ORCH_SKIP_BENCH=1 skip a step. A JUnit report is written to
# build/test-results.xml.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
if [[ "${ORCH_SKIP_DEPLOY_CHECKS:-0}" != 1 ]]; then
  scripts/check-deploy.sh
fi
if [[ "${ORCH_SKIP_FUZZ:-0}" != 1 ]]; then
  scripts/fuzz.sh
fi
if [[ "${ORCH_SKIP_BENCH:-0}" != 1 ]]; then
  bench/run --quick --no-build
fi
cd build
exec ctest --output-on-failure --no-tests=error --timeout 600 \
  -j "${ORCH_TEST_JOBS:-2}" --output-junit test-results.xml "$@"
