#!/usr/bin/env bash
# Builds the libFuzzer target with clang and runs it for a bounded time on a
# copy of the seed corpus in tests/fuzz/corpus (new inputs stay out of the
# repo). A finding is written to build-fuzz/findings/ and fails the run.
#   scripts/fuzz.sh [SECONDS]   (default: $FUZZ_SECONDS or 30)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-${FUZZ_SECONDS:-30}}
if ! command -v clang++ >/dev/null || ! dpkg-query -W libclang-rt-14-dev >/dev/null 2>&1; then
  sudo_cmd=()
  [[ $(id -u) -ne 0 ]] && sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq \
    --no-install-recommends clang libclang-rt-14-dev >/dev/null
fi
export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=1
if [[ ! -f build-fuzz/build.ninja ]]; then
  cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_COMPILER=clang++ -DORCH_FUZZ=ON >/dev/null
fi
cmake --build build-fuzz -j "${ORCH_BUILD_JOBS:-2}" --target request_fuzzer
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp tests/fuzz/corpus/* "$work/"
mkdir -p build-fuzz/findings
echo "fuzzing request_fuzzer for ${seconds}s"
build-fuzz/tests/fuzz/request_fuzzer -max_total_time="$seconds" \
  -max_len=70000 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
  -artifact_prefix=build-fuzz/findings/ "$work" 2>&1 | tail -n 15
echo "fuzz: no findings in ${seconds}s"
