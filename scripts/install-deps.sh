#!/usr/bin/env bash
# Installs the Debian 12 packages orch needs to build, test and run locally.
# Used by the README's commands, by .ci/run and by the Dockerfile's build stage,
# so all three install exactly the same things.
#
#   scripts/install-deps.sh           build + test + local-run dependencies
#   scripts/install-deps.sh --build   build dependencies only (the Dockerfile)
#   scripts/install-deps.sh --runtime only the shared libraries the binaries need
set -euo pipefail

build_pkgs=(
  g++ cmake ninja-build pkg-config ccache make
  libcaf-dev libpistache-dev libpqxx-dev libspdlog-dev
  libgtest-dev libgmock-dev nlohmann-json3-dev libyaml-cpp-dev
  snakemake
  postgresql-15 postgresql-client-15 curl ca-certificates procps
)
# npm installs Swagger UI for GET /docs at build time (tools/docs). A
# Node.js that brings its own npm (NodeSource's nodejs bundles it, and
# conflicts with Debian's npm package) is used as it is.
if ! command -v npm >/dev/null 2>&1; then
  build_pkgs+=(npm)
fi
# The browser test (tests/browser) drives Debian's chromium.
test_pkgs=(chromium)
runtime_pkgs=(
  libcaf-core0.17 libcaf-io0.17 libpistache0 libpqxx-6.4 libspdlog1.10
  libfmt9 libpq5 libyaml-cpp0.7 ca-certificates curl
)

case "${1:-}" in
  --runtime) pkgs=("${runtime_pkgs[@]}") ;;
  --build) pkgs=("${build_pkgs[@]}") ;;
  *) pkgs=("${build_pkgs[@]}" "${test_pkgs[@]}") ;;
esac

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  exit 0
fi
sudo_cmd=()
if [[ $(id -u) -ne 0 ]]; then
  sudo_cmd=(sudo)
fi
echo "install-deps: installing ${missing[*]}" >&2
"${sudo_cmd[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq \
  --no-install-recommends "${missing[@]}" >/dev/null
