#!/usr/bin/env bash
# Longer local fuzzing that grows the committed corpora (docs/architecture.md, "Fuzzing").
#   scripts/fuzz.sh --list             the libFuzzer targets, their corpus, dictionary and regressions
#   scripts/fuzz.sh TARGET MINUTES     builds TARGET with clang (ASan+UBSan, libFuzzer) in build-fuzz/,
#                                      fuzzes it for MINUTES with its dictionary, seeded with its
#                                      committed corpus and crash regressions, then merges the new
#                                      inputs that add coverage into the committed corpus (-merge=1:
#                                      a minimal set) and copies any crash, leak, timeout or
#                                      out-of-memory input into tests/fuzz/regressions/TARGET/
# Exit status: 0 when the run found nothing, 1 when it found a crash (kept as a regression), 2 on a
# usage error. Commit what it added: git status tests/fuzz tests/sql602.
set -euo pipefail
cd "$(dirname "$0")/.."

readonly build=${EDGERELAY_FUZZ_BUILD:-build-fuzz}
readonly max_minutes=720

usage() {
  cat >&2 <<EOF
usage: scripts/fuzz.sh TARGET MINUTES    fuzz TARGET for MINUTES (1-$max_minutes), grow its corpus
       scripts/fuzz.sh --list            list the targets
EOF
  exit 2
}

fail_usage() {
  echo "fuzz.sh: $*" >&2
  usage
}

[ $# -ge 1 ] || usage
case "$1" in
  -h | --help) usage ;;
  --list) [ $# -eq 1 ] || fail_usage "--list takes no other argument" ;;
  -*) fail_usage "unknown option $1" ;;
  *)
    [ $# -eq 2 ] || fail_usage "give a target and a number of minutes"
    if ! [[ "$2" =~ ^[0-9]{1,4}$ ]] || [ $((10#$2)) -lt 1 ] || [ $((10#$2)) -gt $max_minutes ]; then
      fail_usage "MINUTES must be a whole number from 1 to $max_minutes, not '$2'"
    fi
    ;;
esac

if ! command -v clang++ >/dev/null; then
  echo "fuzz.sh: libFuzzer needs clang++, which is not installed (scripts/install-deps.sh test)" >&2
  exit 2
fi

# The same sanitizers as scripts/test.sh --sanitize, optimised: a fuzzing run wants executions per
# second. Only the target asked for is built.
export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=1
if ! configured=$(cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ \
     -DEDGERELAY_SANITIZE=ON -DEDGERELAY_FUZZ=ON -DEDGERELAY_BENCH=OFF 2>&1); then
  echo "$configured" >&2
  echo "fuzz.sh: configuring $build failed" >&2
  exit 1
fi
readonly manifest="$build/fuzz_targets.txt"  # written by edgerelay_fuzz_target() (cmake/testing.cmake)

count_files() {
  if [ -d "$1" ]; then find "$1" -type f | wc -l; else echo 0; fi
}

if [ "$1" = "--list" ]; then
  printf '%-20s %-40s %-8s %-44s %s\n' TARGET CORPUS FILES DICTIONARY REGRESSIONS
  grep -v '^#' "$manifest" | while IFS='|' read -r name _ corpus dict regressions; do
    printf '%-20s %-40s %-8s %-44s %s\n' "$name" "${corpus#"$PWD"/}" "$(count_files "$corpus")" \
      "$([ -n "$dict" ] && echo "${dict#"$PWD"/}" || echo -)" "$(count_files "$regressions")"
  done
  exit 0
fi

readonly target=$1 minutes=$((10#$2))
line=$(awk -F'|' -v t="$target" '$1 == t' "$manifest")
if [ -z "$line" ]; then
  echo "fuzz.sh: no fuzz target '$target'; the targets are: $(grep -v '^#' "$manifest" | cut -d'|' -f1 | tr '\n' ' ')" >&2
  exit 2
fi
IFS='|' read -r _ binary corpus dict regressions <<<"$line"

cmake --build "$build" -j"$(nproc)" --target "$target"

scratch=$(mktemp -d "${TMPDIR:-/tmp}/edgerelay-fuzz-$target.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$scratch/new" "$scratch/artifacts"

# New inputs go to the first folder (scratch); the committed corpus and the regressions only seed.
seeds=("$corpus")
if [ -d "$regressions" ]; then seeds+=("$regressions"); fi
args=(-timeout=10 -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$scratch/artifacts/")
if [ -n "$dict" ]; then args+=(-dict="$dict"); fi

export ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
echo "fuzz.sh: $target for $minutes minute(s); corpus ${corpus#"$PWD"/} ($(count_files "$corpus") files)${dict:+, dictionary ${dict#"$PWD"/}}"
seconds=$((minutes * 60))
rc=0
# timeout(1) is a backstop only: libFuzzer stops itself at -max_total_time.
timeout --kill-after=30 $((seconds + 300)) \
  "$binary" "${args[@]}" -max_total_time="$seconds" "$scratch/new" "${seeds[@]}" || rc=$?

# Keep what the run learned even when it stopped on a crash.
before=$(count_files "$corpus")
if [ "$(count_files "$scratch/new")" -gt 0 ]; then
  "$binary" -merge=1 -merge_control_file="$scratch/merge.ctl" -timeout=10 -rss_limit_mb=2048 \
    "$corpus" "$scratch/new" >"$scratch/merge.log" 2>&1 || {
    tail -20 "$scratch/merge.log" >&2
    echo "fuzz.sh: merging into ${corpus#"$PWD"/} failed" >&2
    exit 1
  }
fi
after=$(count_files "$corpus")
echo "fuzz.sh: ${corpus#"$PWD"/}: $before -> $after files ($((after - before)) new inputs that add coverage)"

found=0
for f in "$scratch"/artifacts/*; do
  [ -f "$f" ] || continue
  case "$(basename "$f")" in
    crash-* | leak-* | timeout-* | oom-*) ;;
    *) continue ;;
  esac
  mkdir -p "$regressions"
  cp "$f" "$regressions/"
  found=$((found + 1))
  echo "fuzz.sh: kept ${regressions#"$PWD"/}/$(basename "$f"); reproduce with: $binary ${regressions#"$PWD"/}/$(basename "$f")" >&2
done
if [ "$found" -gt 0 ]; then
  echo "fuzz.sh: $target: $found failing input(s), now crash regressions (replayed by ctest -R ${target}_regressions)" >&2
  exit 1
fi
if [ "$rc" -ne 0 ]; then
  echo "fuzz.sh: $target exited with $rc without leaving a failing input" >&2
  exit 1
fi
echo "fuzz.sh: $target: no failure in $minutes minute(s)"
