#!/usr/bin/env bash
# Builds everything and runs the whole test suite (labels unit, integration, clients, fuzz).
#   scripts/test.sh              g++ build in build/, warnings are errors, every test
#   scripts/test.sh --sanitize   clang build in build-sanitize/ with ASan+UBSan, clang-tidy (.clang-tidy)
#                                over the product code, then unit, integration and libFuzzer runs of
#                                every fuzz target
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh test
jobs=$(nproc)

# Layering: each folder is a CMake target that sees only the headers of the targets it links
# (cmake/modules.cmake), so a wrong include fails the build. The pure folders must also never reach
# for Asio's I/O headers through Boost itself.
if grep -rlE 'boost/asio/(ip|io_context|ssl/stream|basic_socket)' socks config names tunnel/*.hpp tunnel/*.cpp \
     sql602/*.hpp sql602/*.cpp 2>/dev/null; then
  echo "test.sh: the files above are pure codecs or config and must not include Asio I/O headers" >&2
  exit 1
fi
# No relative includes: they would walk around the include boundary.
if grep -rnE '#include "\.\./' --include='*.cpp' --include='*.hpp' config socks names tunnel proxy sql602 2>/dev/null; then
  echo "test.sh: relative includes bypass the folder boundaries; include by the path from the root" >&2
  exit 1
fi
# Format: every C++ file as .clang-format says (clang-format 14); fix with
#   clang-format -i $(git ls-files '*.cpp' '*.hpp')
if command -v git >/dev/null && git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  if ! git ls-files -z '*.cpp' '*.hpp' | xargs -0 clang-format --dry-run -Werror 2>/tmp/edgerelay-format.$$; then
    head -40 /tmp/edgerelay-format.$$ >&2
    rm -f /tmp/edgerelay-format.$$
    echo "test.sh: the files above are not formatted (clang-format -i FILE)" >&2
    exit 1
  fi
  rm -f /tmp/edgerelay-format.$$
fi
# ccache hits across clones and worktrees (paths relative to the checkout).
export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=1

if [ "${1:-}" = "--sanitize" ]; then
  cmake -S . -B build-sanitize -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_COMPILER=clang++ \
    -DEDGERELAY_SANITIZE=ON -DEDGERELAY_FUZZ=ON -DEDGERELAY_BENCH=OFF >/dev/null
  cmake --build build-sanitize -j"$jobs"
  # .clang-tidy's checks over the product code (not tests/ or bench/), every finding an error.
  # About 4.9 CPU minutes: 2.5 minutes on two otherwise idle cores.
  run-clang-tidy -p build-sanitize -quiet -j "$jobs" "$PWD/(config|names|socks|tunnel|proxy|sql602)/"
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  ctest --test-dir build-sanitize -L 'unit|integration|fuzz' --output-on-failure -j"$jobs"
  exit 0
fi

cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEDGERELAY_WERROR=ON -DEDGERELAY_BENCH=ON >/dev/null
cmake --build build -j"$jobs"
ctest --test-dir build --output-on-failure -j"$jobs"
