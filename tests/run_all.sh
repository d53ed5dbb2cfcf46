#!/usr/bin/env bash
# tests/run_all.sh — runs every test: the whole ctest suite of the main build (unit,
# integration, and lab tests that boot real guests through tests/lab/run), then the unit tests
# again in an ASan+UBSan build, then every libFuzzer target briefly in a clang fuzz build
# (SM_FUZZ_SECONDS each, default 20; 0 skips them and says so). Expects deploy/setup.sh to have
# run (packages, build, kernel).
# Exits non-zero if anything failed; the last line is "tests: N passed, M failed".
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build_dir=${SM_BUILD_DIR:-$root/build}
asan_dir=${SM_ASAN_BUILD_DIR:-$root/build-asan}
fuzz_dir=${SM_FUZZ_BUILD_DIR:-$root/build-fuzz}
fuzz_seconds=${SM_FUZZ_SECONDS:-20}
jobs=${SM_TEST_JOBS:-2}
passed=0
failed=0
rc=0

# Adds the counts from ctest's closing line ("97% tests passed, 1 tests failed out of 40").
count() {
  local line total bad
  line=$(grep -E 'tests passed, [0-9]+ tests? failed out of [0-9]+' "$1" | tail -1)
  if [ -z "$line" ]; then
    echo "run_all: ctest printed no summary (see above); counting the run as failed" >&2
    failed=$((failed + 1))
    return
  fi
  bad=$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\1/' <<<"$line")
  total=$(sed -E 's/.* failed out of ([0-9]+).*/\1/' <<<"$line")
  passed=$((passed + total - bad))
  failed=$((failed + bad))
}

section() { printf '\n=== %s\n' "$*"; }

# CI keeps only the tail of what this script prints, so each failed test is named again at the
# end with the lines that say what failed and the last lines of its output (ctest --output-on-failure prints that output right
# after the test's result line, before the next "Start"/result line).
failures=$(mktemp)
# Lab runs that passed only on tests/lab/run's one retry append the first attempt's failure
# here; they are printed at the end too, so a flake is visible even when everything passed.
export SM_LAB_FLAKE_LOG
SM_LAB_FLAKE_LOG=$(mktemp)
note_failures() {
  awk -v run="$2" '
    /^[[:space:]]*[0-9]+\/[0-9]+ Test +#[0-9]+: / {
      flush(); inblock = ($0 ~ /\*\*\*[A-Za-z]|[.] +Not Run /)
      if (inblock) { head = $0; n = 0; k = 0; follow = 0 }
      next
    }
    /^[[:space:]]*Start +[0-9]+: / { flush(); next }
    /tests passed, [0-9]+ tests? failed out of/ { flush(); next }
    inblock {
      line = $0
      gsub(/\033\[[0-9;]*m/, "", line)
      buf[n++ % 6] = line
      # The first lines that say what went wrong, then the tail: each gtest failure with the
      # lines after it (the assertion and its message), lab faults and retries.
      if (k >= 10) next
      if (follow > 0) { follow--; if (line ~ /[^ ]/) first[k++] = line; next }
      if (line ~ /: Failure$/) { first[k++] = line; follow = 4; next }
      if (line ~ /TIMEOUT|RETRYING|panic|triple fault|rror/) first[k++] = line
    }
    function flush(   i, start) {
      if (!inblock) return
      gsub(/ \.\.\.+ */, " ... ", head); print "[" run "] " head
      for (i = 0; i < k; i++) print "      | " substr(first[i], 1, 240)
      if (k > 0) print "      | ..."
      start = (n > 3) ? n - 3 : 0
      for (i = start; i < n; i++) print "      | " substr(buf[i % 6], 1, 240)
      inblock = 0
    }
    END { flush() }' "$1" >>"$failures"
}

if [ ! -f "$build_dir/CTestTestfile.cmake" ]; then
  echo "run_all: no build in $build_dir; run ./deploy/setup.sh first" >&2
  exit 1
fi

log=$(mktemp)
trap 'rm -f "$log" "$failures" "$SM_LAB_FLAKE_LOG"' EXIT

section "main build: unit, integration and lab tests"
ninja -C "$build_dir" >"$log" 2>&1 || { tail -60 "$log"; echo "run_all: build failed" >&2; exit 1; }
# Lab tests are RUN_SERIAL (each boots an emulated L1); the rest run $jobs-wide.
ctest --test-dir "$build_dir" --output-on-failure -j "$jobs" 2>&1 | tee "$log"
[ "${PIPESTATUS[0]}" -eq 0 ] || rc=1
count "$log"
note_failures "$log" main

section "sanitizer build (ASan+UBSan): unit tests"
{ cmake -S "$root" -B "$asan_dir" -G Ninja -DCMAKE_BUILD_TYPE=Debug \
    -DSM_SANITIZE=ON -DSM_ONLY_UNIT=ON && ninja -C "$asan_dir"; } >"$log" 2>&1 ||
  { tail -60 "$log"; echo "run_all: sanitizer build failed" >&2; exit 1; }
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir "$asan_dir" -L unit --output-on-failure -j "$jobs" 2>&1 | tee "$log"
[ "${PIPESTATUS[0]}" -eq 0 ] || rc=1
count "$log"
note_failures "$log" asan

section "fuzz build (clang libFuzzer, ASan+UBSan): each target for ${fuzz_seconds} s"
# Brief runs catch what a change breaks in a parser's hostile-input handling; the long
# campaigns are tests/fuzz/run_long.sh's job (docs/fuzzing.md). Each target counts as one test.
if [ "$fuzz_seconds" = 0 ]; then
  echo "run_all: fuzz targets NOT run (SM_FUZZ_SECONDS=0)"
else
  fuzz_scratch=$(mktemp -d)
  { CC=clang CXX=clang++ cmake -S "$root" -B "$fuzz_dir" -G Ninja \
      -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSM_FUZZ=ON -DSM_SANITIZE=ON -DSM_ONLY_UNIT=ON; } \
    >"$log" 2>&1 || { tail -60 "$log"; echo "run_all: fuzz build configure failed" >&2; exit 1; }
  "$root/tests/fuzz/run_long.sh" --build "$fuzz_dir" --each "${fuzz_seconds}s" \
    --parallel "$jobs" --scratch "$fuzz_scratch" 2>&1 | tee "$log"
  fuzz_rc=${PIPESTATUS[0]}
  # The closing table has one row per target: "| name | execs | ... | result |".
  fuzz_rows=$(grep -E '^\| [a-z0-9_]+ \|' "$log" | grep -v '^| target |' || true)
  fuzz_ok=$(grep -cE '\| ok \|$' <<<"$fuzz_rows" || true)
  fuzz_total=$(grep -c . <<<"$fuzz_rows" || true)
  if [ "$fuzz_total" -eq 0 ]; then
    echo "run_all: the fuzz run printed no results (exit $fuzz_rc); counting it as failed" >&2
    failed=$((failed + 1))
    echo "[fuzz] no results (run_long.sh exit $fuzz_rc; build or setup failed, see above)" >>"$failures"
  else
    passed=$((passed + fuzz_ok))
    failed=$((failed + fuzz_total - fuzz_ok))
  fi
  [ "$fuzz_rc" -eq 0 ] || rc=1
  # A failing target: the sanitizer's summary and the input that triggered it, in hex, so it
  # can be replayed from CI's log alone (join the hex lines, unhex them into a file, run the
  # target on it).
  while IFS='|' read -r _ t _ _ _ _ _ result; do
    t=${t// /}
    [ -n "$t" ] || continue
    {
      echo "[fuzz] $t:${result% }"
      grep -E 'ERROR: |SUMMARY: |==[0-9]+==|Test unit written|Slowest unit|deadly signal' \
        "$fuzz_scratch/$t/log" 2>/dev/null | head -8 | sed 's/^/      | /'
      for a in "$fuzz_scratch/$t"/artifacts/*; do
        [ -f "$a" ] || continue
        echo "      | input $(basename "$a") ($(stat -c %s "$a") bytes, first 512 in hex):"
        head -c 512 "$a" | od -An -v -tx1 | tr -d ' \n' | fold -w 64 | sed 's/^/      | /'; echo
      done
    } >>"$failures"
  done < <(grep -vE '\| ok \|$' <<<"$fuzz_rows")
  rm -rf "$fuzz_scratch"
fi

if [ -s "$SM_LAB_FLAKE_LOG" ]; then
  section "lab runs that passed only on a retry (emulated-lab flakes; see tests/lab/run --help)"
  cat "$SM_LAB_FLAKE_LOG"
fi
if [ -s "$failures" ]; then
  section "failed tests (the last lines each printed)"
  cat "$failures"
fi
echo
echo "tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ] || rc=1
exit "$rc"
