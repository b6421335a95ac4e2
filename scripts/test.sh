#!/usr/bin/env bash
# Runs the whole test suite: installs what is missing, builds, runs CTest.
# Unit tests, store tests against a throwaway PostgreSQL the tests start
# themselves, and integration tests with real api-node and worker-node
# processes.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
cd build
ctest --output-on-failure --timeout 600 -j "${ORCH_TEST_JOBS:-2}" "$@"
