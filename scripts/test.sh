#!/usr/bin/env bash
# Runs the whole test suite: installs missing Debian packages, builds into
# build/, runs every CTest test. Non-interactive; .ci/run calls it.
#
#   scripts/test.sh [ctest args]      e.g. -L unit, -L integration, -R end_to_end
#
# - unit tests: no processes, no database;
# - store tests: the job store against a throwaway PostgreSQL that the tests
#   start themselves (initdb in a temp dir, free port; as root via the
#   postgres user);
# - integration tests (label "integration"): real api-node and worker-node
#   processes over HTTP and CAF, real PostgreSQL.
#
# Settings: ORCH_TEST_JOBS (parallel tests, default 2). A JUnit report is
# written to build/test-results.xml.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
cd build
exec ctest --output-on-failure --no-tests=error --timeout 600 \
  -j "${ORCH_TEST_JOBS:-2}" --output-junit test-results.xml "$@"
