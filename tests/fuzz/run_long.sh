#!/usr/bin/env bash
# File: tests/fuzz/run_long.sh
# Long libFuzzer campaigns: runs every fuzz target of a clang fuzz build (-DSM_FUZZ=ON) for a
# fixed time each, growing each target's corpus in a scratch directory (the committed seed
# corpora are read, never written), and prints executions and coverage per target at the end
# as a Markdown table (the one in docs/fuzzing.md). Crashes, leaks and timeouts land in
# <scratch>/<target>/artifacts/ and make the script exit 1. docs/fuzzing.md explains more.
set -euo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

usage() {
  cat <<EOF
Usage: tests/fuzz/run_long.sh [options] [-- extra libFuzzer flags]

Runs each fuzz target of a clang fuzz build for a fixed duration and reports executions and
coverage (libFuzzer's cov/ft) per target.

Options:
  --build DIR      clang fuzz build directory (default: \$SM_FUZZ_BUILD or $SRC/build-fuzz).
                   Configure one with:
                     CC=clang CXX=clang++ cmake -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \\
                       -DSM_FUZZ=ON -DSM_SANITIZE=ON -DSM_ONLY_UNIT=ON -S $SRC -B DIR
                   The script builds the targets there first (ninja), unless --no-build.
  --each DURATION  time per target: 90s, 10m, 1h, or plain seconds (default: 10m)
  --scratch DIR    where corpora grow and artifacts go, one sub-dir per target
                   (default: /tmp/sm-fuzz-<date>); reuse a directory to resume campaigns
  --only REGEX     only targets whose name matches (grep -E)
  --parallel N     run N targets at once (default 1; each target uses one core)
  --no-build       do not run ninja first
  --list           print the targets and their seed corpora, then exit
  -h, --help       this help

Example: tests/fuzz/run_long.sh --build /work/builds/fuzz-clang --each 1h --parallel 2
EOF
}

BUILD=${SM_FUZZ_BUILD:-$SRC/build-fuzz}
EACH=10m
SCRATCH=""
ONLY=""
PARALLEL=1
DO_BUILD=1
LIST=0
EXTRA=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build) BUILD=$2; shift 2 ;;
    --each) EACH=$2; shift 2 ;;
    --scratch) SCRATCH=$2; shift 2 ;;
    --only) ONLY=$2; shift 2 ;;
    --parallel) PARALLEL=$2; shift 2 ;;
    --no-build) DO_BUILD=0; shift ;;
    --list) LIST=1; shift ;;
    -h|--help) usage; exit 0 ;;
    --) shift; EXTRA=("$@"); break ;;
    *) echo "run_long.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

seconds_of() {
  local d=$1
  case "$d" in
    *h) echo $(( ${d%h} * 3600 )) ;;
    *m) echo $(( ${d%m} * 60 )) ;;
    *s) echo $(( ${d%s} )) ;;
    *[!0-9]*|"") echo "run_long.sh: bad duration '$d' (use 90s, 10m, 1h or seconds)" >&2; return 1 ;;
    *) echo "$d" ;;
  esac
}
SECS=$(seconds_of "$EACH")

if [[ ! -f $BUILD/CMakeCache.txt ]]; then
  echo "run_long.sh: $BUILD is not a CMake build directory (see --help to configure one)" >&2
  exit 2
fi
if ! grep -q '^SM_FUZZ:BOOL=ON' "$BUILD/CMakeCache.txt"; then
  echo "run_long.sh: $BUILD is not a fuzz build (configure it with -DSM_FUZZ=ON and clang)" >&2
  exit 2
fi

# Every sm_add_fuzz_target in the source tree, with its CORPUS directory.
declare -A SEEDS=()
while IFS='|' read -r name corpus; do
  SEEDS[$name]=$corpus
done < <(
  find "$SRC/tests" -name CMakeLists.txt -print0 | while IFS= read -r -d '' f; do
    dir=$(dirname "$f")
    # Join each call onto one line, then pick out the name and the CORPUS argument.
    tr '\n' ' ' <"$f" | grep -oE 'sm_add_fuzz_target\([^)]*\)' | while read -r call; do
      name=$(sed -E 's/sm_add_fuzz_target\(\s*([A-Za-z0-9_]+).*/\1/' <<<"$call")
      corpus=$(grep -oE 'CORPUS\s+\S+' <<<"$call" | awk '{print $2}' | tr -d ')')
      echo "$name|${corpus//\$\{CMAKE_CURRENT_SOURCE_DIR\}/$dir}"
    done || true  # Most CMakeLists.txt declare no fuzz target.
  done)

TARGETS=()
for t in $(printf '%s\n' "${!SEEDS[@]}" | sort); do
  if [[ -n $ONLY ]] && ! grep -qE "$ONLY" <<<"$t"; then
    continue
  fi
  TARGETS+=("$t")
done
if [[ ${#TARGETS[@]} -eq 0 ]]; then
  echo "run_long.sh: no fuzz targets match" >&2
  exit 2
fi
if [[ $LIST -eq 1 ]]; then
  for t in "${TARGETS[@]}"; do
    echo "$t ${SEEDS[$t]}"
  done
  exit 0
fi

if [[ $DO_BUILD -eq 1 ]]; then
  ninja -C "$BUILD" -j "$(( PARALLEL > 2 ? PARALLEL : 2 ))" "${TARGETS[@]}"
fi

SCRATCH=${SCRATCH:-/tmp/sm-fuzz-$(date -u +%Y%m%d-%H%M%S)}
mkdir -p "$SCRATCH"
echo "run_long.sh: ${#TARGETS[@]} targets, $SECS s each, $PARALLEL at a time; scratch $SCRATCH"

# The sanitizers abort on the first report, so libFuzzer saves the input that caused it.
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

run_one() {
  local t=$1 bin work
  bin=$(find "$BUILD" -type f -name "$t" -perm -u+x -print -quit)
  work=$SCRATCH/$t
  mkdir -p "$work/corpus" "$work/artifacts"
  if [[ -z $bin ]]; then
    echo "missing binary" >"$work/result"
    return
  fi
  echo "run_long.sh: $t started ($(date -u +%H:%M:%S))"
  # The first corpus dir receives new inputs; the seed dir after it is only read.
  local rc=0
  (cd "$work" && "$bin" "$work/corpus" "${SEEDS[$t]}" \
      -max_total_time="$SECS" -print_final_stats=1 -timeout=30 -rss_limit_mb=2560 \
      -artifact_prefix="$work/artifacts/" "${EXTRA[@]}") >"$work/log" 2>&1 || rc=$?
  if [[ $rc -eq 0 ]]; then
    echo "ok" >"$work/result"
  else
    echo "FAILED (exit $rc; see $work/log and $work/artifacts/)" >"$work/result"
  fi
  echo "run_long.sh: $t finished: $(cat "$work/result")"
}

running=0
for t in "${TARGETS[@]}"; do
  run_one "$t" &
  running=$((running + 1))
  if [[ $running -ge $PARALLEL ]]; then
    wait -n || true
    running=$((running - 1))
  fi
done
wait || true

# Summary from each log: executions (final stats), exec/s, and the last cov/ft/corpus line.
status=0
echo
echo "Fuzz campaigns $(date -u +%Y-%m-%d), $SECS s per target ($BUILD):"
echo
echo "| target | executions | exec/s | cov | ft | corpus | result |"
echo "|---|---:|---:|---:|---:|---:|---|"
for t in "${TARGETS[@]}"; do
  work=$SCRATCH/$t
  log=$work/log
  # A log without a line (crash before the final stats, no log at all) leaves "-".
  execs=$(grep -oE 'stat::number_of_executed_units: [0-9]+' "$log" 2>/dev/null | awk '{print $2}' | tail -n1 || true)
  eps=$(grep -oE 'stat::average_exec_per_sec: +[0-9]+' "$log" 2>/dev/null | awk '{print $2}' | tail -n1 || true)
  last=$(grep -E '^#[0-9]+.* cov: ' "$log" 2>/dev/null | tail -n1 || true)
  cov=$(grep -oE 'cov: [0-9]+' <<<"$last" | awk '{print $2}' || true)
  ft=$(grep -oE 'ft: [0-9]+' <<<"$last" | awk '{print $2}' || true)
  corp=$(grep -oE 'corp: [0-9]+/[0-9]+[a-zA-Z]*' <<<"$last" | awk '{print $2}' || true)
  result=$(cat "$work/result" 2>/dev/null || echo "not run")
  [[ $result == ok ]] || status=1
  echo "| $t | ${execs:--} | ${eps:--} | ${cov:--} | ${ft:--} | ${corp:--} | $result |"
done
exit $status
