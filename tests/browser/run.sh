#!/usr/bin/env bash
# The dashboard's browser test (CTest: browser_dashboard, label browser).
# Installs playwright-core as pinned in package-lock.json (npm ci, no install
# scripts, no browser download: the test drives Debian's chromium, which
# scripts/install-deps.sh installs), then runs dashboard_test.mjs, which
# starts PostgreSQL, an api-node and a worker-node of its own.
#
#   tests/browser/run.sh API_NODE_BIN WORKER_NODE_BIN [OUT_DIR]
#
# OUT_DIR receives the screenshots; UPDATE_DOCS_SCREENSHOTS=1 also copies them
# to docs/img. CHROMIUM overrides /usr/bin/chromium.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if (($# < 2)); then
  sed -n '2,12p' "$0" >&2
  exit 2
fi
chromium=${CHROMIUM:-/usr/bin/chromium}
if [[ ! -x "$chromium" ]]; then
  echo "browser test: $chromium is missing; run scripts/install-deps.sh (Debian package chromium)" >&2
  exit 1
fi
command -v npm >/dev/null || {
  echo "browser test: npm is missing; run scripts/install-deps.sh" >&2
  exit 1
}
api_bin=$(realpath "$1")
worker_bin=$(realpath "$2")
out_dir=$(realpath -m "${3:-$here/../../build/tests/browser}")
cd "$here"
PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
exec node dashboard_test.mjs "$api_bin" "$worker_bin" "$out_dir"
